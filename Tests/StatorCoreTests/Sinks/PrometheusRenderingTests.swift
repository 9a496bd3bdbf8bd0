import Foundation
import Testing
@testable import StatorCore

/// Feeds lines through the real aggregation and flush into a Prometheus sink; returns its page.
private func page(
    _ flushes: [[String]], prefix: String = "", buckets: HistogramBuckets = HistogramBuckets(),
    ttlMillis: Int64 = 300_000, metrics: SelfMetrics = SelfMetrics(readers: 1)
) throws -> String {
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 4, buckets: buckets), seed: 7)
    let sink = PrometheusSink(
        configuration: PrometheusConfiguration(prefix: prefix, buckets: buckets), metrics: metrics,
        reservedNames: SelfMetricsPage.familyNames)
    let flusher = Flusher(
        table: table, configuration: FlushConfiguration(intervalMillis: 10_000, seriesTTLMillis: ttlMillis),
        startMillis: 0, metrics: metrics
    ) { try? sink.emit($0) }
    for (n, lines) in flushes.enumerated() {
        ingest(table, lines)
        flusher.flush(at: EpochMillis(n + 1) * 10_000)
    }
    return String(decoding: sink.page.body, as: UTF8.self)
}

@Test func rendersACounterCumulatively() throws {
    #expect(
        try page([["api.requests:1|c|#env:prod", "api.requests:2|c|@0.5|#env:prod"], [], ["api.requests:3|c|#env:prod"]]) == """
            # HELP api_requests_total statsd counter api.requests
            # TYPE api_requests_total counter
            api_requests_total{env="prod"} 8

            """)
}

@Test func rendersAGaugeAsItsLastValue() throws {
    #expect(
        try page([["temp:20|g"], ["temp:+1.5|g"], []]) == """
            # HELP temp statsd gauge temp
            # TYPE temp gauge
            temp 21.5

            """)
}

@Test func rendersASetAsLastIntervalDistinctCountThenZero() throws {
    #expect(try page([["users:a|s", "users:b|s"]]).hasSuffix("users 2\n"))
    #expect(
        try page([["users:a|s", "users:b|s"], []]) == """
            # HELP users statsd set users
            # TYPE users gauge
            users 0

            """)
}

@Test func rendersATimerAsAHistogramInSeconds() throws {
    let buckets = HistogramBuckets(defaults: [0.01, 0.1, 1])
    #expect(
        try page(
            [["db.query:5|ms|#table:users", "db.query:50|ms|@0.5|#table:users"], ["db.query:2000|ms|#table:users"]],
            buckets: buckets) == """
                # HELP db_query_seconds statsd timer db.query
                # TYPE db_query_seconds histogram
                db_query_seconds_bucket{le="0.01",table="users"} 1
                db_query_seconds_bucket{le="0.1",table="users"} 3
                db_query_seconds_bucket{le="1",table="users"} 3
                db_query_seconds_bucket{le="+Inf",table="users"} 4
                db_query_seconds_sum{table="users"} 2.105
                db_query_seconds_count{table="users"} 4

                """)
}

@Test func rendersHistogramsAndDistributionsWithoutUnitChange() throws {
    let buckets = HistogramBuckets(defaults: [1, 10])
    #expect(
        try page([["size:5|h|#a:x,z:y,le:oops", "dist:0.5|d"]], buckets: buckets).contains(
            """
            # HELP size statsd histogram size
            # TYPE size histogram
            size_bucket{a="x",exported_le="oops",le="1",z="y"} 0
            size_bucket{a="x",exported_le="oops",le="10",z="y"} 1
            size_bucket{a="x",exported_le="oops",le="+Inf",z="y"} 1
            size_sum{a="x",exported_le="oops",z="y"} 5
            size_count{a="x",exported_le="oops",z="y"} 1

            """))
    #expect(try page([["dist:0.5|d"]], buckets: buckets).contains("dist_bucket{le=\"1\"} 1\n"))
}

@Test func histogramLabelsAfterLeKeepTheirPlace() throws {
    let text = try page([["x:5|h|#zone:b"]], buckets: HistogramBuckets(defaults: [1]))
    #expect(text.contains("x_bucket{le=\"1\",zone=\"b\"} 0\n"))
    #expect(text.contains("x_sum{zone=\"b\"} 5\n"))
}

