import Testing
@testable import StatorCore

/// A table plus a flusher whose clock starts at 0, so that `flush(at: 10_000)`
/// closes a 10 s interval.
struct Harness {
    let table: ShardedTable
    let flusher: Flusher

    init(
        shards: Int = 4, maxSeries: Int = 1000, maxSamples: Int = 10_000, ttlMillis: Int64 = 300_000,
        percentiles: [Double] = [90, 95, 99], lineLimits: LineLimits = LineLimits()
    ) {
        table = ShardedTable(
            configuration: AggregationConfiguration(
                shards: shards, maxSeries: maxSeries, maxSamplesPerSeries: maxSamples, lineLimits: lineLimits), seed: 42)
        flusher = Flusher(
            table: table,
            configuration: FlushConfiguration(
                intervalMillis: 10_000, seriesTTLMillis: ttlMillis,
                percentiles: percentiles.map(Percentile.init)),
            startMillis: 0, metrics: SelfMetrics(readers: 1)
        ) { _ in }
    }

    @discardableResult
    func send(_ lines: String...) -> [String] { ingest(table, lines) }

    func flush(at ms: EpochMillis) -> FlushBatch { flusher.flush(at: ms) }
}

extension FlushBatch {
    func counter(_ name: String, _ tags: [(String, String)] = []) -> CounterSummary? {
        let key = MetricKey(type: .counter, name: name, tags: tags)
        return counters.first { $0.key == key }
    }
    func gauge(_ name: String) -> Double? { gauges.first { $0.key == MetricKey(type: .gauge, name: name) }?.value }
    func set(_ name: String) -> Double? { sets.first { $0.key == MetricKey(type: .set, name: name) }?.value }
    func sample(_ name: String, _ type: MetricType = .timer) -> SampleSummary? {
        samples.first { $0.key == MetricKey(type: type, name: name) }
    }
}

@Test func countersAreRateScaledSums() throws {
    let h = Harness()
    h.send("c:1|c", "c:2|c|@0.5", "c:3|c|@0.1", "c:1:1|c")
    let batch = h.flush(at: 10_000)
    let c = try #require(batch.counter("c"))
    #expect(c.value == 1 + 4 + 30 + 2)
    #expect(c.rate == 3.7)
    #expect(batch.interval == 10)
}

@Test func countersAppearOnlyInIntervalsWithData() throws {
    let h = Harness()
    h.send("c:1|c")
    #expect(h.flush(at: 10_000).counters.count == 1)
    #expect(h.flush(at: 20_000).counters.isEmpty)
    h.send("c:5|c")
    #expect(try #require(h.flush(at: 30_000).counter("c")).value == 5)
}

@Test func gaugesSetAddAndRepeat() {
    let h = Harness()
    h.send("g:+3|g")  // new series: delta from 0
    #expect(h.flush(at: 10_000).gauge("g") == 3)
    h.send("g:-1|g", "g:+10|g")
    #expect(h.flush(at: 20_000).gauge("g") == 12)
    #expect(h.flush(at: 30_000).gauge("g") == 12)  // repeated while alive
    h.send("g:+1|g", "g:5|g", "g:+2|g")  // the set wins over the earlier delta; later deltas add
    #expect(h.flush(at: 40_000).gauge("g") == 7)
    h.send("g:-0|g", "g:4|g|@0.5")  // the rate is ignored for gauges
    #expect(h.flush(at: 50_000).gauge("g") == 4)
}

@Test func setsCountDistinctMembersPerInterval() {
    let h = Harness()
    h.send("u:alice|s", "u:bob|s", "u:alice|s", "u:carol|s|@0.5", "u:bob|s")
    #expect(h.flush(at: 10_000).set("u") == 3)
    #expect(h.flush(at: 20_000).set("u") == nil)
    h.send("u:alice|s")
    #expect(h.flush(at: 30_000).set("u") == 1)
}

