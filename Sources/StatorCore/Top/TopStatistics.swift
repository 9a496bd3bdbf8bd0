/// `GET /api/v1/top` (SPEC section 14): fed with every flush batch on a thread of its own, it
/// keeps a `TopTally`, and the sorted tables an answer is cut from are made from it when a
/// request asks, at most once per flush: nobody watching costs only the tally's fold (sorting
/// 10,000 names every flush took 15% of the agent's CPU at a 1 s flush interval). A request
/// then copies at most `maxLimit` rows of each table into JSON: a scraper polling every
/// second costs a small fraction of a flush, whatever the number of series.
public final class TopStatistics: Sendable {
    /// Rows of a table when the request names no `limit`.
    public static let defaultLimit = 20
    /// The most rows of a table a request may ask for.
    public static let maxLimit = 1_000
    /// Top values listed per tag key.
    static let valuesPerKey = 5

    /// A statsd name's row.
    struct NameRow: Sendable {
        var name: [UInt8]
        var lines: Int
        var series: Int
        var types: [MetricType]
        var tagKeys: [[UInt8]]
    }

    /// A tag key's row.
    struct KeyRow: Sendable {
        var key: [UInt8]
        var series: Int
        /// Distinct values among the live series (a lower bound when `complete` is false).
        var distinct: Int
        var complete: Bool
        var top: [(value: [UInt8], series: Int)]
    }

    /// The tables as of the last flush.
    struct Snapshot: Sendable {
        var windowSeconds = 0.0
        var flushes: UInt64 = 0
        var byLines: [NameRow] = []
        var bySeries: [NameRow] = []
        var otherNames = (lines: 0, series: 0)
        var tagKeys: [KeyRow] = []
        var history: [TopHistory.Point] = []
        /// Lines of the window per mapping rule slot.
        var ruleLines: [UInt16: Int] = [:]
    }

    /// What the thread folds batches into, and the tables made from it since the last fold
    /// (`nil`: none asked for yet).
    private struct Folded {
        var tally = TopTally()
        var history = TopHistory()
        var flushes: UInt64 = 0
        var tables: Snapshot? = Snapshot()
        /// How many times tables were made (for the test that they are made only when asked).
        var made = 0
    }

    private let queue = BlockingQueue<FlushBatch>(capacity: 4)
    private let folded = PthreadLock(Folded())
    private let metrics: SelfMetrics
    private let thread: WorkerThread
    /// The sinks' health, when there are sinks.
    private let sinks: (@Sendable () -> [SinkFanout.Health])?
    /// The mapping rules, when loaded (the answer then counts new series by what they said,
    /// and the window's lines by the rule that mapped them).
    private let mapping: MappingRules?
    /// Gets a debug line per fold, and per tables made, with the time each took.
    private let logger: Logger?

    /// - Parameters:
    ///   - sinks: the sinks' health (`SinkFanout.health`).
    ///   - mapping: the rules of `mapping_config`, when it is set.
    ///   - logger: gets a debug line per flush with the time its fold took, and per tables made.
    public init(
        metrics: SelfMetrics, sinks: (@Sendable () -> [SinkFanout.Health])? = nil, mapping: MappingRules? = nil,
        logger: Logger? = nil
    ) {
        self.metrics = metrics
        self.sinks = sinks
        self.mapping = mapping
        self.logger = logger
        let queue = self.queue
        let folded = self.folded
        thread = WorkerThread(name: "top") {
            while let batch = queue.take() {
                let started = WallClock.monotonicSeconds()
                let lines = metrics.inputs.reduce(0) { $0 &+ $1.lines.value }
                let drops = metrics.kernelDropsTotal
                folded.withLock { f in
                    f.tally.add(batch)
                    f.history.add(time: batch.timestamp, interval: batch.interval, lines: lines, drops: drops)
                    f.flushes += 1
                    f.tables = nil
                }
                logger?.debug(
                    "top tally folded",
                    metadata: [("series", "\(batch.seriesCount)"), ("duration_s", "\(WallClock.monotonicSeconds() - started)")])
            }
        }
    }

    /// Queues a batch (the flusher's thread): when four wait already it is dropped, and the
    /// tally starts its live series again from the next (`TopTally.add`).
    public func offer(_ batch: FlushBatch) { _ = queue.offer(batch) }

    /// Lets the thread end after the queued batches: nothing waits for it (the tables only
    /// serve requests, and the server stops first).
    public func stop() {
        queue.close()
        thread.detach()
    }

    /// Replaces the tables (tests that fold batches themselves).
    func publishForTesting(_ made: Snapshot) { folded.withLock { $0.tables = made } }

    /// How many times the tables were made, and how many batches were folded in.
    var counts: (tablesMade: Int, flushes: UInt64) { folded.withLock { ($0.made, $0.flushes) } }