@Test func bucketOverridesUseTheFirstMatchingGlob() throws {
    let buckets = HistogramBuckets(
        defaults: [1], overrides: [.init(match: "api.*", buckets: [0.1, 0.2]), .init(match: "api.x", buckets: [5])])
    let text = try page([["api.x:100|ms", "other:1|ms"]], buckets: buckets)
    #expect(text.contains("api_x_seconds_bucket{le=\"0.1\"} 1\n"))
    #expect(text.contains("api_x_seconds_bucket{le=\"0.2\"} 1\n"))
    #expect(!text.contains("api_x_seconds_bucket{le=\"5\"}"))
    #expect(text.contains("other_seconds_bucket{le=\"1\"} 1\n"))
}

struct NameCase: Sendable, CustomTestStringConvertible {
    var statsd: String
    var type: MetricType
    var prefix: String
    var expected: String
    var testDescription: String { "\(statsd)|\(type) -> \(expected)" }
}

@Test(arguments: [
    NameCase(statsd: "api.requests", type: .counter, prefix: "", expected: "api_requests_total"),
    NameCase(statsd: "requests_total", type: .counter, prefix: "", expected: "requests_total"),
    NameCase(statsd: "api.latency", type: .timer, prefix: "", expected: "api_latency_seconds"),
    NameCase(statsd: "latency_seconds", type: .timer, prefix: "", expected: "latency_seconds"),
    NameCase(statsd: "latency.seconds", type: .timer, prefix: "", expected: "latency_seconds"),
    NameCase(statsd: "9lives", type: .gauge, prefix: "", expected: "_9lives"),
    NameCase(statsd: "a-b/c d:e", type: .gauge, prefix: "", expected: "a_b_c_d_e"),
    NameCase(statsd: "héllo", type: .gauge, prefix: "", expected: "h__llo"),
    NameCase(statsd: "size", type: .histogram, prefix: "", expected: "size"),
    NameCase(statsd: "users", type: .set, prefix: "app_", expected: "app_users"),
    NameCase(statsd: "hits", type: .counter, prefix: "app_", expected: "app_hits_total"),
    NameCase(statsd: "9x", type: .gauge, prefix: "app_", expected: "app_9x"),
])
func namesFollowTheSpec(_ c: NameCase) {
    #expect(PrometheusNaming.familyName(prefix: c.prefix, statsdName: c.statsd, type: c.type) == c.expected)
}

