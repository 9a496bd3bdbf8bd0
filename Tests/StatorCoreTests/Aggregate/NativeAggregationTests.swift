import Testing

@testable import StatorCore

/// SPEC section 13: with native histograms on, each timer, histogram and distribution series
/// keeps an exponential histogram beside its statistics; the readers' shares merge exactly.

private func nativeTable(_ options: NativeHistogramOptions?, shards: Int = 2) -> ShardedTable {
    var configuration = AggregationConfiguration(shards: shards)
    configuration.buckets = HistogramBuckets().with(native: options)
    return ShardedTable(configuration: configuration, seed: 3)
}

private func flusher(_ table: ShardedTable) -> Flusher {
    Flusher(
        table: table, configuration: FlushConfiguration(intervalMillis: 10_000, seriesTTLMillis: 0, percentiles: []),
        startMillis: 0, metrics: SelfMetrics(readers: 2)
    ) { _ in }
}

private func send(_ lines: [String], _ reader: inout ReaderAggregator) {
    for line in lines { Array(line.utf8).withUnsafeBytes { reader.ingest($0) } }
}

@Test func twoReadersNativeHistogramsMergeIntoTheOneOfEverySample() throws {
    let table = nativeTable(NativeHistogramOptions())
    var first = ReaderAggregator(table: table)
    var second = ReaderAggregator(table: table)
    // Lines seen before go to each reader's share; the first of each is staged in the shard.
    send(["t:1|ms", "t:2|ms", "t:3|ms|@0.5", "t:3|ms|@0.5", "t:-4|ms", "t:0|ms"], &first)
    send(["t:10|ms", "t:20|ms", "t:30000|ms", "h:0.5|h", "h:0.25|h|@0.25"], &second)
    let batch = flusher(table).flush(at: 10_000)
    let timer = try #require(batch.samples.first { $0.key.name == "t" })
    var expected = ExponentialHistogram(schema: 3)
    for (ms, weight) in [(1.0, 1.0), (2, 1), (3, 2), (3, 2), (-4, 1), (0, 1), (10, 1), (20, 1), (30000, 1)] {
        expected.observe(ms / 1000, weight: weight)
    }
    #expect(timer.native == expected)
    #expect(timer.native?.count == 11)
    #expect(timer.native?.zeroCount == 1)
    #expect(timer.nativeAsSent == nil)
    #expect(timer.nativeInStatsdUnit == nil)  // seconds cannot stand for milliseconds
    let histogram = try #require(batch.samples.first { $0.key.name == "h" })
    #expect(histogram.native?.count == 5)
    #expect(histogram.native?.sum == 1.5)
    #expect(histogram.nativeInStatsdUnit == histogram.native)  // a histogram's values are bucketed as sent
}

@Test func anOTLPPushKeepsTimersAlsoInMilliseconds() throws {
    var options = NativeHistogramOptions()
    options.keepsStatsdUnit = true
    let table = nativeTable(options, shards: 1)
    var reader = ReaderAggregator(table: table)
    send(["t:1|ms", "t:1000|ms", "h:7|h"], &reader)
    let batch = flusher(table).flush(at: 10_000)
    let timer = try #require(batch.samples.first { $0.key.name == "t" })
    var ms = ExponentialHistogram(schema: 3)
    ms.observe(1)
    ms.observe(1000)
    #expect(timer.nativeAsSent == ms)
    #expect(timer.nativeInStatsdUnit == ms)
    #expect(timer.native?.sum == 1.001)
    let histogram = try #require(batch.samples.first { $0.key.name == "h" })
    #expect(histogram.nativeAsSent == nil)  // the same values: one histogram serves both
    #expect(histogram.nativeInStatsdUnit?.sum == 7)
}

@Test func withNativeHistogramsOffNoSeriesKeepsOne() throws {
    let table = nativeTable(nil)
    var reader = ReaderAggregator(table: table)
    send(["t:1|ms", "t:2|ms", "h:3|h", "d:4|d"], &reader)
    let batch = flusher(table).flush(at: 10_000)
    #expect(batch.samples.count == 3)
    #expect(batch.samples.allSatisfy { $0.native == nil && $0.nativeAsSent == nil })
}

