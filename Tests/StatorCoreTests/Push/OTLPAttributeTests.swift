import Testing
@testable import StatorCore

@Test func theTagsAsSentFollowTheirSeriesThroughExpiryAndCompaction() throws {
    // OTLP cumulative reads each series' tags as sent from the state (its labels rename
    // `sp ace`): 5,000 such series expire together and the state compacts; the survivor's
    // tags must move with it to its new index, and the expired ones go.
    let metrics = SelfMetrics(readers: 1)
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 1), seed: 7)
    let sink = PrometheusSink(configuration: PrometheusConfiguration(), metrics: metrics, reservedNames: [])
    let flusher = Flusher(
        table: table, configuration: FlushConfiguration(intervalMillis: 10_000, seriesTTLMillis: 20_000),
        startMillis: 0, metrics: metrics
    ) { try? sink.emit($0) }
    let bomb = (0..<5_000).map { "bomb.\($0):1|c|#sp ace:\($0)" }
    for (n, lines) in [bomb + ["keep.c:1|c|#k ey:v"], ["keep.c:1|c|#k ey:v"], ["keep.c:1|c|#k ey:v"]].enumerated() {
        _ = ingest(table, lines)
        flusher.flush(at: EpochMillis(n + 1) * 10_000)
    }
    let (series, asSent) = sink.state.withState { s in
        (s.series.count, s.tagsAsSent.mapValues { MetricKey(bytes: $0, series: .none).description })
    }
    #expect(series == 1)  // compacted
    #expect(asSent == [0: "counter keep.c{k ey=v}"])
}
