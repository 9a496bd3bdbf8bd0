/// What a mapping sets for the series it maps besides their name and labels, with the file's
/// `defaults` already applied. A field left `nil` falls back to the agent's configuration
/// (`sinks.prometheus`, `series_ttl`).
public struct MappingOptions: Hashable, Sendable {
    public enum ObserverType: String, Sendable {
        case histogram, summary
    }

    /// How timers, histograms and distributions appear on `/metrics` (nil: a histogram).
    public var observerType: ObserverType?
    /// Histogram bucket bounds (nil: `sinks.prometheus`).
    public var buckets: [Double]?
    /// Summary quantiles, ascending (statsd_exporter's defaults 0.5, 0.9, 0.99 when unset).
    public var quantiles: [Double] = MappingOptions.defaultQuantiles
    /// Replaces `series_ttl` for the series (0: never expires).
    public var ttlMillis: Int64?
    /// Multiplies the values on `/metrics` (after timers are turned into seconds).
    public var scale: Double?
    /// The family's `# HELP` text.
    public var help: String?
    /// `histogram_options.native_histogram_bucket_factor`: above 1, the series keep native
    /// histograms of the largest schema whose growth factor is at most this; 1 or less, none.
    public var nativeBucketFactor: Double?
    /// `histogram_options.native_histogram_max_buckets` (0: `histograms.native_max_buckets`).
    public var nativeMaxBuckets: Int?

    public static let defaultQuantiles: [Double] = [0.5, 0.9, 0.99]

    public init() {}
}

/// One entry of a mapping file's `mappings`, as read and checked (`MappingFile`).
struct MappingRule: Sendable {
    enum MatchType: String, Sendable {
        case glob, regex
    }

    enum Action: String, Sendable {
        case map, drop
    }

    /// Its position in the file (0 for the first): the first rule that matches decides.
    var index: Int
    /// Its line in the file, for messages and `stator map`.
    var line: Int
    var match: String
    var matchType: MatchType
    /// `match_metric_type`, or every kind.
    var metricKind: GlobTrie.Kind?
    /// `name`, as written and as a template.
    var nameText: String
    var name: MappingTemplate
    /// `labels`, in file order.
    var labels: [(name: String, value: MappingTemplate)]
    var honorLabels: Bool
    var action: Action
    var options: MappingOptions
    /// The compiled `match`, for a regex rule: Go's syntax and meaning, matched in linear time.
    var regex: LinearRegex?

    /// What makes a rule the same rule in a reloaded file: everything that decides which
    /// lines it takes and which series it makes of them, not its options. Its series keep
    /// their keys (`MappingOptionsRegistry`) across a reload that changes only the options.
    var identity: String {
        var parts = [matchType.rawValue, match, metricKind.map { "\($0)" } ?? "", nameText]
        for label in labels { parts.append("\(label.name)=\(label.value.pieces)") }
        parts += ["\(honorLabels)", action.rawValue]
        return parts.joined(separator: "\u{0}")
    }
}
