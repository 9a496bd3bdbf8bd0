/// `format: "otlp"` with `temporality: delta`: each interval's own aggregates, from the batch,
/// under their statsd names. A data point's start is the previous flush, its time this flush.
///
/// - Counters: monotonic `Sum`s. Gauges and sets: `Gauge`s.
/// - Timers, histograms and distributions: `Histogram`s with the configured buckets; timers in
///   milliseconds (unit `ms`, bounds in ms), with `min` and `max`. Bucket counts are whole
///   numbers (a sample rate makes them fractional: they are rounded), and `count` is their total.
/// - With native histograms (SPEC section 13), each sample series that carries the interval's
///   native histogram of its values as sent (`nativeInStatsdUnit`: the agent keeps one for
///   timers, in milliseconds, whenever an OTLP push is configured) is an `ExponentialHistogram`
///   instead, with `min` and `max`: OTLP allows one type per metric name in a scope, so the
///   two cannot go side by side. A series without one keeps the explicit `Histogram`.
/// - Tags, then the push's `external_labels`, are the attributes.
/// - A timestamped counter or gauge sample (`|T`, SPEC section 15) is a data point of its own
///   at its time (a counter's starts there too); a cumulative push sends only the gauges' this
///   way, a counter's being in its total.
enum OTLPDeltaEncoder {
    static func requests(
        _ batch: FlushBatch, resource: OTLPResource, batchSize: Int, labels: PushEncoders.ExternalLabels
    ) -> [PushRequest] {
        var builder = OTLPRequestBuilder(resource: resource, batchSize: batchSize)
        let end = UInt64(max(0, batch.timestamp)) * 1_000_000
        let start = end - min(end, UInt64(max(0, batch.interval * 1e9)))
        func attributes(_ w: inout ProtobufWriter, _ key: MetricKey, field: UInt32) {
            key.forEachTag { k, v in OTLPRequestBuilder.attribute(&w, field: field, k, v) }
            labels.forEachMissing(from: key) { k, v in OTLPRequestBuilder.attribute(&w, field: field, k, v) }
        }
        for c in batch.counters {
            c.key.withName { name in
                builder.add(name: name, unit: .none, kind: .sum(.delta)) { w in
                    attributes(&w, c.key, field: 7)
                    w.fixed64Field(2, start)
                    w.fixed64Field(3, end)
                    w.doubleField(4, c.value)
                }
            }
        }
        for (key, value) in batch.gauges.map({ ($0.key, $0.value) }) + batch.sets.map({ ($0.key, $0.value) }) {
            key.withName { name in
                builder.add(name: name, unit: .none, kind: .gauge) { w in
                    attributes(&w, key, field: 7)
                    w.fixed64Field(3, end)
                    w.doubleField(4, value)
                }
            }
        }
        var milliseconds: [ObjectIdentifier: [Double]] = [:]
        for t in batch.samples {
            let timer = t.key.type == .timer
            if let native = t.nativeInStatsdUnit {
                t.key.withName { name in
                    builder.add(name: name, unit: timer ? .milliseconds : .none, kind: .exponentialHistogram(.delta)) { w in
                        attributes(&w, t.key, field: 1)
                        w.fixed64Field(2, start)
                        w.fixed64Field(3, end)
                        OTLPRequestBuilder.exponentialHistogram(&w, native)
                        w.doubleField(12, t.min)
                        w.doubleField(13, t.max)
                    }
                }
                continue
            }
            let bounds: [Double]
            if timer {
                let id = ObjectIdentifier(t.bounds)
                bounds = milliseconds[id] ?? OTLPRequestBuilder.milliseconds(t.bounds.upperBounds)
                milliseconds[id] = bounds
            } else {
                bounds = t.bounds.upperBounds
            }
            let (counts, total) = OTLPRequestBuilder.wholeCounts(t.bucketCounts)
            t.key.withName { name in
                builder.add(name: name, unit: timer ? .milliseconds : .none, kind: .histogram(.delta)) { w in
                    attributes(&w, t.key, field: 9)
                    w.fixed64Field(2, start)
                    w.fixed64Field(3, end)
                    w.fixed64Field(4, total)
                    w.doubleField(5, t.weightedSum)
                    OTLPRequestBuilder.packed(&w, field: 6, counts)
                    OTLPRequestBuilder.packed(&w, field: 7, bounds.map(\.bitPattern))
                    w.doubleField(11, t.min)
                    w.doubleField(12, t.max)
                }
            }
        }
        addPoints(batch.points, gaugesOnly: false, to: &builder, labels: labels)
        builder.finishRequest()
        return builder.requests
    }

    /// A cumulative push's timestamped gauge samples (its counters' are in their totals).
    static func gaugePointRequests(
        _ batch: FlushBatch, resource: OTLPResource, batchSize: Int, labels: PushEncoders.ExternalLabels
    ) -> [PushRequest] {
        guard batch.points.contains(where: { $0.key.type == .gauge }) else { return [] }
        var builder = OTLPRequestBuilder(resource: resource, batchSize: batchSize)
        addPoints(batch.points, gaugesOnly: true, to: &builder, labels: labels)
        builder.finishRequest()
        return builder.requests
    }

    /// Timestamped samples (`|T`, SPEC section 15), each a data point at its own time: a
    /// counter's a delta `Sum` point starting and ending there, a gauge's a `Gauge` point.
    private static func addPoints(
        _ points: [TimestampedPoint], gaugesOnly: Bool, to builder: inout OTLPRequestBuilder,
        labels: PushEncoders.ExternalLabels
    ) {
        for p in points where !gaugesOnly || p.key.type == .gauge {
            let time = UInt64(max(0, p.timestamp)) * 1_000_000
            let counter = p.key.type == .counter
            p.key.withName { name in
                builder.add(name: name, unit: .none, kind: counter ? .sum(.delta) : .gauge) { w in
                    p.key.forEachTag { k, v in OTLPRequestBuilder.attribute(&w, field: 7, k, v) }
                    labels.forEachMissing(from: p.key) { k, v in OTLPRequestBuilder.attribute(&w, field: 7, k, v) }
                    if counter { w.fixed64Field(2, time) }
                    w.fixed64Field(3, time)
                    w.doubleField(4, p.value)
                }
            }
        }
    }
}
