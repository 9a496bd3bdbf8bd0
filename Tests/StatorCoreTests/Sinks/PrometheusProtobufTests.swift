import Foundation
import Testing

@testable import StatorCore

/// SPEC section 13: the protobuf page, read back field by field (`MetricFamilyDump`).

/// Feeds lines through the real aggregation and flush into a Prometheus sink; returns the sink.
private func sink(
    _ flushes: [[String]], buckets: HistogramBuckets, mapping: MappingRules? = nil
) -> PrometheusSink {
    var configuration = AggregationConfiguration(shards: 2, buckets: buckets)
    configuration.mapping = mapping
    let table = ShardedTable(configuration: configuration, seed: 7)
    let metrics = SelfMetrics(readers: 1)
    let sink = PrometheusSink(
        configuration: PrometheusConfiguration(buckets: buckets), metrics: metrics,
        reservedNames: SelfMetricsPage.familyNames, mappingOptions: mapping?.options)
    let flusher = Flusher(
        table: table, configuration: FlushConfiguration(intervalMillis: 10_000, seriesTTLMillis: 300_000),
        startMillis: 0, metrics: metrics
    ) { try? sink.emit($0) }
    for (n, lines) in flushes.enumerated() {
        ingest(table, lines)
        flusher.flush(at: EpochMillis(n + 1) * 10_000)
    }
    return sink
}

private let native = HistogramBuckets(defaults: [0.01, 0.1, 1]).with(native: NativeHistogramOptions())

@Test func aTimerCarriesItsClassicAndItsNativeBucketsInOneMessage() throws {
    let page = try #require(
        sink(
            [["db.query:5|ms|#table:users", "db.query:50|ms|@0.5|#table:users"], ["db.query:2000|ms|#table:users"]],
            buckets: native
        ).page(.protobuf).protobuf?.body)
    // Schema 3 (factor 2^(1/8)): 0.005 s is bucket -61 (ceil(8 log2 0.005)), 0.05 s bucket -34,
    // 2 s bucket 8 (a power of the base closes its bucket). Spans: -61; 26 empty buckets
    // after -61, then -34; 41 after -34, then 8. Counts 1, 2, 1: deltas 1, 1, -1.
    #expect(
        try MetricFamilyDump.families(page) == [
            """
            name: "db_query_seconds"
            help: "statsd timer db.query"
            type: 4
            metric {
              label { name: "table" value: "users" }
              histogram {
                sample_count: 4
                sample_sum: 2.105
                bucket { cumulative_count: 1 upper_bound: 0.01 }
                bucket { cumulative_count: 3 upper_bound: 0.1 }
                bucket { cumulative_count: 3 upper_bound: 1 }
                schema: 3
                zero_threshold: 2.938735877055719e-39
                zero_count: 0
                positive_span { offset: -61 length: 1 }
                positive_span { offset: 26 length: 1 }
                positive_span { offset: 41 length: 1 }
                positive_delta: [1, 1, -1]
              }
            }

            """
        ])
}

@Test func fractionalWeightsUseEveryFloatFieldAndNegativesTheirOwnBuckets() throws {
    // @0.3 weighs 1/0.3: no count is whole, so every count goes in the float fields (the
    // classic ones also rounded in the integer fields).
    let page = try #require(
        sink([["size:1|h|@0.3", "size:-0.5|h", "size:0|h"]], buckets: native).page(.protobuf).protobuf?.body)
    let w = PrometheusNumber.format(1 / 0.3)
    let total = PrometheusNumber.format(1 / 0.3 + 2)
    let sum = PrometheusNumber.format(1 / 0.3 - 0.5)
    // 1 = 2^0 closes bucket 0; -0.5 = -2^-1 closes bucket -8 of the negative side.
    #expect(
        try MetricFamilyDump.family(page, "size") == """
            name: "size"
            help: "statsd histogram size"
            type: 4
            metric {
              histogram {
                sample_count: 5
                sample_count_float: \(total)
                sample_sum: \(sum)
                bucket { cumulative_count: 2 cumulative_count_float: 2 upper_bound: 0.01 }
                bucket { cumulative_count: 2 cumulative_count_float: 2 upper_bound: 0.1 }
                bucket { cumulative_count: 5 cumulative_count_float: \(total) upper_bound: 1 }
                schema: 3
                zero_threshold: 2.938735877055719e-39
                zero_count_float: 1
                negative_span { offset: -8 length: 1 }
                negative_count: [1]
                positive_span { offset: 0 length: 1 }
                positive_count: [\(w)]
              }
            }

            """)
}

