/// Writes a batch as CloudWatch Embedded Metric Format objects, one per line
/// (`sinks.json.format: "emf"`), for the CloudWatch agent or Lambda to turn into metrics:
///
/// ```
/// {"_aws":{"Timestamp":1764961210000,"CloudWatchMetrics":[{"Namespace":"Stator","Dimensions":[["env"]],
///   "Metrics":[{"Name":"api.requests","Unit":"Count"},{"Name":"api.latency.p99","Unit":"Milliseconds"}]}]},
///  "env":"prod","api.requests":120,"api.latency.p99":300}
/// ```
///
/// - Series with the same tags share objects; their tags are the dimensions (one dimension set
///   holding every tag key; `[[]]` for untagged series). A tag with an empty value is left
///   out (CloudWatch takes no empty dimension value).
/// - At most 100 metrics per object (the specification's limit); more make more objects.
/// - A series with more than 30 tags is skipped: `too_many_dimensions`. A metric whose name
///   is one of its object's dimension keys, or `_aws`, cannot be a key of that object and is
///   skipped too: `name_conflict`.
/// - Counters: the interval's value, `Count`. Gauges and sets: `None`. Timers: each statistic
///   a metric `<name>.<stat>` (`count` in `Count`; `sum`, `min`, `max`, `mean`, `median`,
///   `stddev` and each `p<N>` in `Milliseconds`); histograms and distributions the same in `None`.
/// - Values that are not finite are left out (JSON has no form for them).
enum EMFEncoder {
    static let maxMetrics = 100
    static let maxDimensions = 30

    /// What an encoding left out.
    struct Skipped: Equatable {
        var tooManyDimensions = 0
        var nameConflicts = 0
    }

    private struct Metric {
        var name: [UInt8]
        var unit: StaticString
        var value: Double
    }

    private struct Group {
        var dimensions: [(key: [UInt8], value: [UInt8])]
        var metrics: [Metric] = []
    }

    /// Appends the batch's objects, each followed by a newline.
    static func encode(_ batch: FlushBatch, namespace: String, into w: inout JSONWriter) -> Skipped {
        var skipped = Skipped()
        var groups: [Group] = []
        var groupOf: [[UInt8]: Int] = [:]
        let reserved = Array("_aws".utf8)

        /// The group of the key's tags, or nil when it has too many.
        func group(_ key: MetricKey) -> Int? {
            var identity: [UInt8] = []
            var dimensions: [(key: [UInt8], value: [UInt8])] = []
            key.forEachTag { k, v in
                guard !v.isEmpty else { return }
                dimensions.append((Array(k), Array(v)))
                identity.append(contentsOf: k)
                identity.append(0)
                identity.append(contentsOf: v)
                identity.append(0)
            }
            guard dimensions.count <= maxDimensions else {
                skipped.tooManyDimensions += 1
                return nil
            }
            if let g = groupOf[identity] { return g }
            groups.append(Group(dimensions: dimensions))
            groupOf[identity] = groups.count - 1
            return groups.count - 1
        }
        func add(_ g: Int, _ key: MetricKey, _ suffix: String, _ unit: StaticString, _ value: Double) {
            guard value.isFinite else { return }
            var name = key.withName { Array($0) }
            name.append(contentsOf: suffix.utf8)
            guard name != reserved, !groups[g].dimensions.contains(where: { $0.key == name }) else {
                skipped.nameConflicts += 1
                return
            }
            groups[g].metrics.append(Metric(name: name, unit: unit, value: value))
        }

        for c in batch.counters { if let g = group(c.key) { add(g, c.key, "", "Count", c.value) } }
        for s in batch.gauges { if let g = group(s.key) { add(g, s.key, "", "None", s.value) } }
        for s in batch.sets { if let g = group(s.key) { add(g, s.key, "", "None", s.value) } }
        for t in batch.samples {
            guard let g = group(t.key) else { continue }
            let unit: StaticString = t.key.type == .timer ? "Milliseconds" : "None"
            add(g, t.key, ".count", "Count", t.count)
            for (stat, value) in [
                (".sum", t.sum), (".min", t.min), (".max", t.max), (".mean", t.mean), (".median", t.median),
                (".stddev", t.stddev),
            ] {
                add(g, t.key, stat, unit, value)
            }
            for (p, value) in zip(batch.percentiles, t.percentiles) { add(g, t.key, ".p\(p.label)", unit, value) }
        }

        for group in groups {
            // An object holds each name once: a name met again (a counter and a gauge of one
            // name and tags) starts the next object, as does the 100th metric.
            var start = 0
            while start < group.metrics.count {
                var names = Set<[UInt8]>()
                var end = start
                while end < group.metrics.count, end - start < maxMetrics, names.insert(group.metrics[end].name).inserted {
                    end += 1
                }
                object(group.dimensions, group.metrics[start..<end], batch.timestamp, namespace, &w)
                start = end
            }
        }
        return skipped
    }

    private static func object(
        _ dimensions: [(key: [UInt8], value: [UInt8])], _ metrics: ArraySlice<Metric>, _ timestamp: EpochMillis,
        _ namespace: String, _ w: inout JSONWriter
    ) {
        w.raw("{\"_aws\":{\"Timestamp\":")
        w.integer(timestamp)
        w.raw(",\"CloudWatchMetrics\":[{\"Namespace\":")
        w.string(namespace)
        w.raw(",\"Dimensions\":[[")
        for (n, d) in dimensions.enumerated() {
            if n > 0 { w.raw(",") }
            w.string(d.key)
        }
        w.raw("]],\"Metrics\":[")
        for (n, m) in metrics.enumerated() {
            if n > 0 { w.raw(",") }
            w.raw("{\"Name\":")
            w.string(m.name)
            w.raw(",\"Unit\":\"")
            w.raw(m.unit)
            w.raw("\"}")
        }
        w.raw("]}]}")
        for d in dimensions {
            w.raw(",")
            w.string(d.key)
            w.raw(":")
            w.string(d.value)
        }
        for m in metrics {
            w.raw(",")
            w.string(m.name)
            w.raw(":")
            w.number(m.value)
        }
        w.raw("}\n")
    }
}
