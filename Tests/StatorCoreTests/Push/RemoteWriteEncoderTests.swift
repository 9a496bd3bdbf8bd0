import Testing
@testable import StatorCore

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// The time series of snappy-compressed `WriteRequest` bodies, decoded independently of the
/// encoder: labels as written (to check their order) and the sample.
private func decode(_ requests: [PushRequest]) throws -> [(
    labels: [(name: [UInt8], value: [UInt8])], value: Double, timestamp: Int64
)] {
    var result: [(labels: [(name: [UInt8], value: [UInt8])], value: Double, timestamp: Int64)] = []
    for request in requests {
        var message = ProtobufReader(try snappyDecode(request.body)[...])
        var count = 0
        while let (field, value) = message.next() {
            guard field == 1, case .bytes(let ts) = value else { throw TestFailure("not a TimeSeries") }
            count += 1
            var labels: [(name: [UInt8], value: [UInt8])] = []
            var sample = (0.0, Int64(0))
            var series = ProtobufReader(ts)
            while let (f, v) = series.next() {
                guard case .bytes(let inner) = v else { throw TestFailure("bad field") }
                var r = ProtobufReader(inner)
                if f == 1 {
                    var label: (name: [UInt8], value: [UInt8]) = ([], [])
                    while let (lf, lv) = r.next() {
                        if case .bytes(let b) = lv { if lf == 1 { label.name = Array(b) } else { label.value = Array(b) } }
                    }
                    labels.append(label)
                } else {
                    while let (sf, sv) = r.next() {
                        if sf == 1, case .fixed64(let bits) = sv { sample.0 = Double(bitPattern: bits) }
                        if sf == 2, case .varint(let t) = sv { sample.1 = Int64(bitPattern: t) }
                    }
                }
            }
            result.append((labels, sample.0, sample.1))
        }
        #expect(count == request.series)
    }
    return result
}

private struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

@Test func writeRequestBytesArePinned() {
    var labels = RemoteWriteEncoder.LabelSet()
    labels.append(name: bytes("job"), value: bytes("x"))
    labels.append(name: bytes("__name__"), value: bytes("up"))
    var order: [Int] = []
    labels.sortedOrder(into: &order)
    var out = ProtobufWriter()
    RemoteWriteEncoder.appendTimeSeries(labels, order: order, value: 1, timestamp: 1000, to: &out)
    let encoded = out.bytes
    let label1: [UInt8] = [0x0A, 0x08] + bytes("__name__") + [0x12, 0x02] + bytes("up")
    let label2: [UInt8] = [0x0A, 0x03] + bytes("job") + [0x12, 0x01] + bytes("x")
    let sample: [UInt8] = [0x09, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F, 0x10, 0xE8, 0x07]
    let timeSeries: [UInt8] = [0x0A, 0x0E] + label1 + [0x0A, 0x08] + label2 + [0x12, 0x0C] + sample
    #expect(encoded == [0x0A, 0x28] + timeSeries)
}

