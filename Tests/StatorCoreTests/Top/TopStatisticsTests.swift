import Foundation
import Testing
@testable import StatorCore

/// A table and flusher with the clock starting at 0, and a tally fed with every batch.
private final class TopHarness: @unchecked Sendable {
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 4, maxSeries: 10_000), seed: 7)
    let metrics = SelfMetrics(readers: 1)
    lazy var flusher = Flusher(
        table: table, configuration: FlushConfiguration(intervalMillis: 10_000, seriesTTLMillis: 60_000),
        startMillis: 0, metrics: metrics
    ) { _ in }
    var tally = TopTally()
    var flushes: UInt64 = 0

    func flush(at ms: EpochMillis) -> FlushBatch {
        let batch = flusher.flush(at: ms)
        tally.add(batch)
        flushes += 1
        return batch
    }

    func json(limit: Int = 20) -> String {
        let top = TopStatistics(metrics: metrics)
        defer { top.stop() }
        top.publishForTesting(TopStatistics.snapshot(of: tally, flushes: flushes))
        return String(decoding: top.render(limit: limit), as: UTF8.self)
    }
}

@Test func batchesCountTheLinesOfEverySeries() {
    let h = TopHarness()
    // Repeated lines go through the reader's share, first lines through the shards: both count.
    ingest(h.table, ["c:1|c|@0.5", "c:1|c|@0.5", "c:1|c|@0.5", "g:1|g", "g:+2|g", "s:a|s", "s:a|s", "t:1|ms", "t:2:3|ms"])
    let batch = h.flush(at: 10_000)
    #expect(batch.counters.map { "\($0.key.name) \($0.value) \($0.lines)" } == ["c 6.0 3"])
    #expect(batch.gauges.map { "\($0.key.name) \($0.value) \($0.lines)" } == ["g 3.0 2"])
    #expect(batch.sets.map { "\($0.key.name) \($0.value) \($0.lines)" } == ["s 1.0 2"])
    #expect(batch.samples.map { "\($0.key.name) \($0.samples)" } == ["t 3"])
    // A gauge that only repeats its value received no line.
    #expect(h.flush(at: 20_000).gauges.map(\.lines) == [0])
}

@Test func topNamesTagKeysAndTheWindow() {
    let h = TopHarness()
    ingest(h.table, ["api.hits:1|c|#host:a", "api.hits:1|c|#host:b", "api.hits:1|c|#host:a,path:/x", "db.ms:4|ms|#host:a"])
    ingest(h.table, ["<img src=x onerror=alert(1)>:1|g"])
    _ = h.flush(at: 10_000)
    ingest(h.table, ["api.hits:1|c|#host:a", "db.ms:4|ms|#host:a", "db.ms:5|ms|#host:a"])
    _ = h.flush(at: 20_000)
    #expect(
        h.json(limit: 2) == """
            {"window_seconds":20,"flushes":2,"limit":2,\
            "names_by_lines":[\
            {"name":"api.hits","lines":4,"series":3,"types":["counter"],"tag_keys":["host","path"]},\
            {"name":"db.ms","lines":3,"series":1,"types":["timer"],"tag_keys":["host"]}],\
            "names_by_series":[\
            {"name":"api.hits","lines":4,"series":3,"types":["counter"],"tag_keys":["host","path"]},\
            {"name":"<img src=x onerror=alert(1)>","lines":1,"series":1,"types":["gauge"],"tag_keys":[]}],\
            "other_names":{"lines":0,"series":0},\
            "tag_keys":[\
            {"key":"host","series":4,"distinct_values":2,"complete":true,\
            "top_values":[{"value":"a","series":3},{"value":"b","series":1}]},\
            {"key":"path","series":1,"distinct_values":1,"complete":true,"top_values":[{"value":"/x","series":1}]}],\
            "refused":[],"history":[],"sinks":[]}

            """)
    // Five minutes on, the first flushes' lines have left the window; the series expired
    // after 60 s without data.
    for t in stride(from: 30_000, through: 320_000, by: 10_000) { _ = h.flush(at: EpochMillis(t)) }
    #expect(
        h.json() == """
            {"window_seconds":300,"flushes":32,"limit":20,"names_by_lines":[],"names_by_series":[],\
            "other_names":{"lines":0,"series":0},"tag_keys":[],"refused":[],"history":[],"sinks":[]}

            """)
}

