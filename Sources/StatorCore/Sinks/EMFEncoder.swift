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
/// - At most 100 metrics per object (the specification's limit) and 256 KB per object
///   (CloudWatch's); more make more objects.
/// - A series with more than 30 tags is skipped: `too_many_dimensions`. A metric named `_aws`
///   cannot be a key of an object and is skipped: `name_conflict`.
/// - A tag whose key is `_aws`, or is the name of a metric beside it, is renamed with a `tag_`
///   prefix (so that no key appears twice in an object and the metadata stays whole). A metric
///   named like one of its series' tag keys goes in an object of its own, so that the other
///   metrics of that tag set keep their dimension names from one flush to the next.
/// - Metric names and dimension names are cut to 255 bytes, dimension values to 1,024
///   (CloudWatch's limits), at a character boundary; a series whose tags alone would still
///   make an object over 256 KB is skipped: `too_large`.
/// - Counters: the interval's value, `Count`. Gauges and sets: `None`. Timers: each statistic
///   a metric `<name>.<stat>` (`count` in `Count`; `sum`, `min`, `max`, `mean`, `median`,
///   `stddev` and each `p<N>` in `Milliseconds`); histograms and distributions the same in `None`.
/// - Values that are not finite are left out (JSON has no form for them).
/// - Timestamped counter and gauge samples (`|T`) go in objects of their own, stamped with
///   their time, after the interval's.
enum EMFEncoder {
    static let maxMetrics = 100
    static let maxDimensions = 30
    static let maxNameBytes = 255
    static let maxValueBytes = 1024
    static let maxObjectBytes = 256 * 1024
    /// Room kept in every object for the fixed keys, the timestamp and a metric's value and unit.
    private static let objectOverhead = 160
    private static let metricOverhead = 64
    /// The escaped size of the longest name made of bytes JSON escapes (`\u0001` for each).
    private static let longestEscapedName = JSONWriter.escapedCount(Array(repeating: 1, count: maxNameBytes))

    /// What an encoding left out.
    struct Skipped: Equatable {
        var tooManyDimensions = 0
        var nameConflicts = 0
        var tooLarge = 0

        mutating func add(_ other: Skipped) {
            tooManyDimensions += other.tooManyDimensions
            nameConflicts += other.nameConflicts
            tooLarge += other.tooLarge
        }
    }

    private struct Metric {
        var name: [UInt8]
        var unit: StaticString
        var value: Double
    }

    private struct Group {
        var dimensions: [(key: [UInt8], value: [UInt8])]
        /// The escaped size of the object's dimensions and namespace.
        var baseBytes: Int
        var metrics: [Metric] = []
    }

