import Foundation
import Testing
@testable import StatorCore

/// SPEC section 13 in OTLP: with native histograms, timers, histograms and distributions are
/// `ExponentialHistogram`s (Metric field 10) instead of explicit `Histogram`s. Decoded here
/// field by field, independently of the encoder; the end-to-end tests decode the agent's
/// bodies with the official opentelemetry-proto.

/// One data point of an exponential histogram.
private struct Point: Equatable {
    var attributes: [String] = []
    var start: UInt64 = 0
    var time: UInt64 = 0
    var count: UInt64 = 0
    var sum = 0.0
    var scale: Int64 = 0
    var zeroCount: UInt64 = 0
    var positive: Buckets? = nil
    var negative: Buckets? = nil
    var min: Double? = nil
    var max: Double? = nil
    var zeroThreshold = 0.0
}

private struct Buckets: Equatable {
    var offset: Int64
    var counts: [UInt64]
}

private struct Metric {
    var name = ""
    var unit = ""
    /// The `oneof data` field: 9 explicit histogram, 10 exponential histogram.
    var kind: UInt64 = 0
    /// 1 delta, 2 cumulative.
    var temporality: UInt64 = 0
    var points: [Point] = []
}

private func unzigzag(_ n: UInt64) -> Int64 { Int64(bitPattern: n >> 1) ^ -Int64(bitPattern: n & 1) }

/// The fields of every message `field` holds in `bytes`.
private func messages(_ bytes: ArraySlice<UInt8>, _ field: UInt64) -> [ArraySlice<UInt8>] {
    var r = ProtobufReader(bytes)
    var out: [ArraySlice<UInt8>] = []
    while let (f, v) = r.next() { if f == field, case .bytes(let b) = v { out.append(b) } }
    return out
}

private func decodeBuckets(_ bytes: ArraySlice<UInt8>) -> Buckets {
    var b = Buckets(offset: 0, counts: [])
    var r = ProtobufReader(bytes)
    while let (f, v) = r.next() {
        switch (f, v) {
        case (1, .varint(let n)): b.offset = unzigzag(n)
        case (2, .bytes(let packed)):
            var position = packed.startIndex
            while position < packed.endIndex, let c = Varint.read(packed, at: &position) { b.counts.append(c) }
        default: Issue.record("unexpected Buckets field \(f)")
        }
    }
    return b
}

private func decodePoint(_ bytes: ArraySlice<UInt8>) -> Point {
    var p = Point()
    var r = ProtobufReader(bytes)
    while let (f, v) = r.next() {
        switch (f, v) {
        case (1, .bytes(let kv)):
            let key = messages(kv, 1).first.map { String(decoding: $0, as: UTF8.self) } ?? ""
            let value = messages(kv, 2).first.flatMap { messages($0, 1).first }.map { String(decoding: $0, as: UTF8.self) }
            p.attributes.append("\(key)=\(value ?? "")")
        case (2, .fixed64(let n)): p.start = n
        case (3, .fixed64(let n)): p.time = n
        case (4, .fixed64(let n)): p.count = n
        case (5, .fixed64(let bits)): p.sum = Double(bitPattern: bits)
        case (6, .varint(let n)): p.scale = unzigzag(n)
        case (7, .fixed64(let n)): p.zeroCount = n
        case (8, .bytes(let b)): p.positive = decodeBuckets(b)
        case (9, .bytes(let b)): p.negative = decodeBuckets(b)
        case (12, .fixed64(let bits)): p.min = Double(bitPattern: bits)
        case (13, .fixed64(let bits)): p.max = Double(bitPattern: bits)
        case (14, .fixed64(let bits)): p.zeroThreshold = Double(bitPattern: bits)
        default: Issue.record("unexpected ExponentialHistogramDataPoint field \(f)")
        }
    }
    return p
}

