/// A tag as two byte ranges into the datagram.
public struct TagRange: Sendable, Equatable {
    public var key: Range<Int>
    public var value: Range<Int>

    /// The value of a bare tag (`|#canary`): no bytes of the datagram. Ranges below zero are
    /// never indices; `SeriesKeyBuilder` resolves them (`MetricKey.bareValueLength`).
    public static let bare: Range<Int> = -1 ..< -1
    /// The key of the origin tag `container_id` (`LineLimits.originTags`), not in the datagram either.
    public static let containerIDKey: Range<Int> = -2 ..< -2
    /// The bytes of `containerIDKey`.
    static let containerID: StaticString = "container_id"
}

/// One `value[:value...]|type[|@rate]` group of a line. Most lines have one;
/// the etsy multi form `name:1|c:250|ms` has several.
public struct SampleGroup: Sendable, Equatable {
    public var type: MetricType
    /// Sample rate, 1 when absent.
    public var rate: Double
    /// The group's values: `values[valueStart..<valueEnd]` of the `ParsedLine`.
    public var valueStart: Int
    public var valueEnd: Int
    /// For sets: the member's bytes.
    public var member: Range<Int>
}

/// One parsed value; `isDelta` marks a gauge value written with a sign.
public struct ParsedValue: Sendable, Equatable {
    public var value: Double
    public var isDelta: Bool
}

/// What the parser found in one line, as ranges into the datagram.
///
/// One `ParsedLine` is owned by each reader thread and reused for every line:
/// `reset()` keeps the lists' buffers, so parsing allocates nothing once warm.
public struct ParsedLine: ~Copyable {
    /// The metric name, without name tags.
    public var name: Range<Int> = 0..<0
    /// Tags in the order written, duplicates included (the aggregator sorts and de-duplicates);
    /// origin fields are not among them.
    public var tags = ScratchList<TagRange>(capacity: 16)
    /// The origin fields, empty when absent: the `dd.internal.entity_id:` tag's value and the
    /// `|c:` container id (SPEC section 15).
    public var entityID: Range<Int> = 0..<0
    public var containerID: Range<Int> = 0..<0
    /// The `|T` timestamp in Unix seconds, -1 when absent (saturated at `Int64.max`): the line
    /// is then forwarded as points of their own, not aggregated (SPEC section 15).
    public var timestamp: Int64 = -1
    public var groups = ScratchList<SampleGroup>(capacity: 4)
    public var values = ScratchList<ParsedValue>(capacity: 16)
    /// Scratch: value ranges of the group being parsed.
    var pendingValues = ScratchList<Range<Int>>(capacity: 16)
    /// The bounds the parser holds every line to (kept across `reset()`).
    public let limits: LineLimits
    #if DEBUG
        /// Debug builds: how many bytes of the last line the name scan visited one by one (the
        /// tests check that the scan of a refused name stops early).
        var nameBytesVisited = 0
    #endif

    public init(limits: LineLimits = LineLimits()) {
        self.limits = limits
    }

    @inline(__always)
    mutating func reset() {
        name = 0..<0
        entityID = 0..<0
        containerID = 0..<0
        timestamp = -1
        tags.removeAll()
        groups.removeAll()
        values.removeAll()
        pendingValues.removeAll()
    }
}

/// The outcome of parsing one line.
public enum ParseOutcome: Sendable, Equatable {
    /// A metric line; the `ParsedLine` holds it.
    case metric
    /// A DogStatsD event (`_e{`) or service check (`_sc|`): counted, not aggregated.
    case event
    /// Rejected.
    case failure(ParseFailure)
}
