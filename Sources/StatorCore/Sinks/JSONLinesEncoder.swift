/// Writes SPEC section 3 objects: one per series, keys in a fixed order; then one per
/// timestamped point and one per event or service check (SPEC section 15).
public enum JSONLinesEncoder {
    /// Encodes the whole batch as NDJSON (one object per line).
    public static func encode(_ batch: FlushBatch) -> [UInt8] {
        var w = JSONWriter(capacity: 64 + batch.seriesCount * 160)
        encode(batch, into: &w)
        return w.bytes
    }

    /// Appends the whole batch as NDJSON to `w`.
    public static func encode(_ batch: FlushBatch, into w: inout JSONWriter) {
        forEachObject(batch, into: &w) { $0.raw(UInt8(ascii: "\n")) }
    }

    /// Appends every series object of `batch`, calling `separator` after each one.
    /// - Parameter labels: a push's `external_labels`, added to the tags of every series that
    ///   has no tag of the same name.
    static func forEachObject(
        _ batch: FlushBatch, into w: inout JSONWriter, labels: PushEncoders.ExternalLabels = .none,
        separator: (inout JSONWriter) -> Void
    ) {
        /// `{"ts":"<time>","interval":<the batch's>`, the start of every object.
        func head(_ time: EpochMillis) -> [UInt8] {
            var prefix = JSONWriter(capacity: 48)
            prefix.raw("{\"ts\":\"")
            prefix.text(WallClock.rfc3339(time))
            prefix.raw("\",\"interval\":")
            prefix.number(batch.interval)
            return prefix.bytes
        }
        let batchHead = head(batch.timestamp)
        let percentileKeys = batch.percentiles.map { Array(",\"p\($0.label)\":".utf8) }

        /// Opens a series' object, stamped with the batch's time, or a point's own (`at`).
        func open(_ key: MetricKey, at timestamp: EpochMillis? = nil) {
            if let timestamp { w.raw(head(timestamp)) } else { w.raw(batchHead) }
            w.raw(",\"name\":")
            key.withName { w.string($0) }
            w.raw(",\"type\":\"")
            w.text(key.type.description)
            w.raw("\",\"tags\":{")
            var first = true
            key.forEachTag { k, v in
                if !first { w.raw(UInt8(ascii: ",")) }
                first = false
                w.string(k)
                w.raw(UInt8(ascii: ":"))
                w.string(v)
            }
            if !labels.isEmpty {
                labels.forEachMissing(from: key) { k, v in
                    if !first { w.raw(UInt8(ascii: ",")) }
                    first = false
                    w.string(k)
                    w.raw(UInt8(ascii: ":"))
                    w.string(v)
                }
            }
            w.raw("}")
        }
        for c in batch.counters {
            open(c.key)
            w.raw(",\"value\":"); w.number(c.value)
            w.raw(",\"rate\":"); w.number(c.rate)
            w.raw("}"); separator(&w)
        }
        for g in batch.gauges {
            open(g.key)
            w.raw(",\"value\":"); w.number(g.value)
            w.raw("}"); separator(&w)
        }
        for s in batch.sets {
            open(s.key)
            w.raw(",\"value\":"); w.number(s.value)
            w.raw("}"); separator(&w)
        }
        for t in batch.samples {
            open(t.key)
            w.raw(",\"count\":"); w.number(t.count)
            w.raw(",\"samples\":"); w.integer(Int64(t.samples))
            w.raw(",\"rate\":"); w.number(t.rate)
            w.raw(",\"sum\":"); w.number(t.sum)
            w.raw(",\"min\":"); w.number(t.min)
            w.raw(",\"max\":"); w.number(t.max)
            w.raw(",\"mean\":"); w.number(t.mean)
            w.raw(",\"median\":"); w.number(t.median)
            w.raw(",\"stddev\":"); w.number(t.stddev)
            for (k, p) in zip(percentileKeys, t.percentiles) {
                w.raw(k)
                w.number(p)
            }
            w.raw("}"); separator(&w)
        }
        // A timestamped counter or gauge sample (`|T`): its value at its own time, marked so
        // that it is not read as an interval's aggregate.
        for p in batch.points {
            open(p.key, at: p.timestamp)
            w.raw(",\"value\":"); w.number(p.value)
            w.raw(",\"timestamped\":true}"); separator(&w)
        }
        for e in batch.events {
            w.raw(batchHead)
            event(e, into: &w)
            separator(&w)
        }
    }

    /// The rest of an event's or service check's object after `ts` and `interval` (SPEC
    /// section 15): every field, `null` when not sent; tags as sent, in a list.
    static func event(_ e: DogEvent, into w: inout JSONWriter) {
        func optional(_ key: StaticString, _ value: String?) {
            w.raw(key)
            if let value { w.string(value) } else { w.raw("null") }
        }
        w.raw(",\"type\":\"")
        w.text(e.kind.description)
        if e.kind == .event {
            w.raw("\",\"title\":"); w.string(e.title)
            w.raw(",\"text\":"); w.string(e.text)
        } else {
            w.raw("\",\"name\":"); w.string(e.title)
            w.raw(",\"status\":"); w.integer(Int64(e.status))
            w.raw(",\"message\":"); w.string(e.text)
        }
        w.raw(",\"timestamp\":")
        if let t = e.timestamp { w.integer(t) } else { w.raw("null") }
        optional(",\"hostname\":", e.hostname)
        if e.kind == .event {
            optional(",\"aggregation_key\":", e.aggregationKey)
            optional(",\"priority\":", e.priority)
            optional(",\"source_type\":", e.sourceType)
            optional(",\"alert_type\":", e.alertType)
        }
        w.raw(",\"tags\":[")
        for (i, tag) in e.tags.enumerated() {
            if i > 0 { w.raw(UInt8(ascii: ",")) }
            w.string(tag)
        }
        w.raw("]}")
    }
}