/// Every histogram metric of the requests, by name.
private func decode(_ requests: [PushRequest]) -> [String: Metric] {
    var result: [String: Metric] = [:]
    for request in requests {
        for resource in messages(request.body[...], 1) {
            for scope in messages(resource, 2) {
                for bytes in messages(scope, 2) {
                    var metric = Metric()
                    var r = ProtobufReader(bytes)
                    while let (f, v) = r.next() {
                        guard case .bytes(let b) = v else { continue }
                        switch f {
                        case 1: metric.name = String(decoding: b, as: UTF8.self)
                        case 3: metric.unit = String(decoding: b, as: UTF8.self)
                        case 9, 10:
                            metric.kind = f
                            var data = ProtobufReader(b)
                            while let (df, dv) = data.next() {
                                if df == 2, case .varint(let t) = dv { metric.temporality = t }
                            }
                            if f == 10 { metric.points = messages(b, 1).map(decodePoint) }
                        default: break
                        }
                    }
                    guard metric.kind != 0 else { continue }
                    #expect(result[metric.name] == nil, "\(metric.name) twice")
                    result[metric.name] = metric
                }
            }
        }
    }
    return result
}

private let resource = OTLPResource(serviceName: "s", hostName: "h")

/// A table whose series keep native histograms (schema 3), timers also in milliseconds when
/// `asSent` (what the agent arranges when an OTLP push is configured).
private func nativeFlush(asSent: Bool = true, _ intervals: [[String]]) -> (batches: [FlushBatch], state: CumulativeState) {
    var options = NativeHistogramOptions()
    options.keepsStatsdUnit = asSent
    let table = ShardedTable(
        configuration: AggregationConfiguration(shards: 1, buckets: HistogramBuckets().with(native: options)), seed: 3)
    let state = CumulativeState()
    var batches: [FlushBatch] = []
    let flusher = Flusher(
        table: table, configuration: FlushConfiguration(intervalMillis: 10_000), startMillis: 0,
        metrics: SelfMetrics(readers: 1)
    ) { state.apply($0) }
    for (n, lines) in intervals.enumerated() {
        ingest(table, lines)
        batches.append(flusher.flush(at: EpochMillis(n + 1) * 10_000))
    }
    return (batches, state)
}

// Schema 3: Prometheus' bucket i is (2^((i-1)/8), 2^(i/8)], OTLP's index i-1. 50 ms is in
// Prometheus' bucket 46 (49.4, 53.8], 500 ms in 72 (470.3, 512], 1 closes bucket 0, 3 is in
// bucket 13 (2.83, 3.08], 8 closes bucket 24.

@Test func otlpDeltaSendsEachIntervalsNativeHistogramAsSent() throws {
    let (batches, _) = nativeFlush([
        ["lat:50|ms|#env:a", "lat:500|ms|@0.5|#env:a", "lat:0|ms|#env:a", "h:3|h", "h:-3|h", "h:1|h|@0.4"]
    ])
    let metrics = decode(
        OTLPDeltaEncoder.requests(try #require(batches.first), resource: resource, batchSize: 100, labels: .none))
    let lat = try #require(metrics["lat"])
    #expect(lat.kind == 10)
    #expect(lat.unit == "ms")
    #expect(lat.temporality == 1)
    let expected = Point(
        attributes: ["env=a"], start: 0, time: 10_000_000_000, count: 4, sum: 1050, scale: 3, zeroCount: 1,
        positive: Buckets(offset: 45, counts: [1] + Array(repeating: 0, count: 25) + [2]), min: 0, max: 500,
        zeroThreshold: 0x1p-128)
    #expect(lat.points == [expected])
    // 1 at rate 0.4 counts 2.5, sent as 3: count is the total of what is sent.
    let h = try #require(metrics["h"])
    #expect(h.unit == "")
    #expect(
        h.points == [
            Point(
                start: 0, time: 10_000_000_000, count: 5, sum: 2.5, scale: 3, zeroCount: 0,
                positive: Buckets(offset: -1, counts: [3] + Array(repeating: 0, count: 12) + [1]),
                negative: Buckets(offset: 12, counts: [1]), min: -3, max: 3, zeroThreshold: 0x1p-128)
        ])
}

@Test func otlpCumulativeSendsTheNativeHistogramSinceTheSeriesAppeared() throws {
    let (_, state) = nativeFlush([["lat:50|ms", "h:1|h"], ["lat:500|ms|@0.5", "h:8|h", "h:8|h"]])
    let metrics = decode(
        OTLPCumulativeEncoder.requests(state, resource: resource, batchSize: 100, labels: .none).requests)
    let lat = try #require(metrics["lat"])
    #expect(lat.kind == 10)
    #expect(lat.unit == "ms")
    #expect(lat.temporality == 2)
    #expect(
        lat.points == [
            Point(
                start: 0, time: 20_000_000_000, count: 3, sum: 1050, scale: 3,
                positive: Buckets(offset: 45, counts: [1] + Array(repeating: 0, count: 25) + [2]),
                zeroThreshold: 0x1p-128)
        ])
    let h = try #require(metrics["h"])
    #expect(h.unit == "")
    #expect(
        h.points == [
            Point(
                start: 0, time: 20_000_000_000, count: 3, sum: 17, scale: 3,
                positive: Buckets(offset: -1, counts: [1] + Array(repeating: 0, count: 23) + [2]),
                zeroThreshold: 0x1p-128)
        ])
}