@Test func labelsAreSanitizedEscapedSortedAndFiltered() throws {
    let text = try page([[#"weird:1|g|#zeta:1,__hidden:x,empty:,9k:v,a.b:1,quote:say "hi"\now,back:a\b"#]])
    #expect(text.hasSuffix(#"weird{_9k="v",a_b="1",back="a\\b",quote="say \"hi\"\\now",zeta="1"} 1"# + "\n"))
}

@Test func seriesWhoseNamesAndLabelsCoincideAreMerged() throws {
    let text = try page([["a.b:1|c|#k.x:1", "a_b:2|c|#k_x:1"]])
    #expect(text.hasSuffix("a_b_total{k_x=\"1\"} 3\n"))
}

@Test func aFamilyKeepsItsFirstTypeAndConflictsAreCounted() throws {
    let metrics = SelfMetrics(readers: 1)
    let text = try page([["hits:1|c"], ["hits_total:5|g", "hits:1|c"], ["hits_total:5|g"]], metrics: metrics)
    #expect(text.contains("# TYPE hits_total counter\nhits_total 2\n"))
    #expect(!text.contains("gauge"))
    // Counted once per flush in which the conflicting series had data.
    #expect(metrics.labeledValue(SelfMetrics.seriesDropped("prometheus", "type_conflict")) == 2)
}

@Test func statsdFamiliesMayNotTakeTheAgentsOwnNames() throws {
    let metrics = SelfMetrics(readers: 1)
    let text = try page([["stator.lines.received:1|c", "process.open.fds:1|g"]], metrics: metrics)
    #expect(text.isEmpty)
    #expect(metrics.labeledValue(SelfMetrics.seriesDropped("prometheus", "type_conflict")) == 2)
}

@Test func histogramDerivedNamesDoNotCollide() throws {
    let metrics = SelfMetrics(readers: 1)
    let text = try page(
        [["x:1|h"], ["x_count:3|g", "x.bucket:1|g"]], buckets: HistogramBuckets(defaults: [1]), metrics: metrics)
    #expect(text.contains("# TYPE x histogram"))
    #expect(!text.contains("# TYPE x_count"))
    #expect(!text.contains("# TYPE x_bucket"))
    #expect(metrics.labeledValue(SelfMetrics.seriesDropped("prometheus", "type_conflict")) == 2)
}

@Test func expiredSeriesLeaveThePage() throws {
    // TTL 20 s: data at 10 s only; gone once 20 s have passed since that interval ended.
    let text = try page([["gone:1|c", "stay:1|g"], ["stay:2|g"], ["stay:3|g"]], ttlMillis: 20_000)
    #expect(!text.contains("gone"))
    #expect(text.contains("stay 3"))
    let both = try page([["gone:1|c", "stay:1|g"], ["stay:2|g"]], ttlMillis: 20_000)
    #expect(both.contains("gone_total 1"))
}

@Test func orderIsStableBetweenScrapesAndFamiliesAreGrouped() throws {
    let lines = (0..<50).map { "m\($0 % 5):1|c|#i:\($0)" }
    let first = try page([lines, lines])
    let second = try page([lines, lines])
    #expect(first == second)
    // Each family's HELP appears once and its series follow it.
    for f in 0..<5 { #expect(first.components(separatedBy: "# HELP m\(f)_total ").count == 2) }
    let names = first.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { $0.prefix { $0 != "{" } }
    var seen: [Substring] = []
    for n in names where seen.last != n {
        #expect(!seen.contains(n), "family \(n) is split")
        seen.append(n)
    }
}

@Test func infinityIsWrittenAsPrometheusInf() throws {
    #expect(try page([["big:1e308|g", "big:+1e308|g"]]).hasSuffix("big +Inf\n"))
}

@Test func gzipRoundTripsAndMembersConcatenate() throws {
    let a = Array("hello ".utf8)
    let b = Array(String(repeating: "world ", count: 1000).utf8)
    let joined = Gzip.compress(a) + Gzip.compress(b)
    #expect(try gunzip(joined) == a + b)
    #expect(try gunzip(Gzip.compress([])) == [])
}

@Test func expiredSlotsAreReusedWithoutDisturbingOrder() throws {
    // b expires after the first flush (TTL 10 s); d arrives later and takes its place in storage.
    let text = try page([["a:1|g", "b:1|g", "c:1|g"], ["a:2|g", "c:2|g"], ["a:3|g", "c:3|g", "d:1|g"]], ttlMillis: 10_000)
    let names = text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { String($0.prefix { $0 != " " }) }
    #expect(names == ["a", "c", "d"])
}

@Test func aMergedSeriesLivesUntilItsLastContributorExpires() throws {
    let text = try page([["x.y:1|c", "x_y:1|c"], ["x_y:1|c"], ["x_y:1|c"]], ttlMillis: 15_000)
    #expect(text.hasSuffix("x_y_total 4\n"))
    let gone = try page([["x.y:1|c", "x_y:1|c"], [], [], []], ttlMillis: 15_000)
    #expect(gone.isEmpty)
}

@Test func largePagesAreKeptGzippedAndInflatedOnDemand() throws {
    let lines = (0..<60_000).map { "big.page.series.number.\($0):1|c" }
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 4), seed: 1)
    let sink = PrometheusSink(configuration: PrometheusConfiguration(), metrics: SelfMetrics(readers: 1), reservedNames: [])
    let flusher = Flusher(table: table, configuration: FlushConfiguration(), startMillis: 0, metrics: SelfMetrics(readers: 1)) {
        try? sink.emit($0)
    }
    ingest(table, lines)
    flusher.flush(at: 10_000)
    let page = sink.page
    let text = page.body
    #expect(text.count > PrometheusPage.keepPlainUpTo)
    #expect(page.gzipped.count * 5 < text.count)
    #expect(Gzip.decompress(page.gzipped) == text)
    #expect(String(decoding: text.suffix(40), as: UTF8.self).contains("_total 1\n"))
    // A plain-text client gets it inflated a slice at a time, as it reads.
    #expect(page.textLength == text.count)
    let stream = try #require(page.plainStream())
    var streamed: [UInt8] = []
    var slices = 0
    while let chunk = stream.next() {
        #expect(!chunk.isEmpty)
        streamed += chunk
        slices += 1
    }
    #expect(streamed == text)
    #expect(slices > 10)
}

/// Names made of `stem` and a number whose exposed forms (each name plus each of `suffixes`)
/// all fall in the first `buckets` buckets of a 64-bucket name index (`CumulativeState.nameHash`):
/// a test of a state whose index stays at 64 buckets (64 names or fewer) puts them in a
/// few long collision chains.
func collidingNames(_ stem: String, count: Int, suffixes: [String] = [""], buckets: Int = 4) -> [String] {
    var names: [String] = []
    var n = 0
    while names.count < count {
        let name = "\(stem)\(n)"
        n += 1
        if suffixes.allSatisfy({ CumulativeState.nameHash(Array((name + $0).utf8)) & 63 < buckets }) {
            names.append(name)
        }
    }
    return names
}

let histogramSuffixes = ["", "_bucket", "_sum", "_count"]

@Test func familiesWhoseNamesCollideInTheIndexStayCorrect() throws {
    // Every exposed name falls in one of four buckets: the index's collision chains carry everything.
    let state = CumulativeState(prefix: "", reservedNames: [], metrics: nil)
    let table = ShardedTable(
        configuration: AggregationConfiguration(shards: 2, buckets: HistogramBuckets(defaults: [1])), seed: 5)
    let flusher = Flusher(
        table: table, configuration: FlushConfiguration(intervalMillis: 10_000, seriesTTLMillis: 15_000),
        startMillis: 0, metrics: SelfMetrics(readers: 1)
    ) { state.apply($0) }
    func names() -> [String] {
        String(decoding: PrometheusTextEncoder.render(state), as: UTF8.self).split(separator: "\n")
            .filter { $0.hasPrefix("# TYPE ") }.map { String($0.split(separator: " ")[2]) }
    }
    let f = collidingNames("f", count: 20)
    let h = collidingNames("h", count: 1, suffixes: histogramSuffixes)[0]
    let k = collidingNames("k", count: 1, suffixes: histogramSuffixes)[0]
    // Two histograms (four names each): h expires, k stays.
    ingest(table, f.map { "\($0):1|g" } + ["\(h):1|h", "\(h)_count:1|g", "c:1|c", "\(k):1|h"])
    flusher.flush(at: 10_000)
    #expect(names().count == 23)  // h_count is taken by the histogram h
    #expect(!names().contains("\(h)_count"))
    // Half the gauges stay alive; the rest expire and are unlinked from their chains.
    ingest(table, f[..<10].map { "\($0):2|g" } + ["\(k):2|h"])
    flusher.flush(at: 20_000)
    ingest(table, f[..<10].map { "\($0):3|g" } + ["\(k):3|h"])
    flusher.flush(at: 30_000)
    #expect(Set(names()) == Set(f[..<10] + [k]))
    #expect(!names().contains("\(k)_count"))
    // Names freed by expiry can be registered again, with another type.
    ingest(
        table, f[..<10].map { "\($0):4|g" } + ["\(h)_count:5|g", "\(f[15]):1|c", "\(h):2|c", "\(k)_sum:1|g", "\(k):4|h"])
    flusher.flush(at: 40_000)
    #expect(Set(names()) == Set(f[..<10] + ["\(h)_count", "\(f[15])_total", "\(h)_total", k]))
    #expect(state.familyCount == 14)  // k_sum is still taken by the histogram k
    #expect(state.withState { $0.nameHeads.count } == 64)  // so the names shared four chains
}

@Test func aMassExpiryShrinksTheStateAndLeavesThePageAsIfItNeverHappened() throws {
    // Survivors of every kind, with and without labels.
    let keep = ["keep.c:1|c|#a:b", "keep.c:2|c|#a:c", "keep.t:5|ms", "keep.g:3|g", "keep.h:2|h|#x:y", "keep.s:u|s"]
    let bomb = (0..<5_000).map { "bomb.\($0):1|c" }
    func run(_ first: [String]) -> (page: String, series: Int, slots: Int) {
        let metrics = SelfMetrics(readers: 1)
        let table = ShardedTable(configuration: AggregationConfiguration(shards: 1), seed: 7)
        let sink = PrometheusSink(
            configuration: PrometheusConfiguration(), metrics: metrics, reservedNames: SelfMetricsPage.familyNames)
        let flusher = Flusher(
            table: table, configuration: FlushConfiguration(intervalMillis: 10_000, seriesTTLMillis: 20_000),
            startMillis: 0, metrics: metrics
        ) { try? sink.emit($0) }
        // The bomb's series expire at the third flush; the fourth adds new series to the compacted state.
        for (n, lines) in [first, keep, keep, keep + ["new.c:1|c", "new.h:7|h|#q:r"]].enumerated() {
            ingest(table, lines)
            flusher.flush(at: EpochMillis(n + 1) * 10_000)
        }
        let series = sink.state.withState { $0.series.count }
        return (String(decoding: sink.page.body, as: UTF8.self), series, table.slotCount)
    }
    let bombed = run(bomb + keep)
    let calm = run(keep)
    #expect(bombed.page == calm.page)
    #expect(bombed.page.contains("new_h_bucket{le=\"+Inf\",q=\"r\"} 1"))
    // Compacted: no room left for the 5,000 expired series, in the state or in the table.
    #expect(bombed.series == calm.series)
    #expect(bombed.slots < 100)
}

@Test func aReusedSeriesNumberIsNotTakenForItsEarlierHolder() throws {
    // The table numbers series densely and gives an expired series' number to the next new one.
    // A state that never saw the expiry (every sink sharing it dropped that batch) must not add
    // the newcomer to the old series.
    let metrics = SelfMetrics(readers: 1)
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 1), seed: 7)
    let flusher = Flusher(
        table: table, configuration: FlushConfiguration(intervalMillis: 10_000, seriesTTLMillis: 10_000),
        startMillis: 0, metrics: metrics
    ) { _ in }
    ingest(table, ["old:5|c"])
    let first = flusher.flush(at: 10_000)
    let expiring = flusher.flush(at: 20_000)
    #expect(expiring.expired.map(\.name) == ["old"])
    ingest(table, ["new:2|c"])
    let third = flusher.flush(at: 30_000)
    #expect(third.counters.first?.key.series.index == first.counters.first?.key.series.index)

    let sink = PrometheusSink(configuration: PrometheusConfiguration(), metrics: metrics, reservedNames: [])
    try sink.emit(first)
    try sink.emit(third)  // `expiring` never arrives
    let text = String(decoding: sink.page.body, as: UTF8.self)
    #expect(text.contains("new_total 2\n"))
    #expect(!text.contains("old_total"))

    // With every batch, the same two series come and go as expected.
    let complete = PrometheusSink(configuration: PrometheusConfiguration(), metrics: metrics, reservedNames: [])
    for batch in [first, expiring, third] { try complete.emit(batch) }
    #expect(String(decoding: complete.page.body, as: UTF8.self) == text)
}

