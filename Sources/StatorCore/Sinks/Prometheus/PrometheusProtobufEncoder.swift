/// Renders the cumulative state as Prometheus' protobuf exposition (SPEC section 13): one
/// length-delimited `io.prometheus.client.MetricFamily` message per family, in the text
/// page's order, with the same names, labels, HELP and values. A histogram carries its
/// classic buckets and, when the series keeps one, its native histogram in the same message:
/// Prometheus ingests the native one, or the classic one where native histograms are off or
/// it is told to keep both.
///
/// Field numbers are those of `prompb/io/prometheus/client/metrics.proto` in Prometheus
/// (client_model's `metrics.proto`): MetricFamily {name 1, help 2, type 3, metric 4},
/// Metric {label 1, gauge 2, counter 3, summary 4, histogram 7}, and so on below.
enum PrometheusProtobufEncoder {
    /// `MetricType`.
    enum MetricType: UInt64 {
        case counter = 0, gauge = 1, summary = 2, untyped = 3, histogram = 4
    }

    /// Renders every family, handing the bytes to `sink` in chunks of about `chunk` bytes
    /// (whole messages).
    static func render(_ state: CumulativeState, chunk: Int = 1 << 20, _ sink: (_ bytes: [UInt8]) -> Void) {
        state.withState { s in
            var writers = Writers()
            var out: [UInt8] = []
            out.reserveCapacity(chunk + 4096)
            var f = s.firstFamily
            while f >= 0 {
                render(s, Int(f), prefix: state.prefix, &writers)
                Varint.append(UInt64(writers.family.bytes.count), to: &out)
                out.append(contentsOf: writers.family.bytes)
                if out.count >= chunk {
                    sink(out)
                    out.removeAll(keepingCapacity: true)
                }
                f = s.families[Int(f)].next
            }
            if !out.isEmpty { sink(out) }
        }
    }

    /// Renders every family into one buffer (tests, small pages).
    static func render(_ state: CumulativeState) -> [UInt8] {
        var all: [UInt8] = []
        render(state) { all.append(contentsOf: $0) }
        return all
    }

    /// The buffers one family is written with, one per level of nesting (kept across families,
    /// so that a page allocates them once).
    struct Writers {
        /// The `MetricFamily` being written.
        var family = ProtobufWriter()
        /// A `Metric`.
        var metric = ProtobufWriter()
        /// A `Metric`'s value (`Counter`, `Gauge`, `Summary`, `Histogram`) or a `LabelPair`.
        var value = ProtobufWriter()
        /// A `Bucket`, `BucketSpan` or `Quantile`.
        var leaf = ProtobufWriter()
        var name: [UInt8] = []
        var labelValue: [UInt8] = []
    }

    private static func render(_ s: borrowing CumulativeState.State, _ f: Int, prefix: [UInt8], _ w: inout Writers) {
        let family = s.families[f]
        family.source.withName {
            PrometheusNaming.appendFamilyName(
                prefix: prefix, statsdName: $0, type: family.source.type, mapped: family.source.isMapped, to: &w.name)
        }
        var help: [UInt8]
        if let mapped = PrometheusTextEncoder.mappingHelp(family.source, s) {
            help = Array(mapped.utf8)
        } else {
            help = Array("statsd \(family.source.type) ".utf8)
            family.source.withName { help.append(contentsOf: $0) }
        }
        let type: MetricType =
            switch family.type {
            case .counter: .counter
            case .gauge: .gauge
            case .histogram: .histogram
            case .summary: .summary
            }
        let bounds = s.bounds(of: family)?.upperBounds ?? []
        var family_ = w.family
        var metric = w.metric
        var value = w.value
        var leaf = w.leaf
        var labelValue = w.labelValue
        defer {
            w.family = family_
            w.metric = metric
            w.value = value
            w.leaf = leaf
            w.labelValue = labelValue
        }
        family_.removeAll()
        family_.bytesField(1, w.name)
        appendString(2, help, &family_)
        family_.varintField(3, type.rawValue)
        var i = family.firstSeries
        while i >= 0 {
            let series = s.series[Int(i)]
            family_.message(4, scratch: &metric) { m in
                appendLabels(series.labels, &m, &value, &labelValue)
                switch family.type {
                case .counter:
                    m.message(3, scratch: &value) { $0.doubleField(1, series.reads(at: s.flushNumber)) }
                case .gauge:
                    m.message(2, scratch: &value) { $0.doubleField(1, series.reads(at: s.flushNumber)) }
                case .histogram:
                    let h = s.histograms[Int(series.histogram)]
                    m.message(7, scratch: &value) { appendHistogram(h, bounds: bounds, &$0, &leaf) }
                case .summary:
                    let h = s.histograms[Int(series.histogram)]
                    let current = series.setAt == UInt32(truncatingIfNeeded: s.flushNumber)
                    m.message(4, scratch: &value) { appendSummary(h, quantiles: current, &$0, &leaf) }
                }
            }
            i = series.next
        }
    }