@Test func withoutATimersHistogramInMillisecondsOTLPKeepsTheExplicitHistogram() throws {
    // Seconds cannot be made milliseconds bucket for bucket: a timer falls back, a histogram
    // (bucketed as sent) does not.
    let (batches, state) = nativeFlush(asSent: false, [["lat:50|ms", "h:1|h"]])
    let delta = decode(OTLPDeltaEncoder.requests(try #require(batches.first), resource: resource, batchSize: 100, labels: .none))
    let cumulative = decode(OTLPCumulativeEncoder.requests(state, resource: resource, batchSize: 100, labels: .none).requests)
    for metrics in [delta, cumulative] {
        #expect(metrics["lat"]?.kind == 9)
        #expect(metrics["h"]?.kind == 10)
    }
}

@Test func withNativeHistogramsOffOTLPSendsExplicitHistograms() throws {
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 1), seed: 3)
    let state = CumulativeState()
    let flusher = Flusher(table: table, configuration: FlushConfiguration(), startMillis: 0, metrics: SelfMetrics(readers: 1)) {
        state.apply($0)
    }
    ingest(table, ["lat:50|ms", "h:1|h"])
    let batch = flusher.flush(at: 10_000)
    let delta = decode(OTLPDeltaEncoder.requests(batch, resource: resource, batchSize: 100, labels: .none))
    let cumulative = decode(OTLPCumulativeEncoder.requests(state, resource: resource, batchSize: 100, labels: .none).requests)
    #expect(delta.mapValues(\.kind) == ["lat": 9, "h": 9])
    #expect(cumulative.mapValues(\.kind) == ["lat": 9, "h": 9])
}

@Test func aReloadThatTurnsNativeOnKeepsOneKindPerMetricName() throws {
    // A mapping reload turns the rule's native histograms on: its family starts again, and
    // only the series that receive samples afterwards get a native histogram. OTLP allows
    // one type per metric name in a scope, so the family must not be sent as both.
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("native-\(UUID().uuidString).yml").path
    func write(factor: String) throws {
        try """
        mappings:
        - match: "lat.*"
          name: "lat"
          labels: {route: "$1"}
          histogram_options:
            native_histogram_bucket_factor: \(factor)
        """.write(toFile: path, atomically: true, encoding: .utf8)
    }
    try write(factor: "1")
    var base = NativeHistogramOptions()
    base.keepsStatsdUnit = true
    let rules = try MappingRules(path: path, options: MappingOptionsRegistry(nativeBase: base), maxNameBytes: 256)
    var configuration = AggregationConfiguration(shards: 1)
    configuration.mapping = rules
    let table = ShardedTable(configuration: configuration, seed: 3)
    let state = CumulativeState(mappingOptions: rules.options)
    let flusher = Flusher(
        table: table, configuration: FlushConfiguration(intervalMillis: 10_000), startMillis: 0,
        metrics: SelfMetrics(readers: 1)
    ) { state.apply($0) }
    ingest(table, ["lat.a:50|ms", "lat.b:50|ms"])
    flusher.flush(at: 10_000)
    try write(factor: "1.1")
    _ = try rules.reload()
    ingest(table, ["lat.a:70|ms"])
    flusher.flush(at: 20_000)
    let metrics = decode(OTLPCumulativeEncoder.requests(state, resource: resource, batchSize: 100, labels: .none).requests)
    let lat = try #require(metrics["lat"])
    #expect(lat.kind == 10)
    #expect(lat.points.map(\.attributes) == [["route=a"], ["route=b"]])
    #expect(lat.points.map(\.count) == [1, 0])
}