@Test func everyNameOfEveryHistogramStaysFindableInCollidingChains() throws {
    // Four buckets for every exposed name: lookups walk chains through all four names of
    // several histograms. Every name taken must stay findable, or a second family would take
    // it. (Four of each keep the index at 64 buckets, which `collidingNames` assumes.)
    let metrics = SelfMetrics(readers: 1)
    let state = CumulativeState(prefix: "", reservedNames: [], metrics: metrics)
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 2), seed: 3)
    let flusher = Flusher(
        table: table, configuration: FlushConfiguration(intervalMillis: 10_000, seriesTTLMillis: 0),
        startMillis: 0, metrics: metrics
    ) { state.apply($0) }
    let g = collidingNames("g", count: 4)
    let h = collidingNames("h", count: 4, suffixes: histogramSuffixes)
    ingest(table, g.map { "\($0):1|g" })
    flusher.flush(at: 10_000)
    ingest(table, h.map { "\($0):1|h" })
    flusher.flush(at: 20_000)
    // Each of these names is taken already, by a gauge or by a histogram's derived names.
    let taken = g.map { "\($0):1|h" } + h.flatMap { name in histogramSuffixes.map { "\(name)\($0):1|g" } }
    ingest(table, taken)
    flusher.flush(at: 30_000)
    #expect(state.familyCount == 8)
    #expect(state.withState { $0.nameHeads.count } == 64)  // so the names shared four chains
    #expect(metrics.labeledValue(SelfMetrics.seriesDropped("prometheus", "type_conflict")) == UInt64(taken.count))
}

