import Foundation
import Testing

@testable import StatorCore

/// Every file in `Tests/Fuzz/corpus` (the fuzzer's seeds) and `Tests/Fuzz/regressions`
/// (each input `scripts/fuzz` ever crashed on, copied there from `.build/fuzz/crashes`)
/// goes through the path the fuzzer drives: split, parse, ingest, flush, JSON lines and
/// the Prometheus page. Passing means no crash and valid UTF-8 out.
@Test func fuzzCorpusAndRegressionsGoThroughTheWholePath() throws {
    let fuzzDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz")
    var inputs: [[UInt8]] = []
    for folder in ["corpus", "regressions"] {
        let dir = fuzzDirectory.appendingPathComponent(folder)
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        for name in names where !name.hasPrefix(".") {
            inputs.append(Array(try Data(contentsOf: dir.appendingPathComponent(name))))
        }
    }
    #expect(inputs.count >= 20)

    let table = ShardedTable(
        configuration: AggregationConfiguration(shards: 4, maxSeries: 5_000, maxSamplesPerSeries: 64), seed: 7)
    let metrics = SelfMetrics(readers: 1)
    let flusher = Flusher(
        table: table, configuration: FlushConfiguration(intervalMillis: 1_000), startMillis: 0, metrics: metrics,
        publish: { _ in })
    let prometheus = PrometheusSink(configuration: PrometheusConfiguration(), metrics: metrics, reservedNames: [])
    var ingestor = ReaderAggregator(table: table)
    var accepted = 0
    for input in inputs {
        input.withUnsafeBytes { raw in ingestor.ingest(raw) }
    }
    let batch = flusher.flush(at: 1_000)
    accepted = batch.seriesCount
    let json = JSONLinesEncoder.encode(batch)
    #expect(String(validating: json, as: UTF8.self) != nil)
    try prometheus.emit(batch)
    let page = prometheus.page.body
    #expect(String(validating: page, as: UTF8.self) != nil)
    // The seeds are mostly valid lines: something of each of them arrives.
    #expect(accepted >= 15)
    #expect(String(decoding: page, as: UTF8.self).contains("db_query_seconds_bucket{le=\"+Inf\",table=\"users\"} 1"))
}