@Test func countersGaugesAndSetsMatchTheTextPage() throws {
    let s = sink(
        [["api.requests:1|c|#env:prod", "api.requests:2|c|@0.5|#env:prod", "temp:20|g", "users:a|s", "users:b|s"]],
        buckets: native)
    let page = try #require(s.page(.protobuf).protobuf?.body)
    #expect(
        try MetricFamilyDump.families(page) == [
            """
            name: "api_requests_total"
            help: "statsd counter api.requests"
            type: 0
            metric {
              label { name: "env" value: "prod" }
              counter { value: 5 }
            }

            """,
            """
            name: "temp"
            help: "statsd gauge temp"
            type: 1
            metric {
              gauge { value: 20 }
            }

            """,
            """
            name: "users"
            help: "statsd set users"
            type: 1
            metric {
              gauge { value: 2 }
            }

            """,
        ])
    let text = String(decoding: s.page.body, as: UTF8.self)
    #expect(text.contains("api_requests_total{env=\"prod\"} 5\n") && text.contains("temp 20\n") && text.contains("users 2\n"))
}

@Test func labelValuesAreUnescapedAndHistogramLabelsKeepTheirOrder() throws {
    let page = try #require(
        sink([["q:1|c|#q:say \"hi\",back:a\\b", "h:0.5|h|#z:last,a:first,le:odd"]], buckets: native).page(.protobuf)
            .protobuf?.body)
    let counter = try #require(try MetricFamilyDump.family(page, "q_total"))
    #expect(counter.contains(#"label { name: "back" value: "a\b" }"# + "\n  " + #"label { name: "q" value: "say "hi"" }"#))
    let histogram = try #require(try MetricFamilyDump.family(page, "h"))
    #expect(
        histogram.contains(
            """
              label { name: "a" value: "first" }
              label { name: "exported_le" value: "odd" }
              label { name: "z" value: "last" }
            """))
}

@Test func withoutNativeHistogramsAHistogramHasClassicBucketsOnly() throws {
    let classic = HistogramBuckets(defaults: [1])
    let s = sink([["t:500|ms"]], buckets: classic)
    let page = try #require(s.page(.protobuf).protobuf?.body)
    #expect(
        try MetricFamilyDump.family(page, "t_seconds") == """
            name: "t_seconds"
            help: "statsd timer t"
            type: 4
            metric {
              histogram {
                sample_count: 1
                sample_sum: 0.5
                bucket { cumulative_count: 1 upper_bound: 1 }
              }
            }

            """)
}

@Test func aMappedSummaryHasItsQuantilesAndCount() throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("summary-\(UUID().uuidString).yml").path
    try """
    mappings:
    - match: "lat.*"
      name: "lat_$1"
      help: "Latency by route."
      observer_type: summary
      summary_options:
        quantiles: [{quantile: 0.5, error: 0.05}, {quantile: 0.9, error: 0.01}]
    """.write(toFile: path, atomically: true, encoding: .utf8)
    let rules = try MappingRules(path: path, maxNameBytes: 256)
    let s = sink([["lat.api:1|ms", "lat.api:2|ms", "lat.api:3|ms", "lat.api:4|ms"]], buckets: native, mapping: rules)
    let page = try #require(s.page(.protobuf).protobuf?.body)
    #expect(
        try MetricFamilyDump.family(page, "lat_api") == """
            name: "lat_api"
            help: "Latency by route."
            type: 2
            metric {
              summary {
                sample_count: 4
                sample_sum: 0.01
                quantile { quantile: 0.5 value: 0.002 }
                quantile { quantile: 0.9 value: 0.004 }
              }
            }

            """)
    let text = String(decoding: s.page.body, as: UTF8.self)
    #expect(
        text.contains("lat_api{quantile=\"0.5\"} 0.002\nlat_api{quantile=\"0.9\"} 0.004\nlat_api_sum 0.01\nlat_api_count 4\n"))
}