    /// Appends the batch's objects, each followed by a newline.
    static func encode(_ batch: FlushBatch, namespace: String, into w: inout JSONWriter) -> Skipped {
        var skipped = Skipped()
        var groups: [Group] = []
        /// Each tag set's group (-1: skipped), and the groups of metrics named like one of its tags.
        var groupOf: [[UInt8]: Int] = [:]
        var ownGroupOf: [[UInt8]: Int] = [:]
        let reserved = Array("_aws".utf8)
        let namespaceBytes = JSONWriter.escapedCount(Array(namespace.utf8))

        func makeGroup(_ dimensions: [(key: [UInt8], value: [UInt8])]) -> Int? {
            var base = objectOverhead + namespaceBytes
            for d in dimensions {
                base += 2 * JSONWriter.escapedCount(d.key) + JSONWriter.escapedCount(d.value) + 2
            }
            guard base + metricOverhead + 3 * longestEscapedName <= maxObjectBytes
            else { return nil }
            groups.append(Group(dimensions: dimensions, baseBytes: base))
            return groups.count - 1
        }
        /// The group of the key's tags, or nil when the series is skipped.
        func group(_ key: MetricKey) -> Int? {
            var identity: [UInt8] = []
            var dimensions: [(key: [UInt8], value: [UInt8])] = []
            key.forEachTag { k, v in
                guard !v.isEmpty else { return }
                dimensions.append((cut(Array(k), to: maxNameBytes), cut(Array(v), to: maxValueBytes)))
                identity.append(contentsOf: k)
                identity.append(0)
                identity.append(contentsOf: v)
                identity.append(0)
            }
            guard dimensions.count <= maxDimensions else {
                skipped.tooManyDimensions += 1
                return nil
            }
            if let g = groupOf[identity] {
                if g < 0 { skipped.tooLarge += 1 }
                return g < 0 ? nil : g
            }
            // `_aws` and keys made equal by the cut are renamed, keeping the first as it is.
            guard let renamed = Self.renamed(dimensions, avoiding: []), let g = makeGroup(renamed) else {
                groupOf[identity] = -1
                skipped.tooLarge += 1
                return nil
            }
            groupOf[identity] = g
            return g
        }
        func add(_ g: Int, _ key: MetricKey, _ suffix: String, _ unit: StaticString, _ value: Double) {
            guard value.isFinite else { return }
            var name = key.withName { Array($0) }
            name = cut(name, to: maxNameBytes - suffix.utf8.count)
            name.append(contentsOf: suffix.utf8)
            guard name != reserved else {
                skipped.nameConflicts += 1
                return
            }
            var target = g
            if groups[g].dimensions.contains(where: { $0.key == name }) {
                var own = name
                own.append(0xFF)  // never in a name: a separator no identity byte can fake
                own.append(contentsOf: withUnsafeBytes(of: g) { Array($0) })
                if let o = ownGroupOf[own] {
                    target = o
                } else if let dimensions = Self.renamed(groups[g].dimensions, avoiding: name), let o = makeGroup(dimensions) {
                    ownGroupOf[own] = o
                    target = o
                } else {
                    skipped.tooLarge += 1
                    return
                }
            }
            groups[target].metrics.append(Metric(name: name, unit: unit, value: value))
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
            // name and tags) starts the next object, as do the 100th metric and 256 KB.
            var start = 0
            while start < group.metrics.count {
                var names = Set<[UInt8]>()
                var end = start
                var bytes = group.baseBytes
                while end < group.metrics.count, end - start < maxMetrics {
                    let cost = 2 * JSONWriter.escapedCount(group.metrics[end].name) + metricOverhead
                    guard end == start || bytes + cost <= maxObjectBytes,
                        names.insert(group.metrics[end].name).inserted
                    else { break }
                    bytes += cost
                    end += 1
                }
                object(group.dimensions, group.metrics[start..<end], batch.timestamp, namespace, &w)
                start = end
            }
        }
        // Timestamped samples (`|T`, SPEC section 15): objects of their own, stamped with their
        // time, after the interval's. (Not in a `defer`: what it skips must be in the result.)
        if !batch.points.isEmpty { skipped.add(encodePoints(batch, namespace: namespace, into: &w)) }
        return skipped
    }

    /// The batch's timestamped points, as the interval's series are written (a counter's value in
    /// `Count`, a gauge's in `None`), one set of objects per timestamp, in order of arrival.
    private static func encodePoints(_ batch: FlushBatch, namespace: String, into w: inout JSONWriter) -> Skipped {
        var times: [EpochMillis] = []
        var byTime: [EpochMillis: [TimestampedPoint]] = [:]
        for p in batch.points {
            if byTime[p.timestamp] == nil { times.append(p.timestamp) }
            byTime[p.timestamp, default: []].append(p)
        }
        var skipped = Skipped()
        for t in times {
            let points = byTime[t] ?? []
            let stamped = FlushBatch(
                timestamp: t, interval: batch.interval, percentiles: [],
                counters: points.filter { $0.key.type == .counter }.map { CounterSummary(key: $0.key, value: $0.value, rate: 0) },
                gauges: points.filter { $0.key.type == .gauge }.map { GaugeSummary(key: $0.key, value: $0.value) })
            skipped.add(encode(stamped, namespace: namespace, into: &w))
        }
        return skipped
    }

    /// The dimensions with `tag_` put before each key that is `_aws`, `name`, or the same as
    /// an earlier key, until it is none of these nor another tag's key; `nil` when 64 rounds
    /// (each 4 bytes longer, until the 255-byte cut makes the key all prefix) find none.
    private static func renamed(
        _ dimensions: [(key: [UInt8], value: [UInt8])], avoiding name: [UInt8]
    ) -> [(key: [UInt8], value: [UInt8])]? {
        let reserved = Array("_aws".utf8)
        let prefix = Array("tag_".utf8)
        let original = Set(dimensions.map(\.key))
        var used = Set<[UInt8]>()
        var result: [(key: [UInt8], value: [UInt8])] = []
        for d in dimensions {
            var key = d.key
            var rounds = 0
            while key == reserved || key == name || used.contains(key) || (key != d.key && original.contains(key)) {
                guard rounds < 64 else { return nil }
                key = cut(prefix + key, to: maxNameBytes)
                rounds += 1
            }
            used.insert(key)
            result.append((key, d.value))
        }
        return result
    }

    /// The first `limit` bytes of `bytes` or fewer, ending at a character boundary.
    static func cut(_ bytes: [UInt8], to limit: Int) -> [UInt8] {
        guard bytes.count > limit else { return bytes }
        var end = max(0, limit)
        while end > 0 && bytes[end] & 0xC0 == 0x80 { end -= 1 }  // not inside a UTF-8 sequence
        return Array(bytes[..<end])
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