@Test func aSetsTableIsSizedForItsLastIntervalsMembers() {
    // Grown once, a set's table starts the next interval at the size it reached (no regrowing
    // through the sizes below), and shrinks again after an interval with fewer members. One
    // reader throughout, as a reader thread runs: the hint of a set that the reader adds to in
    // its own share lives in the reader's record of the line (see `LockedReaderAggregates`).
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 1), seed: 1)
    var reader = ReaderAggregator(table: table)
    func ingest(_ table: ShardedTable, _ lines: [String]) {
        for line in lines { Array(line.utf8).withUnsafeBytes { reader.ingest($0) } }
    }
    func drained(_ generation: UInt32) -> [SetAggregate] { table.drainAll(nextGeneration: generation).flatMap(\.sets) }
    ingest(table, (0..<100).map { "s:m\($0)|s" })
    let first = drained(2)
    #expect(first.map(\.members.count) == [100])
    #expect(first.map(\.members.capacity) == [256])
    ingest(table, ["s:x|s"])
    let second = drained(3)
    #expect(second.map(\.members.count) == [1])
    #expect(second.map(\.members.capacity) == [256])
    ingest(table, ["s:y|s", "s:z|s"])
    let third = drained(4)
    #expect(third.map(\.members.count) == [2])
    #expect(third.map(\.members.capacity) == [8])
}

@Test func timerStatisticsEvenCount() throws {
    let h = Harness()
    h.send("t:" + (1...10).map(String.init).joined(separator: ":") + "|ms")
    let t = try #require(h.flush(at: 10_000).sample("t"))
    #expect(t.count == 10)
    #expect(t.samples == 10)
    #expect(t.rate == 1)
    #expect(t.sum == 55)
    #expect(t.min == 1)
    #expect(t.max == 10)
    #expect(t.mean == 5.5)
    #expect(t.median == 5.5)
    #expect(t.stddev == 8.25.squareRoot())
    // etsy ranks: p90 -> floor(9.5) = 9, p95 -> floor(10) = 10, p99 -> floor(10.4) = 10
    #expect(t.percentiles == [9, 10, 10])
}

@Test func timerStatisticsOddCount() throws {
    let h = Harness(percentiles: [50, 75, 99.9])
    h.send("t:3|ms", "t:1|ms", "t:2|ms", "t:10|ms", "t:4|ms")
    let batch = h.flush(at: 10_000)
    let t = try #require(batch.sample("t"))
    #expect(t.median == 3)
    #expect(t.mean == 4)
    #expect(t.stddev == 10.0.squareRoot())  // deviations 1,9,4,36,0 -> 50/5
    // p50: floor(2.5+0.5)=3 -> 3; p75: floor(3.75+0.5)=4 -> 4; p99.9: floor(4.995+0.5)=5 -> 10
    #expect(t.percentiles == [3, 4, 10])
    #expect(batch.percentiles.map(\.label) == ["50", "75", "99.9"])
}

@Test func singleSamplePercentilesClampToRankOne() throws {
    let h = Harness(percentiles: [1, 50, 100])
    h.send("t:7|ms")
    let t = try #require(h.flush(at: 10_000).sample("t"))
    #expect(t.percentiles == [7, 7, 7])
    #expect(t.median == 7)
    #expect(t.stddev == 0)
}

@Test func sampleRatesWeighCountButNotStatistics() throws {
    let h = Harness()
    h.send("t:10|ms|@0.1", "t:20|ms|@0.5", "t:30|ms")
    let t = try #require(h.flush(at: 10_000).sample("t"))
    #expect(t.count == 13)
    #expect(t.samples == 3)
    #expect(t.rate == 1.3)
    #expect(t.sum == 60)
    #expect(t.mean == 20)
}

@Test func histogramsAndDistributionsAreSeparateSeriesFromTimers() throws {
    let h = Harness()
    h.send("x:1|ms", "x:2|h", "x:3|d", "x:4|c")
    let batch = h.flush(at: 10_000)
    #expect(try #require(batch.sample("x", .timer)).sum == 1)
    #expect(try #require(batch.sample("x", .histogram)).sum == 2)
    #expect(try #require(batch.sample("x", .distribution)).sum == 3)
    #expect(try #require(batch.counter("x")).value == 4)
}