    /// The tables as of the last batch folded in, made now if no request has asked since.
    func tables() -> Snapshot {
        let started = WallClock.monotonicSeconds()
        let (tables, new) = folded.withLock { f -> (Snapshot, Bool) in
            if let tables = f.tables { return (tables, false) }
            var made = Self.snapshot(of: f.tally, flushes: f.flushes)
            made.history = f.history.points
            f.tables = made
            f.made += 1
            return (made, true)
        }
        if new {
            logger?.debug(
                "top tables made",
                metadata: [("names", "\(tables.byLines.count)"), ("duration_s", "\(WallClock.monotonicSeconds() - started)")])
        }
        return tables
    }

    /// Sorts the tally into the tables, `maxLimit` rows each.
    static func snapshot(of tally: TopTally, flushes: UInt64) -> Snapshot {
        var rows: [NameRow] = []
        rows.reserveCapacity(tally.names.count)
        for case let n? in tally.names {
            rows.append(
                NameRow(
                    name: n.bytes, lines: n.windowLines, series: n.series,
                    types: MetricType.allCases.filter { n.types & (1 << $0.rawValue) != 0 }, tagKeys: n.keys))
        }
        func top<T>(_ rows: [T], by order: (T, T) -> Bool) -> [T] { Array(rows.sorted(by: order).prefix(maxLimit)) }
        var snapshot = Snapshot(windowSeconds: tally.windowLength, flushes: flushes, otherNames: tally.otherNames)
        snapshot.ruleLines = tally.ruleLines
        snapshot.byLines = top(rows.filter { $0.lines > 0 }) {
            $0.lines != $1.lines ? $0.lines > $1.lines : $0.name.lexicographicallyPrecedes($1.name)
        }
        snapshot.bySeries = top(rows.filter { $0.series > 0 }) {
            $0.series != $1.series ? $0.series > $1.series : $0.name.lexicographicallyPrecedes($1.name)
        }
        var keys: [KeyRow] = []
        for case let k? in tally.keys {
            let values = k.values.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key.lexicographicallyPrecedes($1.key) }
            keys.append(
                KeyRow(
                    key: k.bytes, series: k.series, distinct: k.values.count + (k.untracked > 0 ? 1 : 0),
                    complete: k.untracked == 0, top: values.prefix(valuesPerKey).map { ($0.key, $0.value) }))
        }
        snapshot.tagKeys = top(keys) {
            $0.distinct != $1.distinct ? $0.distinct > $1.distinct : $0.key.lexicographicallyPrecedes($1.key)
        }
        return snapshot
    }

    /// Answers `GET /api/v1/top?limit=N`.
    public func answer(_ head: HTTPRequestHead) -> HTTPResponse {
        var limit = Self.defaultLimit
        guard let parameters = head.queryParameters else { return .text(400, "the query string is not valid\n") }
        for (name, value) in parameters {
            guard name == "limit", let n = Int(value), (1...Self.maxLimit).contains(n) else {
                return .text(400, "the only parameter is limit, from 1 to \(Self.maxLimit)\n")
            }
            limit = n
        }
        let body = render(limit: limit)
        return HTTPResponse(
            status: 200, headers: [("Content-Type", "application/json"), ("Cache-Control", "no-store")], body: body)
    }

    /// The JSON answer, `limit` rows per table.
    func render(limit: Int) -> [UInt8] {
        let s = tables()
        var w = JSONWriter(capacity: 4096)
        w.raw("{\"window_seconds\":")
        w.number(s.windowSeconds)
        w.raw(",\"flushes\":")
        w.integer(Int64(s.flushes))
        w.raw(",\"limit\":")
        w.integer(Int64(limit))
        w.raw(",\"names_by_lines\":")
        Self.names(s.byLines.prefix(limit), &w)
        w.raw(",\"names_by_series\":")
        Self.names(s.bySeries.prefix(limit), &w)
        w.raw(",\"other_names\":{\"lines\":")
        w.integer(Int64(s.otherNames.lines))
        w.raw(",\"series\":")
        w.integer(Int64(s.otherNames.series))
        w.raw("},\"tag_keys\":[")
        for (i, k) in s.tagKeys.prefix(limit).enumerated() {
            if i > 0 { w.raw(",") }
            w.raw("{\"key\":")
            w.string(k.key)
            w.raw(",\"series\":")
            w.integer(Int64(k.series))
            w.raw(",\"distinct_values\":")
            w.integer(Int64(k.distinct))
            w.raw(k.complete ? ",\"complete\":true,\"top_values\":[" : ",\"complete\":false,\"top_values\":[")
            for (j, v) in k.top.enumerated() {
                if j > 0 { w.raw(",") }
                w.raw("{\"value\":")
                w.string(v.value)
                w.raw(",\"series\":")
                w.integer(Int64(v.series))
                w.raw("}")
            }
            w.raw("]}")
        }
        w.raw("],\"refused\":")
        Self.refused(metrics, &w)
        w.raw(",\"history\":[")
        for (i, p) in s.history.enumerated() {
            if i > 0 { w.raw(",") }
            w.raw("{\"time\":")
            w.number(Double(p.time) / 1000)
            w.raw(",\"lines_per_second\":")
            w.number(p.linesPerSecond)
            w.raw(",\"drops_per_second\":")
            w.number(p.dropsPerSecond)
            w.raw("}")
        }
        w.raw("],\"sinks\":[")
        let now = WallClock.nowMillis()
        for (i, sink) in (sinks?() ?? []).enumerated() {
            if i > 0 { w.raw(",") }
            w.raw("{\"name\":")
            w.string(sink.name)
            w.raw(",\"last_success_seconds_ago\":")
            if sink.lastSuccess > 0 { w.number(Double(max(0, now - sink.lastSuccess)) / 1000) } else { w.raw("null") }
            w.raw(",\"queued\":")
            w.integer(Int64(sink.queued))
            w.raw(",\"errors\":")
            w.integer(Int64(truncatingIfNeeded: sink.errors))
            w.raw("}")
        }
        w.raw("]")
        if let mapping {
            w.raw(",\"mapping\":{\"rules\":[")
            for (i, rule) in Self.ruleRows(mapping, s.ruleLines).prefix(limit).enumerated() {
                if i > 0 { w.raw(",") }
                w.raw("{\"line\":")
                w.integer(Int64(rule.line))
                w.raw(",\"match\":")
                w.string(rule.match)
                w.raw(",\"lines\":")
                w.integer(Int64(rule.lines))
                w.raw("}")
            }
            w.raw("],\"series\":[")
            for (i, result) in MappingResult.allCases.enumerated() {
                if i > 0 { w.raw(",") }
                w.raw("{\"result\":")
                w.string(result.description)
                w.raw(",\"series\":")
                w.integer(Int64(truncatingIfNeeded: metrics.mappingSeries[result.rawValue].value))
                w.raw("}")
            }
            w.raw("]}")
        }
        w.raw("}\n")
        return w.withBytes { Array($0) }
    }

    /// The rules in force with the window's lines of each (its hits), most first, then in
    /// file order. Two rules of one identity share a slot: only the first can match.
    static func ruleRows(_ mapping: MappingRules, _ lines: [UInt16: Int]) -> [(line: Int, match: String, lines: Int)] {
        let loaded = mapping.current
        var seen = Set<UInt16>()
        var rows: [(line: Int, match: String, lines: Int)] = []
        for (rule, slot) in zip(loaded.mapper.rules, loaded.optionNumbers) where seen.insert(slot).inserted {
            rows.append((rule.line, rule.match, lines[slot] ?? 0))
        }
        return rows.enumerated().sorted { a, b in
            a.element.lines != b.element.lines ? a.element.lines > b.element.lines : a.offset < b.offset
        }.map(\.element)
    }

    private static func names(_ rows: ArraySlice<NameRow>, _ w: inout JSONWriter) {
        w.raw("[")
        for (i, n) in rows.enumerated() {
            if i > 0 { w.raw(",") }
            w.raw("{\"name\":")
            w.string(n.name)
            w.raw(",\"lines\":")
            w.integer(Int64(n.lines))
            w.raw(",\"series\":")
            w.integer(Int64(n.series))
            w.raw(",\"types\":[")
            for (j, t) in n.types.enumerated() {
                if j > 0 { w.raw(",") }
                w.string(t.description)
            }
            w.raw("],\"tag_keys\":[")
            for (j, k) in n.tagKeys.sorted(by: { $0.lexicographicallyPrecedes($1) }).enumerated() {
                if j > 0 { w.raw(",") }
                w.string(k)
            }
            w.raw("]}")
        }
        w.raw("]")
    }

    /// Every reason with refused lines: its count since start and its last samples.
    private static func refused(_ metrics: SelfMetrics, _ w: inout JSONWriter) {
        w.raw("[")
        var first = true
        for (reason, samples) in metrics.refused.snapshot() {
            let total = metrics.invalidTotal(reason)
            guard total > 0 || !samples.isEmpty else { continue }
            if !first { w.raw(",") }
            first = false
            w.raw("{\"reason\":")
            w.string(reason.description)
            w.raw(",\"total\":")
            w.integer(Int64(truncatingIfNeeded: total))
            w.raw(",\"samples\":[")
            for (j, sample) in samples.reversed().enumerated() {
                if j > 0 { w.raw(",") }
                w.raw("{\"line\":")
                w.string(String(decoding: sample.line, as: UTF8.self))
                w.raw(sample.truncated ? ",\"truncated\":true,\"input\":" : ",\"truncated\":false,\"input\":")
                w.string(sample.input)
                w.raw(",\"time\":")
                w.string(WallClock.rfc3339(sample.time))
                w.raw("}")
            }
            w.raw("]}")
        }
        w.raw("]")
    }
}
