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
}