@Test func refusedSamplesKeepTheLastFiveOfEachReasonOnePerPeriod() {
    let samples = RefusedSamples()
    let long = [UInt8](repeating: UInt8(ascii: "x"), count: 300)
    for i in 0..<8 {
        Array("bad \(i)".utf8).withUnsafeBytes {
            samples.offer(.missingColon, line: $0, input: "udp", withhold: false, now: Double(i))
        }
        // Within the period: not kept.
        Array("late \(i)".utf8).withUnsafeBytes {
            samples.offer(.missingColon, line: $0, input: "udp", withhold: false, now: Double(i) + 0.5)
        }
    }
    long.withUnsafeBytes { samples.offer(.lineTooLong, line: $0, input: "tcp", withhold: false, now: 0) }
    Array("secret:1|c|#email:a@b".utf8).withUnsafeBytes {
        samples.offer(.invalidTags, line: $0, input: "udp", withhold: true, now: 0)
    }
    let kept = Dictionary(uniqueKeysWithValues: samples.snapshot().map { ($0.reason, $0.samples) })
    #expect(
        kept[.missingColon]?.map { String(decoding: $0.line, as: UTF8.self) } == ["bad 3", "bad 4", "bad 5", "bad 6", "bad 7"])
    #expect(kept[.lineTooLong]?.map { "\($0.line.count) \($0.truncated) \($0.input)" } == ["200 true tcp"])
    #expect(kept[.invalidTags]?.map { String(decoding: $0.line, as: UTF8.self) } == [TagPolicy.withheld])
    #expect(kept[.emptyName] == [])
}

@Test func topAnswersBadLimitsWith400() {
    let top = TopStatistics(metrics: SelfMetrics(readers: 1))
    defer { top.stop() }
    func status(_ query: String) -> Int {
        var head = HTTPRequestHead(method: "GET", path: "/api/v1/top", minorVersion: 1, headers: [])
        head.query = query
        return top.answer(head).status
    }
    #expect(status("") == 200)
    #expect(status("limit=1000") == 200)
    #expect(status("limit=0") == 400)
    #expect(status("limit=1001") == 400)
    #expect(status("limit=x") == 400)
    #expect(status("other=1") == 400)
}

@Test func theHistoryKeepsFifteenMinutesOfRates() {
    var history = TopHistory()
    history.add(time: 0, interval: 10, lines: 0, drops: 0)
    for i in 1...100 { history.add(time: EpochMillis(i) * 10_000, interval: 10, lines: UInt64(i) * 500, drops: UInt64(i)) }
    #expect(history.points.count == 91)  // 900 s back from 1,000 s: from 100 s on
    #expect(history.points.first.map { "\($0.time) \($0.linesPerSecond) \($0.dropsPerSecond)" } == "100000 50.0 0.1")
}

/// With a mapping, the answer lists each rule with the lines it mapped in the window (its
/// hits), most first, then in file order; a line no rule maps counts for none.
@Test func mappingRuleHitsAreTheWindowsLinesOfEachRule() throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("top-rules-\(UUID().uuidString).yml").path
    try """
    mappings:
    - match: "api.*"
      name: "api_calls"
      labels: {route: "$1"}
    - match: "db.*"
      name: "db_queries"
    - match: "never.*"
      name: "never"
    """.write(toFile: path, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let rules = try MappingRules(path: path, maxNameBytes: 256)
    var configuration = AggregationConfiguration(shards: 2)
    configuration.mapping = rules
    let table = ShardedTable(configuration: configuration, seed: 3)
    let metrics = SelfMetrics(readers: 1)
    let flusher = Flusher(
        table: table, configuration: FlushConfiguration(intervalMillis: 10_000, seriesTTLMillis: 0), startMillis: 0,
        metrics: metrics
    ) { _ in }
    var tally = TopTally()
    ingest(table, ["api.a:1|c", "api.b:1|c", "api.a:1|c", "db.x:3|ms", "other:1|c"])
    tally.add(flusher.flush(at: 10_000))
    ingest(table, ["db.x:3|ms", "db.x:4|ms", "db.y:1|g"])
    tally.add(flusher.flush(at: 20_000))
    let top = TopStatistics(metrics: metrics, mapping: rules)
    defer { top.stop() }
    top.publishForTesting(TopStatistics.snapshot(of: tally, flushes: 2))
    let json = String(decoding: top.render(limit: 20), as: UTF8.self)
    #expect(
        json.contains(
            #""mapping":{"rules":[{"line":5,"match":"db.*","lines":4},{"line":2,"match":"api.*","lines":3},{"line":7,"match":"never.*","lines":0}],"#
        ), "\(json)")
}

