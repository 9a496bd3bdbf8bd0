import Foundation
import Testing
@testable import StatorCore

/// A flush at 2026-12-07T10:00:10Z holding one counter of the interval and two timestamped
/// samples from ten minutes before (SPEC section 15).
private func batchWithPoints() -> FlushBatch {
    let point = Int64(1_796_637_000_000)
    return FlushBatch(
        timestamp: 1_796_637_610_000, interval: 10, percentiles: [],
        counters: [CounterSummary(key: MetricKey(type: .counter, name: "c"), value: 1, rate: 0.1)],
        points: [
            TimestampedPoint(key: MetricKey(type: .counter, name: "c", tags: [("env", "prod")]), value: 5, timestamp: point),
            TimestampedPoint(key: MetricKey(type: .gauge, name: "g"), value: -3, timestamp: point + 1000),
        ])
}

private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

@Test func jsonLinesWriteEachPointAtItsOwnTime() {
    #expect(
        text(JSONLinesEncoder.encode(batchWithPoints())) == """
            {"ts":"2026-12-07T10:00:10.000Z","interval":10,"name":"c","type":"counter","tags":{},"value":1,"rate":0.1}
            {"ts":"2026-12-07T09:50:00.000Z","interval":10,"name":"c","type":"counter","tags":{"env":"prod"},"value":5,"timestamped":true}
            {"ts":"2026-12-07T09:50:01.000Z","interval":10,"name":"g","type":"gauge","tags":{},"value":-3,"timestamped":true}

            """)
}

@Test func influxWritesEachPointAtItsOwnTime() {
    let body = InfluxEncoder.requests(batchWithPoints(), batchSize: 100, labels: .none).map { text($0.body) }
    #expect(
        body == [
            """
            c value=1,rate=0.1 1796637610000000000
            c,env=prod value=5 1796637000000000000
            g value=-3 1796637001000000000

            """
        ])
}

@Test func graphiteWritesEachPointAtItsOwnTime() {
    #expect(
        text(GraphiteEncoder.encode(batchWithPoints(), prefix: "", tags: .graphite)) == """
            stats.counters.c.count 1 1796637610
            stats.counters.c.rate 0.1 1796637610
            stats.counters.c.count;env=prod 5 1796637000
            stats.gauges.g -3 1796637001

            """)
}

@Test func datadogSendsEachPointAtItsOwnTime() {
    let body = PushEncoders.datadog(batchWithPoints(), batchSize: 100).map { text($0.body) }
    #expect(
        body == [
            #"{"series":[{"metric":"c","points":[[1796637610,1]],"type":"count","interval":10,"tags":[]}"#
                + #",{"metric":"c","points":[[1796637000,5]],"type":"count","interval":10,"tags":["env:prod"]}"#
                + #",{"metric":"g","points":[[1796637001,-3]],"type":"gauge","interval":10,"tags":[]}]}"#
        ])
}

@Test func emfWritesThePointsInObjectsOfTheirOwnTime() {
    var w = JSONWriter(capacity: 256)
    #expect(EMFEncoder.encode(batchWithPoints(), namespace: "Stator", into: &w) == EMFEncoder.Skipped())
    let lines = text(w.bytes).split(separator: "\n").map(String.init)
    #expect(
        lines == [
            #"{"_aws":{"Timestamp":1796637610000,"CloudWatchMetrics":[{"Namespace":"Stator","Dimensions":[[]],"Metrics":[{"Name":"c","Unit":"Count"}]}]},"c":1}"#,
            #"{"_aws":{"Timestamp":1796637000000,"CloudWatchMetrics":[{"Namespace":"Stator","Dimensions":[["env"]],"Metrics":[{"Name":"c","Unit":"Count"}]}]},"env":"prod","c":5}"#,
            #"{"_aws":{"Timestamp":1796637001000,"CloudWatchMetrics":[{"Namespace":"Stator","Dimensions":[[]],"Metrics":[{"Name":"g","Unit":"None"}]}]},"g":-3}"#,
        ])
}

@Test func aBatchOfOnlyPointsIsNotEmpty() {
    let only = FlushBatch(
        timestamp: 0, interval: 10, percentiles: [],
        points: [TimestampedPoint(key: MetricKey(type: .gauge, name: "g"), value: 1, timestamp: 0)])
    #expect(only.seriesCount == 0 && !only.isEmpty)
    #expect(PushEncoders.json(only, batchSize: 10).map(\.series) == [1])
}

@Test func emfCountsAPointItSkips() {
    var w = JSONWriter(capacity: 256)
    let batch = FlushBatch(
        timestamp: 0, interval: 10, percentiles: [],
        points: [TimestampedPoint(key: MetricKey(type: .counter, name: "_aws"), value: 1, timestamp: 0)])
    #expect(EMFEncoder.encode(batch, namespace: "Stator", into: &w).nameConflicts == 1)
}