@Test func reservoirKeepsExactMomentsAndBoundsMemory() throws {
    let h = Harness(maxSamples: 100)
    for chunk in stride(from: 1, through: 1000, by: 50) {
        h.send("t:" + (chunk..<(chunk + 50)).map(String.init).joined(separator: ":") + "|ms")
    }
    let t = try #require(h.flush(at: 10_000).sample("t"))
    #expect(t.count == 1000)
    #expect(t.samples == 1000)
    #expect(t.sum == 500_500)
    #expect(t.min == 1)
    #expect(t.max == 1000)
    #expect(t.mean == 500.5)
    #expect(abs(t.stddev - 83_333.25.squareRoot()) < 1e-9)
    #expect(t.sortedValues.count == 100)
    #expect(Set(t.sortedValues).count == 100)
    #expect(t.sortedValues.allSatisfy { (1...1000).contains($0) })
    // A uniform reservoir of 1..1000 has its median near 500.
    #expect((250...750).contains(t.median))
}

@Test func tagOrderAndSyntaxDoNotSplitASeries() throws {
    let h = Harness()
    h.send("a:1|c|#x:1,y:2", "a:1|c|#y:2,x:1", "a,x=1,y=2:1|c", "a#y=2,x=1:1|c", "a[x=1,y=2]:1|c")
    let batch = h.flush(at: 10_000)
    #expect(batch.counters.count == 1)
    #expect(try #require(batch.counter("a", [("x", "1"), ("y", "2")])).value == 5)
}

@Test func duplicateTagKeysKeepTheLastValue() throws {
    let h = Harness()
    h.send("a:1|c|#k:1,k:2", "a:1|c|#k:2", "b:1|c|#k:1,bare,j:0,k:3")
    let batch = h.flush(at: 10_000)
    #expect(try #require(batch.counter("a", [("k", "2")])).value == 2)
    let b = try #require(batch.counters.first { $0.key.name == "b" })
    #expect(b.key.tags.map(\.key) == ["bare", "j", "k"])
    #expect(b.key.tags.map(\.value) == ["true", "0", "3"])
}

@Test func seriesLimitDropsNewSeriesOnly() throws {
    let h = Harness(maxSeries: 2)
    #expect(
        h.send("a:1|c", "b:1|c", "c:1|c", "a:1|c", "b:1|ms") == ["ok", "ok", "error:series_limit", "ok", "error:series_limit"])
    #expect(h.table.activeSeries == 2)
    let batch = h.flush(at: 10_000)
    #expect(try #require(batch.counter("a")).value == 2)
    #expect(batch.counter("c") == nil)
}

@Test func aLineDroppedBySeriesLimitIsReportedOnceWithItsBytes() {
    // One series allowed, and taken: the first line's two groups (two new series) are one
    // dropped line, and the second line another; each is reported once, with its own bytes.
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 4, maxSeries: 1), seed: 3)
    var ingestor = ReaderAggregator(table: table)
    Array("a:1|c".utf8).withUnsafeBytes { ingestor.ingest($0) }
    let text = "x:1|c:2|ms\ny:3|c\na:2|c"
    var reports: [String] = []
    Array(text.utf8).withUnsafeBytes { raw in
        ingestor.ingest(raw) { reason, datagram, range in
            reports.append(
                "\(reason) \(datagram) \(String(decoding: UnsafeRawBufferPointer(rebasing: raw[range]), as: UTF8.self))")
        }
    }
    #expect(reports == ["series_limit 0 x:1|c:2|ms", "series_limit 0 y:3|c"])
    let metrics = SelfMetrics(readers: 1)
    ingestor.flushCounts(to: metrics)
    #expect(metrics.invalidTotal(.seriesLimit) == 2)
    #expect(table.drainAll(nextGeneration: 2).flatMap(\.counters).map(\.sum) == [3])
}