@Test func theHistogramsKeysAreReadAndChecked() throws {
    var c = StatorConfiguration()
    for key in ConfigKeys.all where key.path.hasPrefix("histograms.") {
        switch key.path {
        case "histograms.native": try key.write(&c, try key.value(fromText: "true", source: "test"))
        case "histograms.native_schema": try key.write(&c, try key.value(fromText: "-2", source: "test"))
        case "histograms.native_zero_threshold": try key.write(&c, try key.value(fromText: "0.001", source: "test"))
        case "histograms.native_max_buckets": try key.write(&c, try key.value(fromText: "40", source: "test"))
        default: Issue.record("unexpected key \(key.path)")
        }
    }
    #expect(c.histograms.native)
    #expect(c.histograms.options.schema == -2)
    #expect(c.histograms.options.zeroThreshold == 0.001)
    #expect(c.histograms.options.maxBuckets == 40)
    let schema = try #require(ConfigKeys.all.first { $0.path == "histograms.native_schema" })
    #expect(throws: ConfigError.self) { try schema.write(&c, .number(9)) }
    let native = try #require(ConfigKeys.all.first { $0.path == "histograms.native" })
    #expect(throws: ConfigError.self) { try native.value(fromText: "yes", source: "test") }
    #expect(native.defaultText == "false")
}

@Test func theCumulativeStateAddsEachIntervalsNativeHistogram() throws {
    let table = nativeTable(NativeHistogramOptions(), shards: 1)
    let flush = flusher(table)
    let state = CumulativeState()
    var reader = ReaderAggregator(table: table)
    send(["t:1|ms", "t:2|ms"], &reader)
    state.apply(flush.flush(at: 10_000))
    let held = state.withState { s in s.histograms.first?.native }  // a reader's copy
    send(["t:2|ms", "t:4000|ms|@0.5"], &reader)
    state.apply(flush.flush(at: 20_000))
    var expected = ExponentialHistogram(schema: 3)
    for (ms, weight) in [(1.0, 1.0), (2, 1), (2, 1), (4000, 2)] { expected.observe(ms / 1000, weight: weight) }
    let native = try #require(state.withState { s in s.histograms.first?.native })
    #expect(native.bucketed == expected)
    #expect(native.bucketed.count == 5)
    #expect(held?.bucketed.count == 2)  // copied on write: what a reader held did not change
}

@Test func aMappingRulesNativeOptionsPickItsSchemaAndCap() throws {
    let file = try MappingFile.parse(
        """
        defaults:
          histogram_options:
            native_histogram_bucket_factor: 1.5
        mappings:
        - match: a.*
          name: a
          histogram_options:
            native_histogram_bucket_factor: 1.1
            native_histogram_max_buckets: 20
        - match: b.*
          name: b
          histogram_options: {native_histogram_bucket_factor: 2}
        - match: c.*
          name: c
          histogram_options: {native_histogram_bucket_factor: 1}
        - match: d.*
          name: d
        """, source: "test.yml")
    #expect(file.ignoredKeys.isEmpty)
    // Native histograms off in the configuration: a rule's factor turns them on for its series.
    let registry = MappingOptionsRegistry(native: nil)
    let slots = try #require(registry.slots(for: file.rules))
    let natives = slots.map { registry.bounds($0)?.native }
    #expect(natives.map { $0?.schema } == [3, 0, nil, 1])  // 2^(1/8) <= 1.1, 2 <= 2, none, 2^(1/2) <= 1.5
    #expect(natives.map { $0?.maxBuckets } == [20, 160, nil, 160])
    // With them on, a rule without options of its own takes the configuration's.
    var on = NativeHistogramOptions()
    on.schema = 5
    let plain = try MappingFile.parse("mappings:\n- match: e.*\n  name: e\n", source: "test.yml")
    let enabled = MappingOptionsRegistry(native: on)
    let slot = try #require(enabled.slots(for: plain.rules)?.first)
    #expect(enabled.bounds(slot) == nil)  // the default bounds, which carry `on`
    #expect(throws: ConfigError.self) {
        try MappingFile.parse(
            "mappings:\n- match: s.*\n  name: s\n  observer_type: summary\n  histogram_options: {native_histogram_max_buckets: 3}\n",
            source: "test.yml")
    }
    #expect(throws: ConfigError.self) {
        try MappingFile.parse(
            "mappings:\n- match: s.*\n  name: s\n  histogram_options: {native_histogram_max_buckets: 2.5}\n", source: "test.yml")
    }
}
