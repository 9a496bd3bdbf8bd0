/// The body formats of the HTTP push sink (`sinks.http_push.format`).
public enum PushFormat: String, Sendable, CaseIterable {
    case json
    case remoteWrite = "remote_write"
    case datadog
    case otlp
    case influx
    /// Not configurable: what a `datadog` push sends next to its series, each to its own API
    /// (the URL's last path segment, `series`, replaced): events to `events`, service checks
    /// to `check_run` (SPEC section 15). Spooled requests keep their format, so their API.
    case datadogEvents = "datadog_events"
    case datadogCheckRun = "datadog_check_run"

    /// Whether `sinks.http_push.format` may name it.
    var isConfigurable: Bool { self != .datadogEvents && self != .datadogCheckRun }

    /// The request headers the format needs.
    var headers: [(String, String)] {
        switch self {
        case .json, .datadog, .datadogEvents, .datadogCheckRun:
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

extension PushFormat {
    /// Headers the client writes itself, which configuration may not set (lowercased).
    static let framingHeaders: Set<String> = ["host", "content-length", "transfer-encoding"]

    /// What a request of this format is sent with: the format's headers, `User-Agent` and the
    /// URL's credentials (`authorization`), each replaced by a configured header of the same
    /// name (names compared ignoring case, so that no header goes twice), then the other
    /// configured headers in name order.
    func requestHeaders(authorization: String?, configured: [String: String]) -> [(String, String)] {
        var defaults = headers + [("User-Agent", "stator/\(statorVersion)")]
        if let authorization { defaults.append(("Authorization", authorization)) }
        let replaced = Set(configured.keys.map { $0.lowercased() })
        return defaults.filter { !replaced.contains($0.0.lowercased()) }
            + configured.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
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
    /// `gauge`, each timer statistic as a gauge `<name>.<stat>`; a timestamped sample (`|T`) as a
    /// point at its own time. Each item is written straight
    /// into its request's body; a series' tags are rendered once for all its items.
    static func datadog(_ batch: FlushBatch, batchSize: Int, labels: ExternalLabels = .none) -> [PushRequest] {
        var head = JSONWriter(capacity: 32)
        head.raw(",\"points\":[[")
        head.integer(batch.timestamp.floorDiv(1000))
        head.raw(",")
        let points = head.bytes
        var intervalText = JSONWriter(capacity: 16)
        intervalText.raw("\",\"interval\":")
        intervalText.integer(max(1, Int64(batch.interval.rounded())))
        intervalText.raw(",\"tags\":")
        let interval = intervalText.bytes
        let statNames =
            [".count", ".samples", ".rate", ".sum", ".min", ".max", ".mean", ".median", ".stddev"].map { Array($0.utf8) }
            + batch.percentiles.map { Array(".p\($0.label)".utf8) }
        var requests: [PushRequest] = []
        var w = JSONWriter(capacity: min(batch.seriesCount, batchSize) * 200 + 16)
        var items = 0
        var tags = JSONWriter(capacity: 128)
        var name: [UInt8] = []

        func renderTags(_ key: MetricKey) {
            tags.removeAll(keepingCapacityUpTo: 1 << 16)
            tags.raw("[")
            var first = true
            // A bare tag goes as it came (`canary`), as the Datadog agent sends it (SPEC section 15).
            key.forEachTagMarkingBare { k, v, bare in
                if !first { tags.raw(",") }
                first = false
                tags.string(bare ? Array(k) : Array(k) + [UInt8(ascii: ":")] + Array(v))
            }
            labels.forEachMissing(from: key) { k, v in
                if !first { tags.raw(",") }
                first = false
                tags.string(k + [UInt8(ascii: ":")] + v)
            }
            tags.raw("]}")
        }
        func item(_ suffix: [UInt8], _ type: StaticString, _ value: Double, at pointTime: EpochMillis? = nil) {
            guard value.isFinite else { return }  // Datadog takes no infinities
            w.raw(items == 0 ? "{\"series\":[{\"metric\":" : ",{\"metric\":")
            let keep = name.count
            name.append(contentsOf: suffix)
            w.string(name)
            name.removeSubrange(keep...)
            if let pointTime {
                w.raw(",\"points\":[[")
                w.integer(pointTime.floorDiv(1000))
                w.raw(",")
            } else {
                w.raw(points)
            }
            w.number(value)
            w.raw("]],\"type\":\"")
            w.raw(type)
            w.raw(interval)
            tags.withBytes { w.raw($0) }
            items += 1
            if items == batchSize { finish() }
        }
        func finish() {
            guard items > 0 else { return }
            w.raw("]}")
            requests.append(PushRequest(format: .datadog, body: w.bytes, series: items))
            w.removeAll(keepingCapacityUpTo: 1 << 24)
            items = 0
        }
        func begin(_ key: MetricKey) {
            name.removeAll(keepingCapacity: true)
            key.withName { name.append(contentsOf: $0) }
            renderTags(key)
        }
        for c in batch.counters {
            begin(c.key)
            item([], "count", c.value)
        }
        for g in batch.gauges {
            begin(g.key)
            item([], "gauge", g.value)
        }
        for s in batch.sets {
            begin(s.key)
            item([], "gauge", s.value)
        }
        for t in batch.samples {
            begin(t.key)
            let values = [t.count, Double(t.samples), t.rate, t.sum, t.min, t.max, t.mean, t.median, t.stddev] + t.percentiles
            for (suffix, value) in zip(statNames, values) { item(suffix, "gauge", value) }
        }
        // Timestamped samples (`|T`): a point at their own time, as the Datadog agent sends them.
        for p in batch.points {
            begin(p.key)
            item([], p.key.type == .counter ? "count" : "gauge", p.value, at: p.timestamp)
        }
        finish()
        return requests + datadogEvents(batch.events, batchSize: batchSize)
    }

    /// The `datadog` push's events, one request each to the events API (`POST /api/v1/events`
    /// takes one), and its service checks, `batchSize` to a request to the check-run API.
    static func datadogEvents(_ events: [DogEvent], batchSize: Int) -> [PushRequest] {
        var requests: [PushRequest] = []
        var checks = JSONWriter(capacity: 256)
        var inChecks = 0
        func tags(_ e: DogEvent, _ w: inout JSONWriter) {
            w.raw(",\"tags\":[")
            for (i, tag) in e.tags.enumerated() {
                if i > 0 { w.raw(UInt8(ascii: ",")) }
                w.string(tag)
            }
            w.raw("]")
        }
        func optional(_ key: StaticString, _ value: String?, _ w: inout JSONWriter) {
            guard let value else { return }
            w.raw(key)
            w.string(value)
        }
        func finishChecks() {
            guard inChecks > 0 else { return }
            checks.raw("]")
            requests.append(PushRequest(format: .datadogCheckRun, body: checks.bytes, series: inChecks))
            checks.removeAll(keepingCapacityUpTo: 1 << 20)
            inChecks = 0
        }
        for e in events {
            if e.kind == .event {
                var w = JSONWriter(capacity: 128 + e.title.utf8.count + e.text.utf8.count)
                w.raw("{\"title\":")
                w.string(e.title)
                w.raw(",\"text\":")
                w.string(e.text)
                if let t = e.timestamp {
                    w.raw(",\"date_happened\":")
                    w.integer(t)
                }
                optional(",\"host\":", e.hostname, &w)
                optional(",\"aggregation_key\":", e.aggregationKey, &w)
                optional(",\"priority\":", e.priority, &w)
                optional(",\"source_type_name\":", e.sourceType, &w)
                optional(",\"alert_type\":", e.alertType, &w)
                tags(e, &w)
                w.raw("}")
                requests.append(PushRequest(format: .datadogEvents, body: w.bytes, series: 1))
            } else {
                checks.raw(inChecks == 0 ? "[{\"check\":" : ",{\"check\":")
                checks.string(e.title)
                checks.raw(",\"status\":")
                checks.integer(Int64(e.status))
                if let t = e.timestamp {
                    checks.raw(",\"timestamp\":")
                    checks.integer(t)
                }
                optional(",\"host_name\":", e.hostname, &checks)
                if !e.text.isEmpty { optional(",\"message\":", e.text, &checks) }
                tags(e, &checks)
                checks.raw("}")
                inChecks += 1
                if inChecks == batchSize { finishChecks() }
            }
        }
        finishChecks()
        return requests
    }
}
