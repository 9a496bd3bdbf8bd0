/// Drives one datagram through parse -> aggregate: splits it into lines, parses
/// each, records it, and counts what it saw. One per reader thread (it owns the
/// reusable parse and key scratch); not shared.
public struct DatagramIngestor: ~Copyable {
    private let table: ShardedTable
    private var line = ParsedLine()
    private var keys: SeriesKeyBuilder
    /// Counts since the last `flushCounts(to:)`.
    public private(set) var lines: UInt64 = 0
    public private(set) var events: UInt64 = 0
    private var invalid = [UInt64](repeating: 0, count: ParseFailure.allCases.count)

    public init(table: ShardedTable) {
        self.table = table
        keys = table.makeKeyBuilder()
    }

    /// Parses and records every line of `datagram`.
    /// - Parameter rejected: called for each rejected line (for rate-limited logging); not on the fast path.
    @inline(__always)
    public mutating func ingest(_ datagram: UnsafeRawBufferPointer, rejected: (ParseFailure, Range<Int>) -> Void = { _, _ in }) {
        LineSplitter.forEachLine(in: datagram) { range in
            lines &+= 1
            switch StatsdParser.parse(datagram, range, into: &line) {
            case .metric:
                if !table.record(line, datagram, scratch: &keys) {
                    invalid[Int(ParseFailure.seriesLimit.rawValue)] &+= 1
                    rejected(.seriesLimit, range)
                }
            case .event:
                events &+= 1
            case .failure(let reason):
                invalid[Int(reason.rawValue)] &+= 1
                rejected(reason, range)
            }
        }
    }

    /// Adds the counts to the agent's metrics and resets them.
    public mutating func flushCounts(to metrics: SelfMetrics) {
        metrics.linesReceived.add(lines)
        if events > 0 { metrics.eventsReceived.add(events) }
        for (reason, n) in invalid.enumerated() where n > 0 {
            metrics.linesInvalid[reason].add(n)
            invalid[reason] = 0
        }
        lines = 0
        events = 0
    }
}
