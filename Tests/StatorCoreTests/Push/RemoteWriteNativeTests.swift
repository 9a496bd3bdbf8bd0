import Testing
@testable import StatorCore

/// SPEC section 13: a native histogram goes out in remote write as one more time series,
/// named without suffix, carrying a `prompb.Histogram`.

/// A `Histogram` message read field by field, independently of the encoder.
private struct DecodedHistogram: Equatable {
    var countInt: UInt64? = nil
    var countFloat: Double? = nil
    var sum = 0.0
    var schema: Int64 = 0
    var zeroThreshold = 0.0
    var zeroCountInt: UInt64? = nil
    var zeroCountFloat: Double? = nil
    var negativeSpans: [[Int64]] = []
    var negativeDeltas: [Int64] = []
    var negativeCounts: [Double] = []
    var positiveSpans: [[Int64]] = []
    var positiveDeltas: [Int64] = []
    var positiveCounts: [Double] = []
    var timestamp: Int64 = 0
}

private func unzigzag(_ n: UInt64) -> Int64 { Int64(bitPattern: n >> 1) ^ -Int64(bitPattern: n & 1) }

private func varints(_ bytes: ArraySlice<UInt8>) -> [UInt64] {
    var out: [UInt64] = []
    var position = bytes.startIndex
    while position < bytes.endIndex, let v = Varint.read(bytes, at: &position) { out.append(v) }
    return out
}

private func doubles(_ bytes: ArraySlice<UInt8>) -> [Double] {
    stride(from: bytes.startIndex, to: bytes.endIndex, by: 8).map { start in
        var bits: UInt64 = 0
        for k in 0..<8 { bits |= UInt64(bytes[start + k]) << (8 * UInt64(k)) }
        return Double(bitPattern: bits)
    }
}

private func decodeHistogram(_ bytes: ArraySlice<UInt8>) -> DecodedHistogram {
    var h = DecodedHistogram()
    var r = ProtobufReader(bytes)
    func span(_ b: ArraySlice<UInt8>) -> [Int64] {
        var s = ProtobufReader(b)
        var pair: [Int64] = [0, 0]
        while let (f, v) = s.next() {
            if case .varint(let n) = v { pair[Int(f) - 1] = f == 1 ? unzigzag(n) : Int64(n) }
        }
        return pair
    }
    while let (field, value) = r.next() {
        switch (field, value) {
        case (1, .varint(let n)): h.countInt = n
        case (2, .fixed64(let bits)): h.countFloat = Double(bitPattern: bits)
        case (3, .fixed64(let bits)): h.sum = Double(bitPattern: bits)
        case (4, .varint(let n)): h.schema = unzigzag(n)
        case (5, .fixed64(let bits)): h.zeroThreshold = Double(bitPattern: bits)
        case (6, .varint(let n)): h.zeroCountInt = n
        case (7, .fixed64(let bits)): h.zeroCountFloat = Double(bitPattern: bits)
        case (8, .bytes(let b)): h.negativeSpans.append(span(b))
        case (9, .bytes(let b)): h.negativeDeltas = varints(b).map(unzigzag)
        case (10, .bytes(let b)): h.negativeCounts = doubles(b)
        case (11, .bytes(let b)): h.positiveSpans.append(span(b))
        case (12, .bytes(let b)): h.positiveDeltas = varints(b).map(unzigzag)
        case (13, .bytes(let b)): h.positiveCounts = doubles(b)
        case (15, .varint(let n)): h.timestamp = Int64(bitPattern: n)
        default: Issue.record("unexpected Histogram field \(field)")
        }
    }
    return h
}

/// Every time series of the requests: its `__name__`, and its histogram if it has one.
private func decode(_ requests: [PushRequest]) throws -> [(name: String, histogram: DecodedHistogram?)] {
    var result: [(name: String, histogram: DecodedHistogram?)] = []
    for request in requests {
        var message = ProtobufReader(try snappyDecode(request.body)[...])
        var count = 0
        while let (field, value) = message.next() {
            guard field == 1, case .bytes(let ts) = value else { continue }
            count += 1
            var name = ""
            var histogram: DecodedHistogram? = nil
            var series = ProtobufReader(ts)
            while let (f, v) = series.next() {
                guard case .bytes(let inner) = v else { continue }
                if f == 1 {
                    var label = ProtobufReader(inner)
                    var pair: [String] = ["", ""]
                    while let (lf, lv) = label.next() {
                        if case .bytes(let b) = lv { pair[Int(lf) - 1] = String(decoding: b, as: UTF8.self) }
                    }
                    if pair[0] == "__name__" { name = pair[1] }
                } else if f == 4 {
                    #expect(histogram == nil)  // one histogram per series and request
                    histogram = decodeHistogram(inner)
                } else {
                    #expect(f == 2)
                }
            }
            result.append((name, histogram))
        }
        #expect(count == request.series)
    }
    return result
}