/// At a 1 s flush interval the window keeps one entry per 10 s, not one per flush, and its
/// lines are the same as if every flush were kept.
@Test func theWindowMergesFlushesWithinTenSeconds() {
    var tally = TopTally()
    let key = MetricKey(type: .counter, name: "a")
    let other = MetricKey(type: .counter, name: "b")
    for second in 1...400 {
        var counters = [CounterSummary(key: key, value: 1, rate: 1, lines: 2)]
        if second % 3 == 0 { counters.append(CounterSummary(key: other, value: 1, rate: 1, lines: 5)) }
        tally.add(
            FlushBatch(sequence: 0, timestamp: EpochMillis(second) * 1000, interval: 1, percentiles: [], counters: counters))
    }
    #expect(tally.window.count == 31)
    #expect(tally.windowLength == 301)
    // The window covers seconds 100-400 (the bucket of 100-109 closed at 109): 301 flushes, of
    // which 100 (102, 105 ... 399) have lines of `b`.
    let lines = Dictionary(
        uniqueKeysWithValues: tally.names.compactMap { $0 }.map { (String(decoding: $0.bytes, as: UTF8.self), $0.windowLines) })
    #expect(lines == ["a": 602, "b": 5 * 100])
}

@Test func mergingTwoFlushesAddsTheirLinesByName() {
    let earlier = TopTally.Flush(timestamp: 1_000, interval: 1, lines: [(0, 1), (2, 3)], otherLines: 1, ruleLines: [7: 1])
    let later = TopTally.Flush(
        timestamp: 2_000, interval: 1, lines: [(1, 5), (2, 4), (3, 1)], otherLines: 2, ruleLines: [7: 2, 8: 1])
    let m = TopTally.merged(earlier, later)
    #expect(m.timestamp == 2_000 && m.interval == 2 && m.otherLines == 3)
    #expect(m.lines.map { "\($0.name):\($0.lines)" } == ["0:1", "1:5", "2:7", "3:1"])
    #expect(m.ruleLines == [7: 3, 8: 1])
}

@Test func aTimestampedSampleIsALineOfItsName() {
    let h = TopHarness()
    let now = WallClock.nowMillis().floorDiv(1000)
    ingest(h.table, ["p:1|c|T\(now)", "p:1|c|T\(now)", "q:1|g|T\(now)"])
    _ = h.flush(at: 10_000)
    let lines = Dictionary(
        uniqueKeysWithValues: h.tally.names.compactMap { $0 }.map { (String(decoding: $0.bytes, as: UTF8.self), $0.windowLines) })
    #expect(lines == ["p": 2, "q": 1])
}

/// The tables are sorted when a request asks, at most once per batch, not for every batch.
@Test func theTablesAreMadeOnlyWhenAsked() throws {
    let top = TopStatistics(metrics: SelfMetrics(readers: 1))
    defer { top.stop() }
    let key = MetricKey(type: .counter, name: "a")
    // One at a time (the queue holds four, and drops past them).
    let deadline = WallClock.monotonicSeconds() + 10
    for n in 1...5 {
        top.offer(
            FlushBatch(
                sequence: UInt64(n), timestamp: EpochMillis(n) * 10_000, interval: 10, percentiles: [],
                counters: [CounterSummary(key: key, value: 1, rate: 0.1, lines: 1)]))
        while top.counts.flushes < UInt64(n), WallClock.monotonicSeconds() < deadline { usleep(1_000) }
    }
    #expect(top.counts.flushes == 5)
    #expect(top.counts.tablesMade == 0)
    let first = String(decoding: top.render(limit: 1), as: UTF8.self)
    _ = top.render(limit: 1)
    #expect(top.counts.tablesMade == 1)
    #expect(first.hasPrefix(#"{"window_seconds":50,"flushes":5,"limit":1,"names_by_lines":[{"name":"a","lines":5,"#))
}
