/// Drives datagrams through parse -> aggregate. `stage(_:datagram:rejected:)`
/// splits a datagram into lines, parses them and stages their samples;
/// `commit(rejected:)` records everything staged, shard by shard (one lock per
/// shard, lookups prefetched together). One per reader thread: it owns the
/// reusable parse, key and staging scratch; not shared.
public struct DatagramIngestor: ~Copyable {
    /// A rejected line: why, which datagram of the batch, and its byte range there.
    public typealias Rejection = (_ reason: ParseFailure, _ datagram: Int, _ line: Range<Int>) -> Void

    private let table: ShardedTable
    private var line = ParsedLine()
    private var keys: SeriesKeyBuilder
    private var staged = StagedBatch()
    private var order: [Int32] = []
    private var starts: [Int32] = []
    private var rejectedLines: [Int32] = []
    /// Counts since the last `flushCounts(to:)`.
    public private(set) var lines: UInt64 = 0
    public private(set) var events: UInt64 = 0
    private var invalid = [UInt64](repeating: 0, count: ParseFailure.allCases.count)
    /// Staged samples past which `stage` commits by itself (datagrams stay valid until then).
    private let commitThreshold = 8192

    public init(table: ShardedTable) {
        self.table = table
        keys = table.makeKeyBuilder()
    }

    /// Parses and records every line of `datagram` at once.
    public mutating func ingest(_ datagram: UnsafeRawBufferPointer, rejected: Rejection = { _, _, _ in }) {
        stage(datagram, datagram: 0, rejected: rejected)
        commit(rejected: rejected)
    }

    /// Parses every line of `datagram` and stages its samples.
    /// - Parameters:
    ///   - datagram: must stay valid until `commit` (it may run from here when much is staged).
    ///   - index: the datagram's number in the caller's batch, handed back in rejections.
    ///   - rejected: called for each rejected line (for rate-limited logging); not on the fast path.
    public mutating func stage(_ datagram: UnsafeRawBufferPointer, datagram index: Int, rejected: Rejection) {
        LineSplitter.forEachLine(in: datagram) { range in
            lines &+= 1
            switch StatsdParser.parse(datagram, range, into: &line) {
            case .metric:
                stageLine(datagram, range, index)
            case .event:
                events &+= 1
            case .failure(let reason):
                invalid[Int(reason.rawValue)] &+= 1
                rejected(reason, index, range)
            }
        }
        if staged.samples.count >= commitThreshold { commit(rejected: rejected) }
    }

    @inline(__always)
    private mutating func stageLine(_ datagram: UnsafeRawBufferPointer, _ range: Range<Int>, _ index: Int) {
        keys.prepare(line, datagram)
        let lineID = Int32(staged.lines.count)
        staged.lines.append(StagedLine(datagram: Int32(index), start: Int32(range.lowerBound), end: Int32(range.upperBound)))
        for g in line.groups.indices {
            let group = line.groups[g]
            let hash = keys.build(type: group.type)
            let offset = staged.appendKey(keys.bytes)
            let valueStart = Int32(staged.values.count)
            for v in group.valueStart..<group.valueEnd { staged.values.append(line.values[v]) }
            let memberHash =
                group.type == .set
                ? SeriesKeyBuilder.hash(UnsafeRawBufferPointer(rebasing: datagram[group.member]), seed: table.memberSeed) : 0
            staged.samples.append(
                StagedSample(
                    hash: hash, keyOffset: offset, keyLength: Int32(keys.count), type: group.type, rate: group.rate,
                    valueStart: valueStart, valueEnd: Int32(staged.values.count), memberHash: memberHash, line: lineID))
        }
    }

    /// Records everything staged. A line that would create a series past `max_series`
    /// is counted once (`series_limit`) and reported to `rejected`.
    public mutating func commit(rejected: Rejection) {
        guard !staged.samples.isEmpty else {
            staged.reset()
            return
        }
        rejectedLines.removeAll(keepingCapacity: true)
        table.record(staged, order: &order, starts: &starts, rejected: &rejectedLines)
        if !rejectedLines.isEmpty {
            rejectedLines.sort()
            var previous: Int32 = -1
            for id in rejectedLines where id != previous {
                previous = id
                invalid[Int(ParseFailure.seriesLimit.rawValue)] &+= 1
                let l = staged.lines[Int(id)]
                rejected(.seriesLimit, Int(l.datagram), Int(l.start)..<Int(l.end))
            }
        }
        staged.reset()
    }

    /// Adds the counts to the agent's metrics and resets them. Lines received go last, so
    /// whoever sees them has the batch's other counts too (if it reads those afterwards).
    public mutating func flushCounts(to metrics: SelfMetrics) {
        if events > 0 { metrics.eventsReceived.add(events) }
        for (reason, n) in invalid.enumerated() where n > 0 {
            metrics.linesInvalid[reason].add(n)
            invalid[reason] = 0
        }
        metrics.linesReceived.add(lines)
        lines = 0
        events = 0
    }
}