@Test func flushesRenderThePageOnlyWhileSomeoneReadsIt() throws {
    let metrics = SelfMetrics(readers: 1)
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 4), seed: 7)
    let sink = PrometheusSink(
        configuration: PrometheusConfiguration(), metrics: metrics, reservedNames: SelfMetricsPage.familyNames)
    let flusher = Flusher(
        table: table, configuration: FlushConfiguration(intervalMillis: 10_000), startMillis: 0, metrics: metrics
    ) { try? sink.emit($0) }
    func flush(_ n: Int64, _ lines: [String]) {
        ingest(table, lines)
        flusher.flush(at: n * 10_000)
    }
    // Nobody has asked: flushes fold their batches in without rendering.
    flush(1, ["hits:1|c"])
    flush(2, ["hits:2|c"])
    #expect(sink.renders == 0)
    // The first request renders the state as of the last flush, once.
    #expect(String(decoding: sink.page.body, as: UTF8.self).contains("hits_total 3"))
    #expect(sink.renders == 1)
    _ = sink.page
    #expect(sink.renders == 1)
    // Someone reads the page now: each flush renders it ahead of the next request.
    flush(3, ["hits:4|c"])
    #expect(sink.renders == 2)
    #expect(String(decoding: sink.page.body, as: UTF8.self).contains("hits_total 7"))
    #expect(sink.renders == 2)
}

