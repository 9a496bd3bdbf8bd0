/// The body formats of the HTTP push sink (`sinks.http_push.format`).
public enum PushFormat: String, Sendable, CaseIterable {
    case json
    case remoteWrite = "remote_write"
    case datadog
    case otlp
    case influx

    /// The request headers the format needs.
    var headers: [(String, String)] {
        switch self {
        case .json, .datadog:
            [("Content-Type", "application/json")]
        case .otlp:
            [("Content-Type", "application/x-protobuf")]
        case .influx:
            [("Content-Type", "text/plain; charset=utf-8")]
        case .remoteWrite:
            [
                ("Content-Type", "application/x-protobuf"), ("Content-Encoding", "snappy"),
                ("X-Prometheus-Remote-Write-Version", "0.1.0"),
            ]
        }
    }
}

/// One request body and how many series it carries.
public struct PushRequest: Sendable, Equatable {
    public var format: PushFormat
    public var body: [UInt8]
    public var series: Int
}

/// Splits a batch into request bodies of at most `batchSize` series each.
enum PushEncoders {
    /// A push's `external_labels`: added to every series it sends that has no tag (label,
    /// attribute) of the same name.
    struct ExternalLabels: Sendable {
        /// Sorted by name in byte order.
        let pairs: [(name: [UInt8], value: [UInt8])]

        static let none = ExternalLabels([])

        init(_ labels: [(name: String, value: String)]) {
            pairs = labels.map { (Array($0.name.utf8), Array($0.value.utf8)) }.sorted {
                $0.name.lexicographicallyPrecedes($1.name)
            }
        }

        var isEmpty: Bool { pairs.isEmpty }

        /// Calls `body` with each label the key has no tag for.
        func forEachMissing(from key: MetricKey, _ body: ([UInt8], [UInt8]) -> Void) {
            for pair in pairs where !key.hasTag(named: pair.name) { body(pair.name, pair.value) }
        }
    }

    /// `json`: arrays of SPEC section 3 objects.
    static func json(_ batch: FlushBatch, batchSize: Int, labels: ExternalLabels = .none) -> [PushRequest] {
        var w = JSONWriter(capacity: batch.seriesCount * 160)
        var ends: [Int] = []
        JSONLinesEncoder.forEachObject(batch, into: &w, labels: labels) { ends.append($0.count) }
        let objects = w.bytes
        var requests: [PushRequest] = []
        var start = 0
        for chunk in stride(from: 0, to: ends.count, by: batchSize) {
            let last = min(chunk + batchSize, ends.count) - 1
            var body: [UInt8] = [UInt8(ascii: "[")]
            var from = start
            for k in chunk...last {
                if k > chunk { body.append(UInt8(ascii: ",")) }
                body.append(contentsOf: objects[from..<ends[k]])
                from = ends[k]
            }
            body.append(UInt8(ascii: "]"))
            requests.append(PushRequest(format: .json, body: body, series: last - chunk + 1))
            start = ends[last]
        }
        return requests
    }

    /// `datadog`: series API v1 bodies; counters as `count`, gauges and sets as
    /// `gauge`, each timer statistic as a gauge `<name>.<stat>`.
    static func datadog(_ batch: FlushBatch, batchSize: Int, labels: ExternalLabels = .none) -> [PushRequest] {
        let ts = batch.timestamp.floorDiv(1000)
        let interval = max(1, Int64(batch.interval.rounded()))
        var items: [[UInt8]] = []
        func item(_ key: MetricKey, _ suffix: String, _ type: StaticString, _ value: Double) {
            guard value.isFinite else { return }  // Datadog takes no infinities
            var w = JSONWriter(capacity: 128)
            w.raw("{\"metric\":")
            var name: [UInt8] = key.withName { Array($0) }
            name.append(contentsOf: suffix.utf8)
            name.withUnsafeBytes { w.string($0) }
            w.raw(",\"points\":[[")
            w.integer(ts)
            w.raw(",")
            w.number(value)
            w.raw("]],\"type\":\"")
            w.raw(type)
            w.raw("\",\"interval\":")
            w.integer(interval)
            w.raw(",\"tags\":[")
            var first = true
            key.forEachTag { k, v in
                if !first { w.raw(",") }
                first = false
                w.string(Array(k) + [UInt8(ascii: ":")] + Array(v))
            }
            labels.forEachMissing(from: key) { k, v in
                if !first { w.raw(",") }
                first = false
                w.string(k + [UInt8(ascii: ":")] + v)
            }
            w.raw("]}")
            items.append(w.bytes)
        }
        for c in batch.counters { item(c.key, "", "count", c.value) }
        for g in batch.gauges { item(g.key, "", "gauge", g.value) }
        for s in batch.sets { item(s.key, "", "gauge", s.value) }
        for t in batch.samples {
            let stats: [(String, Double)] =
                [
                    ("count", t.count), ("samples", Double(t.samples)), ("rate", t.rate), ("sum", t.sum), ("min", t.min),
                    ("max", t.max), ("mean", t.mean), ("median", t.median), ("stddev", t.stddev),
                ] + zip(batch.percentiles, t.percentiles).map { ("p\($0.label)", $1) }
            for (stat, value) in stats { item(t.key, ".\(stat)", "gauge", value) }
        }
        return stride(from: 0, to: items.count, by: batchSize).map { chunk in
            let slice = items[chunk..<min(chunk + batchSize, items.count)]
            var body = Array("{\"series\":[".utf8)
            for (n, bytes) in slice.enumerated() {
                if n > 0 { body.append(UInt8(ascii: ",")) }
                body.append(contentsOf: bytes)
            }
            body.append(contentsOf: "]}".utf8)
            return PushRequest(format: .datadog, body: body, series: slice.count)
        }
    }

    /// `remote_write`: every series of the shared cumulative state, snappy-compressed.
    static func remoteWrite(_ series: [RemoteWriteEncoder.Series], timestamp: EpochMillis, batchSize: Int) -> [PushRequest] {
        stride(from: 0, to: series.count, by: batchSize).map { chunk in
            let slice = series[chunk..<min(chunk + batchSize, series.count)]
            let body = Snappy.compress(RemoteWriteEncoder.writeRequest(slice, timestamp: timestamp))
            return PushRequest(format: .remoteWrite, body: body, series: slice.count)
        }
    }
}