private func nativeState(_ lines: [String], schema: Int8 = 3) -> CumulativeState {
    var options = NativeHistogramOptions()
    options.schema = schema
    let table = ShardedTable(
        configuration: AggregationConfiguration(
            shards: 1, buckets: HistogramBuckets(defaults: [0.1]).with(native: options)),
        seed: 3)
    let state = CumulativeState()
    let flusher = Flusher(table: table, configuration: FlushConfiguration(), startMillis: 0, metrics: SelfMetrics(readers: 1)) {
        state.apply($0)
    }
    ingest(table, lines)
    flusher.flush(at: 10_000)
    return state
}

@Test func aNativeHistogramIsOneMoreSeriesWithWholeCountsAsDeltas() throws {
    // Schema 3: bucket i holds (2^((i-1)/8), 2^(i/8)]. 0.05 s is in bucket -34 (0.0482, 0.0525],
    // 0.5 s closes bucket -8, 3 and -3 are in bucket 13 (2.83, 3.08] of their sign.
    let state = nativeState(["lat:50|ms", "lat:500|ms|@0.5", "lat:0|ms", "h:3|h", "h:-3|h", "h:3|h", "h:9|h"])
    let (requests, _, _) = RemoteWriteEncoder.requests(from: state, batchSize: 5)
    let series = try decode(requests)
    // Per histogram: two buckets, _sum, _count and the native series.
    #expect(series.count == 10)
    #expect(requests.map(\.series) == [5, 5])  // the native series count toward the batch
    #expect(series.filter { $0.histogram != nil }.map(\.name) == ["h", "lat_seconds"])
    let lat = try #require(series.first { $0.name == "lat_seconds" }?.histogram)
    var expected = DecodedHistogram(
        countInt: 4, sum: 0.05 + 0.5 * 2, schema: 3, zeroThreshold: 0x1p-128, zeroCountInt: 1,
        positiveSpans: [[-34, 1], [25, 1]], positiveDeltas: [1, 1], timestamp: 10_000)
    #expect(lat == expected)
    let h = try #require(series.first { $0.name == "h" }?.histogram)
    // 9 is in bucket 26 (8.72, 9.51]: twelve empty buckets after 13, a span of its own.
    expected = DecodedHistogram(
        countInt: 4, sum: 12, schema: 3, zeroThreshold: 0x1p-128, zeroCountInt: 0,
        negativeSpans: [[13, 1]], negativeDeltas: [1], positiveSpans: [[13, 1], [12, 1]], positiveDeltas: [2, -1],
        timestamp: 10_000)
    #expect(h == expected)
}

@Test func nearBucketsShareASpanAndANegativeSchemaIsZigzagged() throws {
    // Schema -1: bucket i holds (4^(i-1), 4^i]. 0.1 is in bucket -1, 10 in bucket 2: the two
    // empty buckets between them stay in the span, with zero counts.
    let state = nativeState(["d:0.1|d", "d:10|d", "d:10|d"], schema: -1)
    let series = try decode(RemoteWriteEncoder.requests(from: state, batchSize: 100).requests)
    let d = try #require(series.first { $0.name == "d" }?.histogram)
    #expect(d.schema == -1)
    #expect(d.positiveSpans == [[-1, 4]])
    #expect(d.positiveDeltas == [1, -1, 0, 2])
    #expect(d.countInt == 3)
}

@Test func fractionalWeightsMakeAFloatHistogram() throws {
    // A rate of 0.4 counts 2.5 per sample: the float form, with absolute counts. 1 closes
    // bucket 0, 2 bucket 8.
    let state = nativeState(["f:1|h|@0.4", "f:0|h", "f:-2|h"])
    let series = try decode(RemoteWriteEncoder.requests(from: state, batchSize: 100).requests)
    let f = try #require(series.first { $0.name == "f" }?.histogram)
    #expect(
        f
            == DecodedHistogram(
                countFloat: 4.5, sum: 0.5, schema: 3, zeroThreshold: 0x1p-128, zeroCountFloat: 1,
                negativeSpans: [[8, 1]], negativeCounts: [1], positiveSpans: [[0, 1]], positiveCounts: [2.5],
                timestamp: 10_000))
}

@Test func withoutNativeHistogramsNoSeriesCarriesOne() throws {
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 1), seed: 3)
    let state = CumulativeState()
    let flusher = Flusher(table: table, configuration: FlushConfiguration(), startMillis: 0, metrics: SelfMetrics(readers: 1)) {
        state.apply($0)
    }
    ingest(table, ["lat:50|ms"])
    flusher.flush(at: 10_000)
    let series = try decode(RemoteWriteEncoder.requests(from: state, batchSize: 100).requests)
    #expect(!series.isEmpty)
    #expect(series.allSatisfy { $0.histogram == nil })
}

@Test func zigzagIsProtobufs() {
    let pairs: [(Int64, UInt64)] = [
        (0, 0), (-1, 1), (1, 2), (-2, 3), (2_147_483_647, 4_294_967_294), (-2_147_483_648, 4_294_967_295),
    ]
    for (n, z) in pairs { #expect(ProtobufWriter.zigzag(n) == z) }
    var w = ProtobufWriter()
    w.sintField(4, -3)
    w.sintField(9, Int64.min)
    #expect(w.bytes == [0x20, 0x05, 0x48] + [UInt8](repeating: 0xFF, count: 9) + [0x01])
}