    /// A `Histogram`: classic buckets, and the native histogram when the series keeps one.
    ///
    /// Counts are rate-weighted, so they need not be whole. When every count of the message
    /// is whole (and fits), the integer fields carry them (`sample_count`,
    /// `cumulative_count`, `zero_count`, and bucket deltas): Prometheus stores an integer
    /// histogram, as it would from a client library. Otherwise every count goes in the float
    /// fields (`sample_count_float`, `cumulative_count_float`, `zero_count_float`, absolute
    /// bucket counts), which is what makes Prometheus read the message as a float histogram;
    /// a mix would make it read zero for the counts left in the integer fields. The classic
    /// counts then also go, rounded, in their integer fields, which the float ones override
    /// (metrics.proto): Prometheus 2.42 (Debian 12's) reads a classic histogram's integer fields
    /// only, and would read zero for every `_count` and `_bucket` made fractional by a rate.
    static func appendHistogram(
        _ h: CumulativeState.Histogram, bounds: [Double], _ w: inout ProtobufWriter, _ leaf: inout ProtobufWriter
    ) {
        let native = h.native?.bucketed
        var whole = ProtobufWriter.isWholeCount(h.count) && h.buckets.allSatisfy(ProtobufWriter.isWholeCount)
        if let native, whole {
            whole =
                ProtobufWriter.isWholeCount(native.zeroCount)
                && native.positive.weights.allSatisfy(ProtobufWriter.isWholeCount)
                && native.negative.weights.allSatisfy(ProtobufWriter.isWholeCount)
        }
        // Histogram {sample_count 1, sample_count_float 4, sample_sum 2, bucket 3}
        if whole {
            w.varintField(1, UInt64(h.count))
        } else {
            w.varintField(1, roundedCount(h.count))
            w.doubleField(4, h.count)
        }
        w.doubleField(2, h.sum)
        // The classic buckets, cumulative; +Inf is left out (it is `sample_count`), as
        // client_golang leaves it out. Bucket {cumulative_count 1, cumulative_count_float 4, upper_bound 2}
        var cumulative = 0.0
        for (b, bound) in bounds.enumerated() {
            cumulative += b < h.buckets.count ? h.buckets[b] : 0
            w.message(3, scratch: &leaf) { bucket in
                if whole {
                    bucket.varintField(1, UInt64(cumulative))
                } else {
                    bucket.varintField(1, roundedCount(cumulative))
                    bucket.doubleField(4, cumulative)
                }
                bucket.doubleField(2, bound)
            }
        }
        guard let native else { return }
        // schema 5 (sint32), zero_threshold 6, zero_count 7, zero_count_float 8
        w.sintField(5, Int64(native.schema))
        w.doubleField(6, native.zeroThreshold)
        if whole { w.varintField(7, UInt64(native.zeroCount)) } else { w.doubleField(8, native.zeroCount) }
        // negative_span 9, negative_delta 10, negative_count 11; positive_span 12, positive_delta 13, positive_count 14
        w.nativeBuckets(native.negative, spansField: 9, whole: whole)
        let positive = w.nativeBuckets(native.positive, spansField: 12, whole: whole)
        if positive == 0, native.negative.populated == 0, native.zeroThreshold == 0 {
            // Without a bucket or a zero threshold the message would read as a classic
            // histogram: a no-op span marks it native (metrics.proto says so).
            w.message(12, scratch: &leaf) { span in
                span.sintField(1, 0)
                span.varintField(2, 0)
            }
        }
    }

    /// A `Summary` {sample_count 1, sample_sum 2, quantile 3 {quantile 1, value 2}}: the last
    /// interval's quantiles, none after an interval without samples (as on the text page).
    /// `sample_count` has no float form: a count made fractional by sample rates is rounded.
    private static func appendSummary(
        _ h: CumulativeState.Histogram, quantiles: Bool, _ w: inout ProtobufWriter, _ leaf: inout ProtobufWriter
    ) {
        w.varintField(1, roundedCount(h.count))
        w.doubleField(2, h.sum)
        guard quantiles else { return }
        for (k, q) in h.quantiles.enumerated() where k < h.buckets.count {
            w.message(3, scratch: &leaf) { out in
                out.doubleField(1, q)
                out.doubleField(2, h.buckets[k])
            }
        }
    }

    /// A count for an integer field: rounded, at most `Int64.max`, 0 for a negative or NaN one.
    static func roundedCount(_ x: Double) -> UInt64 {
        let count = x.rounded()
        return count >= 0x1p63 ? UInt64(Int64.max) : count > 0 ? UInt64(count) : 0
    }

    /// Every label of a series as a `LabelPair` {name 1, value 2}: the rendered labels read
    /// back, values unescaped.
    static func appendLabels(
        _ labels: PrometheusNaming.Labels, _ m: inout ProtobufWriter, _ pair: inout ProtobufWriter,
        _ value: inout [UInt8]
    ) {
        guard !labels.isEmpty else { return }
        appendLabels(text: labels.before, &m, &pair, &value)
        appendLabels(text: labels.after, &m, &pair, &value)
    }

    /// The `LabelPair`s of label text as the text page writes it: `a="1",b="x\"y"` (a leading
    /// comma is skipped).
    static func appendLabels(
        text: ArraySlice<UInt8>, _ m: inout ProtobufWriter, _ pair: inout ProtobufWriter, _ value: inout [UInt8]
    ) {
        var i = text.startIndex
        while i < text.endIndex {
            if text[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            let nameStart = i
            while i < text.endIndex, text[i] != UInt8(ascii: "=") { i += 1 }
            let name = text[nameStart..<i]
            i += 2  // `="`
            value.removeAll(keepingCapacity: true)
            i = PrometheusNaming.unescape(text, from: i, upTo: UInt8(ascii: "\""), into: &value)
            i += 1  // the closing quote
            m.message(1, scratch: &pair) { out in
                name.withUnsafeBytes { out.bytesField(1, $0) }
                appendString(2, value, &out)
            }
        }
    }

    /// A `string` field: the bytes as they are when they are UTF-8 (always, for ASCII), else
    /// with each invalid sequence replaced by U+FFFD, since a protobuf string must be UTF-8 and
    /// statsd names and tags are bytes.
    static func appendString(_ field: UInt32, _ bytes: [UInt8], _ out: inout ProtobufWriter) {
        if bytes.allSatisfy({ $0 < 0x80 }) {
            out.bytesField(field, bytes)
        } else {
            out.bytesField(field, Array(String(decoding: bytes, as: UTF8.self).utf8))
        }
    }
}