@Test func newSeriesJoinThePageByNameThenByWholeKey() {
    // `pageOrder` compares in place; it must order as the plain definition does: name bytes
    // (a prefix first), then the whole key.
    func reference(_ a: MetricKey, _ b: MetricKey) -> Bool {
        let (ka, kb) = (a.bytes, b.bytes)
        let na = ka[3..<(3 + (Int(ka[1]) | Int(ka[2]) << 8))]
        let nb = kb[3..<(3 + (Int(kb[1]) | Int(kb[2]) << 8))]
        if na.elementsEqual(nb) { return ka.lexicographicallyPrecedes(kb) }
        return na.lexicographicallyPrecedes(nb)
    }
    var rng = SplitMix64(state: 17)
    let names = ["a", "ab", "a.b", "b", "", "zz", "a\u{FF}", "ä"]
    var keys: [MetricKey] = []
    for _ in 0..<300 {
        let name = names[Int(rng.next() % UInt64(names.count))] + (rng.next() % 3 == 0 ? "x" : "")
        let type = MetricType.allCases[Int(rng.next() % 6)]
        let tags = (0..<Int(rng.next() % 3)).map { ("k\($0)", "v\(rng.next() % 3)") }
        keys.append(MetricKey(type: type, name: name.isEmpty ? "n" : name, tags: tags))
    }
    for a in keys {
        for b in keys.prefix(60) {
            #expect(CumulativeState.pageOrder(a, b) == reference(a, b), "\(a) vs \(b)")
        }
    }
    #expect(keys.sorted(by: CumulativeState.pageOrder).map(\.bytes) == keys.sorted(by: reference).map(\.bytes))
}

