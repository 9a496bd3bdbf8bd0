/// Writes a batch as Graphite plaintext lines (`path value timestamp`), named as etsy
/// statsd's graphite backend names them with `legacyNamespace: false`:
///
/// ```
/// stats.counters.api.requests.count;env=prod 120 1764961210
/// stats.counters.api.requests.rate;env=prod 12 1764961210
/// stats.gauges.queue.depth 7 1764961210
/// stats.sets.users.count 3 1764961210
/// stats.timers.api.latency.upper_90 80 1764961210
/// ```
///
/// - Paths are sanitized as etsy statsd sanitizes names, whitespace becoming `_` and `/`
///   becoming `-`, except that a byte outside `[a-zA-Z0-9_.-]` is escaped as `%XX` (its
///   value in hex) where etsy drops it: `café` is `caf%C3%A9` and `a*b` is `a%2Ab`, so names
///   etsy would merge (every name of non-ASCII letters became `stats.counters..count`) stay
///   distinct, and Graphite's glob characters never reach a path.
/// - Tags (`tags: graphite`) follow the path as `;k=v`, in key order; Graphite's reserved
///   bytes in them (`;` `~` `!` `^` `=` and whitespace) become `_`, and a tag with an empty
///   key or value is left out. A tag named `name` (Graphite's own tag for the path, which it
///   would replace) is written `tag_name` (`tag_tag_name` when that is taken too, and so on).
///   `tags: none` leaves every tag out.
/// - Timers, histograms and distributions are all `stats.timers`: `count` (rate-weighted)
///   and `count_ps`; `sum`, `sum_squares`, `mean`, `median`, `upper`, `lower` and `std` of
///   the values; and for each percentile N (`99.9` is written `99_9`) `count_N`, `sum_N`,
///   `sum_squares_N`, `mean_N` and `upper_N` over the lowest N% of the values, etsy's
///   rounding. Beyond `max_samples_per_series` the _N statistics and the median come from
///   the uniform reservoir.
/// - A timestamped counter or gauge sample (`|T`, SPEC section 15) is one line at its own
///   time: a counter's `.count` (no `.rate`), a gauge's value.
/// - Values that are not finite are left out.
enum GraphiteEncoder {
    /// - Parameter prefix: put before `stats.` (with a dot), unless empty.
    static func encode(_ batch: FlushBatch, prefix: String, tags: GraphiteConfiguration.Tags) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(batch.seriesCount * 96)
        var stamp: [UInt8] = [UInt8(ascii: " ")]
        JSONWriter.appendInteger(batch.timestamp.floorDiv(1000), to: &stamp)
        stamp.append(UInt8(ascii: "\n"))
        var head = Array(prefix.utf8)
        if !head.isEmpty { head.append(UInt8(ascii: ".")) }
        head += Array("stats.".utf8)
        let interval = batch.interval > 0 ? batch.interval : 1
        var tagText: [UInt8] = []
        var path: [UInt8] = []

        /// Sets `path` to `<head><kind>.<name>` and `tagText` to the key's tags.
        func begin(_ kind: StaticString, _ key: MetricKey) {
            path = head
            path.append(contentsOf: UnsafeRawBufferPointer(start: kind.utf8Start, count: kind.utf8CodeUnitCount))
            key.withName { sanitize($0, into: &path) }
            tagText.removeAll(keepingCapacity: true)
            guard tags == .graphite else { return }
            let nameTag = renamedNameTag(key)
            key.forEachTag { k, v in
                guard !k.isEmpty, !v.isEmpty else { return }
                tagText.append(UInt8(ascii: ";"))
                if let nameTag, k.elementsEqual(reservedTag) {
                    tagText.append(contentsOf: nameTag)
                } else {
                    tag(k, into: &tagText)
                }
                tagText.append(UInt8(ascii: "="))
                tag(v, into: &tagText)
            }
        }
        /// Writes one line: `path` + `suffix` + tags, the value, the time (the flush's, or a
        /// point's own: `at`).
        func line(_ suffix: [UInt8], _ value: Double, at pointTime: EpochMillis? = nil) {
            guard value.isFinite else { return }
            out.append(contentsOf: path)
            out.append(contentsOf: suffix)
            out.append(contentsOf: tagText)
            out.append(UInt8(ascii: " "))
            PrometheusNumber.append(value, to: &out)
            if let pointTime {
                out.append(UInt8(ascii: " "))
                JSONWriter.appendInteger(pointTime.floorDiv(1000), to: &out)
                out.append(UInt8(ascii: "\n"))
            } else {
                out.append(contentsOf: stamp)
            }
        }

