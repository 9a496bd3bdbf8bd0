/// Encodes a batch as InfluxDB line protocol 1.x (`format: "influx"`), for InfluxDB's and
/// VictoriaMetrics' `/write`:
///
/// ```
/// api.requests,env=prod value=120,rate=12 1764961210000000000
/// api.latency,env=prod count=120,samples=100,rate=12,sum=4521.5,...,p99=300 1764961210000000000
/// ```
///
/// - The measurement is the statsd name; tags (then the push's `external_labels`) follow in
///   key order. A tag with an empty value is left out: the format has no empty tag values.
/// - Escaping per the format: in the measurement a backslash before a comma or a space;
///   in tag keys, tag values and field keys also before `=`. A backslash is itself written
///   `\\` so that a value ending in one cannot escape the separator after it.
/// - Fields are floats. Infinities and NaN have no line-protocol form and are left out; a
///   line left with no field is not written.
/// - Every line is stamped with the flush time in nanoseconds; a timestamped counter or gauge
///   sample (`|T`, SPEC section 15) with its own time, with the one field `value`.
enum InfluxEncoder {
    static func requests(_ batch: FlushBatch, batchSize: Int, labels: PushEncoders.ExternalLabels) -> [PushRequest] {
        var requests: [PushRequest] = []
        var body: [UInt8] = []
        var lines = 0
        var timestamp: [UInt8] = [UInt8(ascii: " ")]
        JSONWriter.appendInteger(batch.timestamp * 1_000_000, to: &timestamp)
        timestamp.append(UInt8(ascii: "\n"))
        let percentileFields = batch.percentiles.map { Array("p\($0.label)".utf8) }

        /// Writes one line, stamped with the flush time or a point's own (`at`).
        func line(
            _ key: MetricKey, _ fields: [(StaticString, Double)], extra: [([UInt8], Double)] = [],
            at pointTime: EpochMillis? = nil
        ) {
            let start = body.count
            key.withName { escape($0, measurement: true) }
            key.forEachTag { k, v in
                guard !v.isEmpty else { return }
                body.append(UInt8(ascii: ","))
                escape(k, measurement: false)
                body.append(UInt8(ascii: "="))
                escape(v, measurement: false)
            }
            labels.forEachMissing(from: key) { k, v in
                body.append(UInt8(ascii: ","))
                k.withUnsafeBytes { escape($0, measurement: false) }
                body.append(UInt8(ascii: "="))
                v.withUnsafeBytes { escape($0, measurement: false) }
            }
            var separator = UInt8(ascii: " ")
            func field(_ name: UnsafeRawBufferPointer, _ value: Double) {
                guard value.isFinite else { return }
                body.append(separator)
                separator = UInt8(ascii: ",")
                escape(name, measurement: false)
                body.append(UInt8(ascii: "="))
                PrometheusNumber.append(value, to: &body)
            }
            for (name, value) in fields {
                field(UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount), value)
            }
            for (name, value) in extra { name.withUnsafeBytes { field($0, value) } }
            guard separator == UInt8(ascii: ",") else {
                body.removeSubrange(start...)  // no field could be written
                return
            }
            if let pointTime {
                body.append(UInt8(ascii: " "))
                JSONWriter.appendInteger(pointTime * 1_000_000, to: &body)
                body.append(UInt8(ascii: "\n"))
            } else {
                body.append(contentsOf: timestamp)
            }
            lines += 1
            if lines == batchSize {
                requests.append(PushRequest(format: .influx, body: body, series: lines))
                body = []
                lines = 0
            }
        }

        func escape(_ bytes: UnsafeRawBufferPointer, measurement: Bool) {
            for b in bytes {
                switch b {
                case UInt8(ascii: ","), UInt8(ascii: " "), UInt8(ascii: "\\"):
                    body.append(UInt8(ascii: "\\"))
                case UInt8(ascii: "=") where !measurement:
                    body.append(UInt8(ascii: "\\"))
                case UInt8(ascii: "\n"):
                    body.append(UInt8(ascii: " "))  // a newline ends a line: never inside one
                    continue
                default:
                    break
                }
                body.append(b)
            }
        }

        for c in batch.counters { line(c.key, [("value", c.value), ("rate", c.rate)]) }
        for g in batch.gauges { line(g.key, [("value", g.value)]) }
        for s in batch.sets { line(s.key, [("value", s.value)]) }
        for t in batch.samples {
            line(
                t.key,
                [
                    ("count", t.count), ("samples", Double(t.samples)), ("rate", t.rate), ("sum", t.sum), ("min", t.min),
                    ("max", t.max), ("mean", t.mean), ("median", t.median), ("stddev", t.stddev),
                ], extra: Array(zip(percentileFields, t.percentiles)))
        }
        for p in batch.points { line(p.key, [("value", p.value)], at: p.timestamp) }
        if lines > 0 { requests.append(PushRequest(format: .influx, body: body, series: lines)) }
        return requests
    }
}