@Test(arguments: [false, true])
func labelsOfPlainTagsAreRenderedAsTheGeneralPathRendersThem(histogram: Bool) throws {
    // Tags that keep their names and order take the one-pass path; the rest are renamed,
    // filtered and sorted. Both must give the same labels.
    let plain: [[(String, String)]] = [
        [], [("a", "1")], [("a", "1"), ("b", "2")], [("a", "1"), ("lf", "5"), ("z", "9")],
        [("l", "1"), ("lf", "2"), ("m", "3")], [("k", #"say "hi"\now"#)], [("A", "1"), ("_x", "2"), ("b9", "3")],
    ]
    let renamed: [[(String, String)]] = [
        [("a.b", "1")], [("9k", "v")], [("__hidden", "x"), ("a", "1")], [("empty", ""), ("a", "1")],
        [("a.b", "1"), ("a_b", "2")], [("k.x", "1"), ("k_y", "2")], [("x-1", "1"), ("x_1", "2")], [("", "1")],
    ]
    // `le` is a plain label name except on a histogram.
    let le: [[(String, String)]] = [[("host", "web-1"), ("le", "x")], [("a", "1"), ("le", "5"), ("z", "9")]]
    for (tags, onePass) in plain.map({ ($0, true) }) + renamed.map({ ($0, false) }) + le.map({ ($0, !histogram) }) {
        let key = MetricKey(type: histogram ? .histogram : .gauge, name: "n", tags: tags)
        let labels = PrometheusNaming.labels(of: key, histogram: histogram)
        let reserved = histogram ? Array("le".utf8) : nil
        let general = PrometheusNaming.sortedLabels(of: key, reserving: reserved)
        #expect((PrometheusNaming.plainLabels(of: key, reserving: reserved) != nil) == onePass, "\(tags)")
        #expect(labels == general, "\(tags)")
        #expect(labels.hashValue == general.hashValue)
    }
    // Exact renderings, through the one-pass path.
    let key = MetricKey(type: .histogram, name: "n", tags: [("a", "1"), ("le", "5"), ("z", "9")])
    let rendered = PrometheusNaming.labels(of: key, histogram: true)
    #expect(Array(rendered.before) == Array(#"a="1",exported_le="5""#.utf8))
    #expect(Array(rendered.after) == Array(#",z="9""#.utf8))
    let gauge = MetricKey(type: .gauge, name: "n", tags: [("a", "1"), ("b", #"x"y"#)])
    #expect(Array(PrometheusNaming.labels(of: gauge, histogram: false).before) == Array(#"a="1",b="x\"y""#.utf8))
}

@Test func aLargeFirstBatchIndexesEveryName() throws {
    // One batch makes a few thousand families at once (the name index is sized for them in one
    // step); every name they expose must then be found taken, and merged names stay merged.
    let metrics = SelfMetrics(readers: 1)
    let state = CumulativeState(prefix: "", reservedNames: [], metrics: metrics)
    let table = ShardedTable(
        configuration: AggregationConfiguration(shards: 4, buckets: HistogramBuckets(defaults: [1])), seed: 11)
    let flusher = Flusher(
        table: table, configuration: FlushConfiguration(intervalMillis: 10_000, seriesTTLMillis: 60_000),
        startMillis: 0, metrics: metrics
    ) { state.apply($0) }
    let n = 1_500
    ingest(
        table,
        (0..<n).flatMap { ["g.\($0):1|g", "g_\($0):2|g", "h\($0):1|h", "c\($0):1|c|#k:\($0 % 3)", "c\($0):1|c|#k:v"] })
    flusher.flush(at: 10_000)
    #expect(state.familyCount == 3 * n)  // g.N and g_N share one family
    #expect(metrics.labeledValue(SelfMetrics.seriesDropped("prometheus", "type_conflict")) == 0)
    let taken = (0..<n).flatMap { ["g_\($0):1|h", "h\($0)_sum:1|g", "h\($0)_bucket:1|g", "c\($0)_total:1|g"] }
    ingest(table, taken)
    flusher.flush(at: 20_000)
    #expect(state.familyCount == 3 * n)
    #expect(metrics.labeledValue(SelfMetrics.seriesDropped("prometheus", "type_conflict")) == UInt64(taken.count))
}

@Test func theSeriesOfANameShareItsFamilyWhenTheyArriveTogether() throws {
    // New series of one statsd name and type take the family the first of them found or made
    // (`CumulativeState.fold`): each must land in it with its own labels, and a name whose
    // family has another type is left out for every series of it.
    let metrics = SelfMetrics(readers: 1)
    let text = try page(
        [
            ["hits:1|c"],
            [
                "req:3|c|#k:c", "req:1|c|#k:a", "req:2|c|#k:b", "lat:100|ms|#k:b", "lat:20|ms|#k:a",
                "hits_total:5|g|#k:a", "hits_total:6|g|#k:b", "hits:2|c|#k:a",
            ],
        ],
        buckets: HistogramBuckets(defaults: [0.05]), metrics: metrics)
    #expect(
        text == """
            # HELP hits_total statsd counter hits
            # TYPE hits_total counter
            hits_total 1
            hits_total{k="a"} 2
            # HELP lat_seconds statsd timer lat
            # TYPE lat_seconds histogram
            lat_seconds_bucket{k="a",le="0.05"} 1
            lat_seconds_bucket{k="a",le="+Inf"} 1
            lat_seconds_sum{k="a"} 0.02
            lat_seconds_count{k="a"} 1
            lat_seconds_bucket{k="b",le="0.05"} 0
            lat_seconds_bucket{k="b",le="+Inf"} 1
            lat_seconds_sum{k="b"} 0.1
            lat_seconds_count{k="b"} 1
            # HELP req_total statsd counter req
            # TYPE req_total counter
            req_total{k="a"} 1
            req_total{k="b"} 2
            req_total{k="c"} 3

            """)
    #expect(metrics.labeledValue(SelfMetrics.seriesDropped("prometheus", "type_conflict")) == 2)
}

@Test func aSetStillReadsZeroAfterAMassExpiryCompactsTheState() throws {
    // The bomb's 5,000 series expire together at the third flush, and the state compacts
    // (most of its entries are free). The set survives it, but gets no member in that
    // interval: it must read 0 like any set after an empty interval, not its last count.
    let metrics = SelfMetrics(readers: 1)
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 1), seed: 7)
    let sink = PrometheusSink(configuration: PrometheusConfiguration(), metrics: metrics, reservedNames: [])
    let flusher = Flusher(
        table: table, configuration: FlushConfiguration(intervalMillis: 10_000, seriesTTLMillis: 20_000),
        startMillis: 0, metrics: metrics
    ) { try? sink.emit($0) }
    let bomb = (0..<5_000).map { "bomb.\($0):1|c" }
    for (n, lines) in [bomb + ["keep.s:a|s", "keep.s:b|s"], ["keep.s:a|s", "keep.t:1|ms"], ["keep.t:2|ms"]].enumerated() {
        ingest(table, lines)
        flusher.flush(at: EpochMillis(n + 1) * 10_000)
    }
    let (series, histograms) = sink.state.withState { ($0.series.count, $0.histograms.count) }
    #expect(series == 2)  // compacted: the set and the timer
    #expect(histograms == 1)
    let page = String(decoding: sink.page.body, as: UTF8.self)
    #expect(page.contains("\nkeep_s 0\n"))
    #expect(page.contains("keep_t_seconds_count 2\n"))
}

@Test func aggregatesThatOverflowBothWaysReadInfinityNeverNaN() throws {
    // Each value is finite, but the aggregates overflow to +Inf and -Inf and then meet: a gauge
    // at -Inf given deltas that overflow up, a histogram's cumulative _sum, a reservoir's
    // running moments. Every sink must see +Inf, never NaN.
    let metrics = SelfMetrics(readers: 1)
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 1, maxSamplesPerSeries: 1), seed: 7)
    let sink = PrometheusSink(configuration: PrometheusConfiguration(), metrics: metrics, reservedNames: [])
    let flusher = Flusher(
        table: table, configuration: FlushConfiguration(intervalMillis: 10_000), startMillis: 0, metrics: metrics
    ) { try? sink.emit($0) }
    ingest(table, ["g:-1e308|g", "g:-1e308|g", "h:1e308|h", "h:1e308|h", "t:1e308|ms", "t:-1e308|ms", "t:1e308|ms"])
    var batches = [flusher.flush(at: 10_000)]
    ingest(table, ["g:+1e308|g", "g:+1e308|g", "h:-1e308|h", "h:-1e308|h"])
    batches.append(flusher.flush(at: 20_000))
    for batch in batches {
        let numbers =
            batch.gauges.map(\.value) + batch.counters.flatMap { [$0.value, $0.rate] }
            + batch.samples.flatMap { [$0.count, $0.sum, $0.mean, $0.median, $0.stddev, $0.weightedSum] + $0.percentiles }
        #expect(!numbers.contains { $0.isNaN })
        #expect(!String(decoding: JSONLinesEncoder.encode(batch), as: UTF8.self).contains("NaN"))
    }
    #expect(batches[1].gauges.first?.value == .infinity)
    let page = String(decoding: sink.page.body, as: UTF8.self)
    #expect(!page.contains("NaN"))
    #expect(page.contains("\ng +Inf\n"))
    #expect(page.contains("\nh_sum +Inf\n"))
}