        func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
        let (count, rate, countPS) = (bytes(".count"), bytes(".rate"), bytes(".count_ps"))
        for c in batch.counters {
            begin("counters.", c.key)
            line(count, c.value)
            line(rate, c.value / interval)
        }
        for g in batch.gauges {
            begin("gauges.", g.key)
            line([], g.value)
        }
        // Timestamped samples (`|T`): a counter's `count` and a gauge's value, at their time.
        for p in batch.points {
            begin(p.key.type == .counter ? "counters." : "gauges.", p.key)
            line(p.key.type == .counter ? count : [], p.value, at: p.timestamp)
        }
        for s in batch.sets {
            begin("sets.", s.key)
            line(count, s.value)
        }
        // Per percentile N (`99.9` written `99_9`): count_N, mean_N, upper_N, sum_N, sum_squares_N.
        let percentileSuffixes = batch.percentiles.map { p in
            let label = String(p.label.map { $0 == "." ? "_" : $0 })
            return ["count", "mean", "upper", "sum", "sum_squares"].map { bytes(".\($0)_\(label)") }
        }
        let statSuffixes = [".std", ".upper", ".lower", ".sum", ".sum_squares", ".mean", ".median"].map(bytes)
        var cumulative: [Double] = []
        var cumulativeSquares: [Double] = []
        for t in batch.samples {
            begin("timers.", t.key)
            let values = t.sortedValues
            let n = values.count
            if n > 0 {
                // The lowest N% (etsy: round(N / 100 * count) values; all of them for one value).
                cumulative.removeAll(keepingCapacity: true)
                cumulativeSquares.removeAll(keepingCapacity: true)
                var sum = 0.0
                var squares = 0.0
                for v in values {
                    sum += v
                    squares += v * v
                    cumulative.append(sum)
                    cumulativeSquares.append(squares)
                }
                for (p, suffixes) in zip(batch.percentiles, percentileSuffixes) {
                    let inThreshold = n > 1 ? Int((p.value / 100 * Double(n)).rounded(.toNearestOrAwayFromZero)) : n
                    guard inThreshold > 0 else { continue }
                    line(suffixes[0], Double(inThreshold))
                    line(suffixes[1], cumulative[inThreshold - 1] / Double(inThreshold))
                    line(suffixes[2], values[inThreshold - 1])
                    line(suffixes[3], cumulative[inThreshold - 1])
                    line(suffixes[4], cumulativeSquares[inThreshold - 1])
                }
                let complete = n == t.samples
                let mid = n / 2
                line(statSuffixes[0], t.stddev)
                line(statSuffixes[1], t.max)
                line(statSuffixes[2], t.min)
                line(count, t.count)
                line(countPS, t.count / interval)
                line(statSuffixes[3], t.sum)
                line(statSuffixes[4], complete ? squares : Double(t.samples) * (t.stddev * t.stddev + t.mean * t.mean))
                line(statSuffixes[5], t.mean)
                line(statSuffixes[6], n % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2)
            } else {
                line(count, 0)
                line(countPS, 0)
            }
        }
        return out
    }

    /// Graphite's tag for the metric's path: a tag of this name would replace it.
    private static let reservedTag = Array("name".utf8)

    /// What a tag named `name` is written as, when the key has one: `tag_name`, with more
    /// `tag_` prefixes while another tag of the key has that name.
    private static func renamedNameTag(_ key: MetricKey) -> [UInt8]? {
        // Almost every series has no such tag: find that out without copying a key.
        var found = false
        key.forEachTag { k, v in if !v.isEmpty, k.elementsEqual(reservedTag) { found = true } }
        guard found else { return nil }
        var keys: Set<[UInt8]> = []
        key.forEachTag { k, v in
            guard !v.isEmpty else { return }
            var written: [UInt8] = []
            tag(k, into: &written)
            keys.insert(written)
        }
        var renamed = reservedTag
        repeat { renamed = Array("tag_".utf8) + renamed } while keys.contains(renamed)  // at most 33 rounds: 32 tags
        return renamed
    }

    /// etsy statsd's name rule, whitespace -> `_` and `/` -> `-`, but a byte outside
    /// `[a-zA-Z0-9_.-]` escaped as `%XX` where etsy drops it (`%` itself is `%25`), so that
    /// distinct names stay distinct.
    static func sanitize(_ name: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        for b in name {
            switch b {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"), 0x0B, 0x0C:
                out.append(UInt8(ascii: "_"))
            case UInt8(ascii: "/"):
                out.append(UInt8(ascii: "-"))
            case _ where GraphiteConfiguration.isPathByte(b):
                out.append(b)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(Hex.digit(b >> 4, uppercase: true))
                out.append(Hex.digit(b & 0xF, uppercase: true))
            }
        }
    }

    /// A tag key or value with Graphite's reserved bytes and whitespace replaced by `_`.
    static func tag(_ text: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        for b in text {
            switch b {
            case UInt8(ascii: ";"), UInt8(ascii: "~"), UInt8(ascii: "!"), UInt8(ascii: "^"), UInt8(ascii: "="),
                UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                out.append(UInt8(ascii: "_"))
            default:
                out.append(b)
            }
        }
    }
}