@Test func aBatchStagesAsItsDatagramsOneByOneAndNamesEachInItsRejections() {
    // The receiver stages a whole receive batch in one call (the share locked once): the
    // result must be that of staging each datagram in turn, and a rejection names its datagram
    // as `first + k`.
    let texts = ["a:1|c\nbad\nt:5|ms", "a:2|c\ng:1|g", "g:+2|g\na:x|c", "s:u1|s\ns:u2|s\nt:7|ms"]
    let buffers = texts.map { text in
        let bytes = Array(text.utf8)
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 8)
        copy.copyBytes(from: bytes)
        return UnsafeRawBufferPointer(copy)
    }
    defer { for b in buffers { b.deallocate() } }
    func run(batched: Bool) -> (reports: [String], counters: [Double], gauges: [Double], sets: [Int], timers: [Double]) {
        let table = ShardedTable(configuration: AggregationConfiguration(shards: 4), seed: 9)
        var ingestor = ReaderAggregator(table: table)
        var reports: [String] = []
        let report: ReaderAggregator.Rejection = { reason, datagram, range in
            let line = String(decoding: UnsafeRawBufferPointer(rebasing: buffers[datagram - 10][range]), as: UTF8.self)
            reports.append("\(reason) \(datagram) \(line)")
        }
        // Twice: the second round finds every line's identity in the key cache.
        for _ in 0..<2 {
            if batched {
                ingestor.stage(batch: buffers.count, from: 10, payload: { buffers[$0] }, rejected: report)
            } else {
                for (k, b) in buffers.enumerated() { ingestor.stage(b, datagram: 10 + k, rejected: report) }
            }
            ingestor.commit(rejected: report)
        }
        let parts = table.drainAll(nextGeneration: 2)
        return (
            reports, parts.flatMap(\.counters).map(\.sum), parts.flatMap(\.gauges).map(\.value),
            parts.flatMap(\.sets).map(\.members.count), parts.flatMap(\.samples).flatMap(\.values).sorted()
        )
    }
    let batched = run(batched: true)
    let single = run(batched: false)
    #expect(batched.reports == ["missing_colon 10 bad", "invalid_value 12 a:x|c", "missing_colon 10 bad", "invalid_value 12 a:x|c"])
    #expect(batched.reports == single.reports)
    #expect(batched.counters == [6])
    #expect(batched.gauges == [3] && single.gauges == [3])
    #expect(batched.sets == [2])
    #expect(batched.timers == [5, 5, 7, 7])
    #expect(batched.counters == single.counters && batched.sets == single.sets && batched.timers == single.timers)
}

@Test func seriesExpireAfterTTLAndFreeTheBudget() throws {
    let h = Harness(maxSeries: 2, ttlMillis: 20_000)
    h.send("a:1|c", "g:5|g")
    _ = h.flush(at: 10_000)
    h.send("a:1|c")
    #expect(h.flush(at: 20_000).gauge("g") == 5)
    // g last received data in the interval ending at 10 s: gone at 30 s; a (data until 20 s) stays.
    let at30 = h.flush(at: 30_000)
    #expect(at30.gauge("g") == nil)
    #expect(at30.expired == [MetricKey(type: .gauge, name: "g")])
    #expect(h.table.activeSeries == 1)
    #expect(h.send("new:1|c") == ["ok"])
    let at40 = h.flush(at: 40_000)
    #expect(at40.expired == [MetricKey(type: .counter, name: "a")])
    // A gauge that comes back after expiry starts again from 0.
    h.send("g:+2|g")
    #expect(h.flush(at: 50_000).gauge("g") == 2)
}

@Test func ttlZeroNeverExpires() {
    let h = Harness(ttlMillis: 0)
    h.send("g:1|g")
    for n in 1...50 { _ = h.flush(at: EpochMillis(n) * 10_000) }
    #expect(h.flush(at: 510_000).gauge("g") == 1)
    #expect(h.table.activeSeries == 1)
}

@Test func firstIntervalCountsFromStart() throws {
    let h = Harness()
    h.send("c:10|c")
    let batch = h.flush(at: 4_000)
    #expect(batch.interval == 4)
    #expect(try #require(batch.counter("c")).rate == 2.5)
}

@Test func concurrentReadersLoseNothing() throws {
    let h = Harness(shards: 8)
    let threads = (0..<4).map { n in
        WorkerThread(name: "t\(n)") { [table = h.table] in
            for i in 0..<20_000 { ingest(table, ["k\(i % 100):1|c", "t\(i % 10):\(i % 7)|ms"]) }
        }
    }
    for t in threads { t.join() }
    let batch = h.flush(at: 10_000)
    #expect(batch.counters.count == 100)
    #expect(batch.counters.allSatisfy { $0.value == 800 })
    #expect(batch.samples.reduce(0) { $0 + $1.samples } == 80_000)
}