@Test func theAgentsOwnTextPageBecomesTheSameFamilies() throws {
    let text = """
        # HELP stator_lines_invalid_total Lines rejected, by input and reason.
        # TYPE stator_lines_invalid_total counter
        stator_lines_invalid_total{input="udp",reason="bad \\"type\\"",x="{a}"} 3
        stator_lines_invalid_total{input="tcp",reason="empty"} 0
        # HELP stator_sink_errors_total Batches a sink failed to take or write,\\nby sink.
        # TYPE stator_sink_errors_total counter
        # HELP process_start_time_seconds Start time.
        # TYPE process_start_time_seconds gauge
        process_start_time_seconds 1.7e+09
        loose_sample NaN
        odd_gauge +Inf

        """
    let families = try MetricFamilyDump.families(PrometheusProtobufEncoder.encode(text: Array(text.utf8)))
    #expect(
        families == [
            """
            name: "stator_lines_invalid_total"
            help: "Lines rejected, by input and reason."
            type: 0
            metric {
              label { name: "input" value: "udp" }
              label { name: "reason" value: "bad "type"" }
              label { name: "x" value: "{a}" }
              counter { value: 3 }
            }
            metric {
              label { name: "input" value: "tcp" }
              label { name: "reason" value: "empty" }
              counter { value: 0 }
            }

            """,
            """
            name: "process_start_time_seconds"
            help: "Start time."
            type: 1
            metric {
              gauge { value: 1700000000 }
            }

            """,
            """
            name: "loose_sample"
            type: 3
            metric {
              untyped { value: NaN }
            }

            """,
            """
            name: "odd_gauge"
            type: 3
            metric {
              untyped { value: +Inf }
            }

            """,
        ])
}

@Test func theProtobufPageIsRenderedOnlyOnceAskedFor() throws {
    let s = sink([["c:1|c"]], buckets: native)
    #expect(s.page.protobuf == nil)
    let first = s.page(.protobuf)
    #expect(first.protobuf != nil)
    // Asked for, it stays rendered with each page, and the text page with it.
    #expect(s.page(.protobuf) === first)
    #expect(s.page === first)
}

@Test func fractionalClassicCountsAlsoGoRoundedInTheIntegerFields() throws {
    // Prometheus 2.42 (Debian 12's) reads a classic histogram's integer fields only: with the
    // float fields alone, every `_count` and `_bucket` made fractional by a rate reads 0.
    let classic = HistogramBuckets(defaults: [0.01, 1])
    let page = try #require(sink([["t:500|ms|@0.3", "t:5|ms|@0.6"]], buckets: classic).page(.protobuf).protobuf?.body)
    let total = PrometheusNumber.format(1 / 0.3 + 1 / 0.6)
    let low = PrometheusNumber.format(1 / 0.6)
    #expect(
        try MetricFamilyDump.family(page, "t_seconds") == """
            name: "t_seconds"
            help: "statsd timer t"
            type: 4
            metric {
              histogram {
                sample_count: 5
                sample_count_float: \(total)
                sample_sum: 1.675
                bucket { cumulative_count: 2 cumulative_count_float: \(low) upper_bound: 0.01 }
                bucket { cumulative_count: 5 cumulative_count_float: \(total) upper_bound: 1 }
              }
            }

            """)
}