@Test func seriesComeFromTheSharedStateWithSortedLabelsAndHistograms() throws {
    let table = ShardedTable(
        configuration: AggregationConfiguration(shards: 2, buckets: HistogramBuckets(defaults: [0.1])), seed: 3)
    let state = CumulativeState()
    let flusher = Flusher(table: table, configuration: FlushConfiguration(), startMillis: 0, metrics: SelfMetrics(readers: 1)) {
        state.apply($0)
    }
    ingest(table, ["hits:2|c|#zone:b,app:a", "temp:3|g", "lat:50|ms", "lat:500|ms|@0.5"])
    flusher.flush(at: 10_000)
    ingest(table, ["hits:1|c|#zone:b,app:a"])
    flusher.flush(at: 20_000)
    let (requests, timestamp, sequence) = RemoteWriteEncoder.requests(from: state, batchSize: 4)
    #expect(timestamp == 20_000)
    #expect(sequence == 2)
    #expect(requests.map(\.series) == [4, 2])
    let series = try decode(requests)
    #expect(series.allSatisfy { $0.timestamp == 20_000 })
    func find(_ name: String, _ extra: [(String, String)] = []) -> Double? {
        let labels = ([("__name__", name)] + extra).sorted { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) }
            .map { (bytes($0.0), bytes($0.1)) }
        return series.first { s in
            s.labels.count == labels.count && zip(s.labels, labels).allSatisfy { $0.name == $1.0 && $0.value == $1.1 }
        }?.value
    }
    #expect(find("hits_total", [("app", "a"), ("zone", "b")]) == 3)
    #expect(find("temp") == 3)
    #expect(find("lat_seconds_bucket", [("le", "0.1")]) == 1)
    #expect(find("lat_seconds_bucket", [("le", "+Inf")]) == 3)
    #expect(find("lat_seconds_count") == 3)
    #expect(find("lat_seconds_sum") == 1.05)
    #expect(series.count == 1 + 1 + 4)  // hits, temp, lat: two buckets, _sum, _count
    // external_labels join every series, sorted among its labels; a series' own label wins.
    let labelled = try decode(
        RemoteWriteEncoder.requests(from: state, labels: .init([("zone", "z"), ("aa", "1")]), batchSize: 100).requests)
    let hits = try #require(labelled.first { $0.labels.contains { $0.value == bytes("hits_total") } })
    #expect(hits.labels.map { String(decoding: $0.name, as: UTF8.self) } == ["__name__", "aa", "app", "zone"])
    #expect(hits.labels.last?.value == bytes("b"))
    #expect(labelled.allSatisfy { $0.labels.contains { $0.name == bytes("aa") } })
    // Every series' labels are in byte order, __name__ first here.
    for s in series {
        #expect(s.labels.first?.name == bytes("__name__"))
        #expect(zip(s.labels, s.labels.dropFirst()).allSatisfy { $0.name.lexicographicallyPrecedes($1.name) })
    }
}

@Test func escapedLabelValuesComeBackRaw() {
    let key = MetricKey(type: .gauge, name: "x", tags: [("q", "say \"hi\"\nback\\slash")])
    let labels = PrometheusNaming.labels(of: key, histogram: false)
    let parsed = RemoteWriteEncoder.parseLabels(labels)
    #expect(parsed.count == 1)
    #expect(parsed.first?.value == bytes("say \"hi\"\nback\\slash"))
}

/// Timestamped gauge samples (`|T`): a sample each at its own time, named and labelled as
/// `/metrics` names the gauge; a counter's (in its total) and one dated after the flush are not.
@Test func gaugePointsAreSamplesAtTheirOwnTime() throws {
    let state = CumulativeState(prefix: "app_")
    let points = [
        TimestampedPoint(key: MetricKey(type: .gauge, name: "t.temp", tags: [("room", "a b")]), value: -3, timestamp: 1_000),
        TimestampedPoint(key: MetricKey(type: .counter, name: "hits"), value: 5, timestamp: 1_000),
        TimestampedPoint(key: MetricKey(type: .gauge, name: "ahead"), value: 1, timestamp: 20_001),
        TimestampedPoint(key: MetricKey(type: .gauge, name: "t.temp", tags: [("room", "a b")]), value: 4, timestamp: 2_000),
    ]
    let (requests, future) = RemoteWriteEncoder.gaugePointRequests(
        points, naming: state, labels: .none, batchSize: 10, notAfter: 20_000)
    #expect(future == 1)
    let series = try decode(requests)
    #expect(series.map { "\($0.value)@\($0.timestamp)" } == ["-3.0@1000", "4.0@2000"])
    #expect(
        series.first?.labels.map { "\(String(decoding: $0.name, as: UTF8.self))=\(String(decoding: $0.value, as: UTF8.self))" }
            == ["__name__=app_t_temp", "room=a b"])
}