@Test func seriesIndexSurvivesManyInsertsAndRemovals() {
    // Inserts and expires several generations of series so that the index grows and shifts entries back.
    let h = Harness(shards: 1, maxSeries: 100_000, ttlMillis: 10_000)
    for round in 0..<5 {
        ingest(h.table, (0..<3000).map { "r\(round).s\($0):1|c" })
        let batch = h.flush(at: EpochMillis(round + 1) * 10_000)
        #expect(batch.counters.count == 3000)
        #expect(batch.counters.allSatisfy { $0.value == 1 })
    }
    #expect(h.table.activeSeries <= 3000)
}

@Test func aTimerFloodKeepsExactMomentsInBoundedMemory() throws {
    // One series, a million samples in one interval (1...1000, a thousand times).
    let h = Harness(maxSamples: 10_000)
    let line = "flood:" + (1...1000).map(String.init).joined(separator: ":") + "|ms"
    for _ in 0..<1000 { h.send(line) }
    let t = try #require(h.flush(at: 10_000).sample("flood"))
    #expect(t.count == 1_000_000)
    #expect(t.samples == 1_000_000)
    #expect(t.sum == 500_500_000)
    #expect(t.min == 1)
    #expect(t.max == 1000)
    #expect(t.mean == 500.5)
    #expect(abs(t.stddev - 83_333.25.squareRoot()) < 1e-6)
    #expect(t.sortedValues.count == 10_000)
}

@Test func sampleStorageNeverGrowsPastTheCap() throws {
    let h = Harness(maxSamples: 10_000)
    for chunk in stride(from: 1, through: 50_000, by: 1000) {
        h.send("cap:" + (chunk..<(chunk + 1000)).map(String.init).joined(separator: ":") + "|ms")
    }
    let parts = h.table.drainAll(nextGeneration: 2)
    let aggregate = try #require(parts.flatMap(\.samples).first)
    #expect(aggregate.samples == 50_000)
    #expect(aggregate.kept == 10_000)
    #expect(aggregate.values.count == 10_000)
    // 8 bytes per kept value: the arena holds the 10,000 values and 12 bucket counts in 8 KiB
    // slabs, the last one partly used (doubling from 8 would have reached 16,384 values).
    let arena = try #require(parts.compactMap(\.arena).first)
    #expect(arena.capacity == 10 * SampleArena.slabValues)
}

@Test func theBranchlessBucketSearchFindsWhatABinarySearchFinds() {
    // Every bound, its neighbours, the infinities and random values, for lists of 0 to 17
    // bounds (odd and even counts, a power of two and one past it).
    var rng = SplitMix64(state: 11)
    for count in [0, 1, 2, 3, 4, 5, 7, 8, 11, 16, 17] {
        let bounds = BucketBounds((0..<count).map { Double($0) * 1.5 - 2 })
        var values: [Double] = [-.infinity, .infinity, 0, -0.0, -1e300, 1e300]
        for b in bounds.upperBounds { values += [b, b.nextUp, b.nextDown] }
        for _ in 0..<200 { values.append(Double(rng.next() % 40_000) / 1000 - 5) }
        for x in values {
            #expect(bounds.bucket(for: x) == bounds.bucketBySearch(for: x), "count \(count), x \(x)")
        }
    }
    let defaults = HistogramBuckets().defaults
    #expect(defaults.bucket(for: 5.0 / 1000) == 0)  // le="0.005" holds 5 ms
    #expect(defaults.bucket(for: 0.0051) == 1)
    #expect(defaults.bucket(for: 10) == 10)
    #expect(defaults.bucket(for: 10.5) == 11)  // +Inf
}

@Test func aSampledCounterWhoseScaledValueOverflowsIsRejectedOnTheFastPathToo() throws {
    // The second and third lines are seen before (same name and suffix): only their value is
    // new, and the reader adds it without the parser unless it fails a check.
    let h = Harness()
    let outcomes = h.send("x:1|c|@0.5", "x:1|c|@0.5", "x:1e308|c|@0.5", "x:3|c|@0.5", "t:1|ms|@1e-310")
    #expect(outcomes == ["ok", "ok", "error:invalid_sample_rate", "ok", "error:invalid_sample_rate"])
    let batch = h.flush(at: 10_000)
    #expect(try #require(batch.counter("x")).value == 10)
    #expect(batch.samples.isEmpty)
}
