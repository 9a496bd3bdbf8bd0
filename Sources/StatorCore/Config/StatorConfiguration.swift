import Glibc

/// Everything the agent can be told (SPEC section 7). Every field has a default;
/// `ConfigKeys.all` maps each to its JSON key, environment variable and flag.
public struct StatorConfiguration: Sendable {
    /// UDP receive stage (`udp.*`).
    public var udp = ReceiverConfiguration()
    /// Unix datagram input (`unixgram.*`); off while its path is empty.
    public var unixgram = UnixgramConfiguration()
    /// TCP input (`tcp.*`); off while its address is empty.
    public var tcp = TCPConfiguration()
    /// HTTP server (`http.*`).
    public var http = HTTPServerConfiguration()
    /// Flush interval and series expiry (`flush_interval`, `series_ttl`, `percentiles`).
    public var flush = FlushConfiguration()
    /// Shards and limits (`shards`, `max_series`, `max_samples_per_series`, `max_name_bytes`, `max_tags`, `max_tag_bytes`).
    public var aggregation = AggregationConfiguration()
    /// Native histograms (`histograms.*`, SPEC section 13); off by default.
    public var histograms = NativeHistogramConfiguration()
    /// A statsd_exporter mapping file (`mapping_config`); empty maps nothing.
    public var mappingConfig = ""
    /// The tag policy (`tags.*`, SPEC section 14); none by default.
    public var tags = TagPolicyConfiguration()
    /// JSON-lines sink (`sinks.json.*`).
    public var json = JSONLinesConfiguration()
    /// Prometheus sink (`sinks.prometheus.*`); its buckets also drive the aggregation stage.
    public var prometheus = PrometheusConfiguration()
    /// HTTP pushes (`sinks.http_push`: one object or a list); each is enabled when its `url` is set.
    public var pushes = [HTTPPushConfiguration()]
    /// Graphite plaintext sink (`sinks.graphite.*`); enabled when `address` is set.
    public var graphite = GraphiteConfiguration()
    /// Daily roll-ups in SQLite (`sinks.rollup.*`); enabled when `path` is set.
    public var rollup = RollupConfiguration()
    /// Log level (`log.level`).
    public var logLevel: Logger.Level = .info

    public init() {}

    /// The first push: the one the `sinks.http_push.*` flags and environment variables set.
    public var push: HTTPPushConfiguration {
        get { pushes.first ?? HTTPPushConfiguration() }
        set {
            if pushes.isEmpty { pushes.append(newValue) } else { pushes[0] = newValue }
        }
    }

    /// Replaces every push's `${VAR}`s and gives every push that is on (a `url`) its name
    /// (`http_push`, `http_push_2`... by position when none is configured).
    /// - Throws: `ConfigError` for a variable that is not set, two pushes of one name or one
    ///   spool directory, or a name another sink uses.
    public mutating func resolvePushes(environment: [String: String]) throws(ConfigError) {
        var names: Set<String> = []
        var spoolDirectories: Set<String> = []  // resolved (canonicalDirectory)
        for position in pushes.indices {
            var push = pushes[position]
            let section = pushes.count == 1 ? "sinks.http_push" : "sinks.http_push[\(position)]"
            try push.resolve(environment: environment, section: section)
            pushes[position] = push
            guard !push.url.isEmpty else { continue }
            if push.name.isEmpty { push.name = HTTPPushConfiguration.defaultName(position: position) }
            if ["json", "prometheus", "graphite", "rollup"].contains(push.name) {
                throw ConfigError("\(section).name: \(push.name) is the name of another sink")
            }
            if !names.insert(push.name).inserted {
                throw ConfigError("\(section).name: two pushes are named \(push.name)")
            }
            if !push.spoolDirectory.isEmpty, !spoolDirectories.insert(Self.canonicalDirectory(push.spoolDirectory)).inserted {
                throw ConfigError("\(section).spool_dir: two pushes share \(push.spoolDirectory); each needs its own")
            }
            pushes[position] = push
        }
    }

    /// Resolves what needs the environment once every source is read: the pushes'
    /// `${VAR}`s (`resolvePushes`) and the tag policy's key (`TagPolicyConfiguration.resolve`).
    public mutating func resolve(environment: [String: String]) throws(ConfigError) {
        try resolvePushes(environment: environment)
        try tags.resolve(environment: environment)
    }
}

extension StatorConfiguration {
    /// The directory `path` names, however it is spelled (`/a/b/`, `/a/./b`, a relative path,
    /// a symlink to it): symlinks resolved as far as the path exists, then `.`, `..` and
    /// repeated slashes.
    static func canonicalDirectory(_ path: String) -> String {
        var absolute = path.hasPrefix("/") ? path : (Self.currentDirectory() + "/" + path)
        // The longest existing prefix goes through realpath (symlinks); the rest is lexical.
        var rest: [Substring] = []
        while absolute.count > 1 {
            if let resolved = realpath(absolute, nil) {
                defer { free(resolved) }
                absolute = String(cString: resolved)
                break
            }
            guard let slash = absolute.lastIndex(of: "/") else { break }
            rest.insert(absolute[absolute.index(after: slash)...], at: 0)
            absolute = slash == absolute.startIndex ? "/" : String(absolute[..<slash])
        }
        var parts: [Substring] = []
        for part in absolute.split(separator: "/") + rest where !part.isEmpty && part != "." {
            if part == ".." { _ = parts.popLast() } else { parts.append(part) }
        }
        return "/" + parts.joined(separator: "/")
    }

    private static func currentDirectory() -> String {
        guard let cwd = getcwd(nil, 0) else { return "" }
        defer { free(cwd) }
        return String(cString: cwd)
    }
}

/// Durations in configuration: `250ms`, `10s`, `5m`, `1h`, or `0`.
public enum ConfigDuration {
    /// Parses a duration.
    /// - Returns: milliseconds, or `nil` when the text is not a duration.
    public static func parseMillis(_ text: String) -> Int64? {
        if text == "0" { return 0 }
        let units: [(String, Double)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        for (unit, scale) in units where text.hasSuffix(unit) {
            let number = text.dropLast(unit.count)
            // "5m" must not be read as "5" + "m" of "ms"; digits and one dot only.
            guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
                let value = Double(number), value.isFinite, value >= 0
            else { continue }
            let millis = (value * scale).rounded()
            guard millis < 1e15 else { return nil }
            return Int64(millis)
        }
        return nil
    }

    /// Formats milliseconds in the largest whole unit: `10s`, `5m`, `250ms`, `0`.
    public static func format(_ millis: Int64) -> String {
        if millis == 0 { return "0" }
        if millis % 3_600_000 == 0 { return "\(millis / 3_600_000)h" }
        if millis % 60_000 == 0 { return "\(millis / 60_000)m" }
        if millis % 1000 == 0 { return "\(millis / 1000)s" }
        return "\(millis)ms"
    }
}
