import Testing

@testable import StatorCore

/// Memory per series is a target (issue 5: under 250 bytes of RSS per live counter series), and
/// these records are most of it. A field added without care shows up here first.
@Test func perSeriesRecordsKeepTheirSizes() {
    #expect(MemoryLayout<MetricKey>.stride == 16)
    #expect(MemoryLayout<SeriesSlot>.stride == 40)
    #expect(MemoryLayout<CumulativeState.Family>.stride == 40)
    #expect(MemoryLayout<CumulativeState.Series>.stride == 40)
    #expect(MemoryLayout<CumulativeState.Route>.stride == 8)
    // Written once per line and read by the shard's passes.
    #expect(MemoryLayout<StagedSample>.stride == 80)
    // An interval's aggregates, with their line counts (8 bytes more for a counter and a set, none for a gauge).
    #expect(MemoryLayout<CounterAggregate>.stride == 32)
    #expect(MemoryLayout<SetAggregate>.stride == 64)
    #expect(MemoryLayout<GaugeAggregate>.stride == 40)
}

@Test func aSeriesLabelsTakeNoSpareStorage() {
    // Every Prometheus series record keeps its labels: none allocated without tags, and not
    // much more than their text with them (a reserve per series cost 80 bytes at 1M series).
    let bare = PrometheusNaming.labels(of: MetricKey(type: .counter, name: "c"), histogram: false)
    #expect(bare.isEmpty && bare.storageCapacity == 0)
    let tagged = PrometheusNaming.labels(of: MetricKey(type: .counter, name: "c", tags: [("host", "a")]), histogram: false)
    #expect(Array(tagged.before) == Array(#"host="a""#.utf8))
    #expect(tagged.storageCapacity <= 32)
}
