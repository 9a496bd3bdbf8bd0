/// Encodes the cumulative state as Prometheus remote write 1.0 `WriteRequest`s (protobuf,
/// written by hand), each with at most `batchSize` time series, snappy-compressed.
///
/// ```
/// message WriteRequest { repeated TimeSeries timeseries = 1; }
/// message TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; repeated Histogram histograms = 4; }
/// message Label        { string name = 1; string value = 2; }
/// message Sample       { double value = 1; int64 timestamp = 2; }
/// ```
///
/// A histogram series that keeps a native histogram (SPEC section 13) goes out twice: as the
/// classic `_bucket`/`_sum`/`_count` series, and as one more series under the family's name
/// (no suffix, the same labels) carrying a `Histogram` (`RemoteWriteEncoder+Native.swift`).
///
/// A timestamped gauge sample (`|T`, SPEC section 15) is one more sample of its series at its
/// own time; a timestamped counter sample is in the counter's total.
///
/// Each time series is written straight into its request's buffer: its labels are gathered
/// into one reused scratch buffer, sorted in byte order as the remote-write spec requires,
/// and measured first, so the message needs no buffer of its own.
public enum RemoteWriteEncoder {
    /// Every series on the Prometheus page (histograms as `_bucket`/`_sum`/`_count`
    /// series, and their native histograms), as of the last applied batch.
    /// - Parameter labels: a push's `external_labels`, added to every series without a label of that name.
    /// - Returns: the requests, and the batch sequence they reflect.
    static func requests(
        from state: CumulativeState, labels external: PushEncoders.ExternalLabels = .none, batchSize: Int
    ) -> (requests: [PushRequest], timestamp: EpochMillis, sequence: UInt64) {
        state.withState { s in
            var writer = Writer(timestamp: s.appliedTimestamp, batchSize: batchSize)
            var labels = LabelSet()
            var name: [UInt8] = []
            var f = s.firstFamily
            while f >= 0 {
                let family = s.families[Int(f)]
                state.writeFamilyName(of: family.source, into: &name)
                let bounds = s.bounds(of: family)?.upperBounds ?? []
                let leTexts = bounds.map { Array(PrometheusNumber.format($0).utf8) } + [Array("+Inf".utf8)]
                var i = family.firstSeries
                while i >= 0 {
                    let series = s.series[Int(i)]
                    labels.removeAll()
                    labels.appendRendered(series.labels)
                    for pair in external.pairs where !labels.contains(name: pair.name) {
                        labels.append(name: pair.name, value: pair.value)
                    }
                    switch family.type {
                    case .counter, .gauge:
                        writer.add(&labels, name: name, suffix: [], value: series.reads(at: s.flushNumber))
                    case .histogram:
                        let h = s.histograms[Int(series.histogram)]
                        var cumulative = 0.0
                        for b in 0...bounds.count {
                            cumulative += b < h.buckets.count ? h.buckets[b] : 0
                            writer.add(
                                &labels, name: name, suffix: Self.bucket, extra: (Self.le, leTexts[b]),
                                value: b == bounds.count ? h.count : cumulative)
                        }
                        writer.add(&labels, name: name, suffix: Self.sum, value: h.sum)
                        writer.add(&labels, name: name, suffix: Self.count, value: h.count)
                        if let native = h.native { writer.add(&labels, name: name, native: native.bucketed) }
                    case .summary:
                        let h = s.histograms[Int(series.histogram)]
                        if series.setAt == UInt32(truncatingIfNeeded: s.flushNumber) {
                            for (k, q) in h.quantiles.enumerated() where k < h.buckets.count {
                                writer.add(
                                    &labels, name: name, suffix: [],
                                    extra: (Self.quantile, Array(PrometheusNumber.format(q).utf8)),
                                    value: h.buckets[k])
                            }
                        }
                        writer.add(&labels, name: name, suffix: Self.sum, value: h.sum)
                        writer.add(&labels, name: name, suffix: Self.count, value: h.count)
                    }
                    i = series.next
                }
                f = family.next
            }
            writer.finishRequest()
            return (writer.requests, s.appliedTimestamp, s.appliedSequence)
        }
    }

    /// Timestamped gauge samples (`|T`, SPEC section 15): each a sample at its own time, under
    /// the name and labels `/metrics` gives the gauge (a counter's samples are in its total).
    /// - Returns: the requests, and how many points were left out for being after `newest`.
    static func gaugePointRequests(
        _ points: [TimestampedPoint], naming state: CumulativeState, labels external: PushEncoders.ExternalLabels,
        batchSize: Int, notAfter newest: EpochMillis = .max
    ) -> (requests: [PushRequest], future: Int) {
        var writer = Writer(timestamp: 0, batchSize: batchSize)
        var labels = LabelSet()
        var future = 0
        for p in points where p.key.type == .gauge {
            // A point after the flush's time would make the gauge's own next samples out of
            // order until then: a receiver that refuses those (Prometheus) refuses whole requests.
            guard p.timestamp <= newest else {
                future += 1
                continue
            }
            labels.removeAll()
            labels.appendRendered(PrometheusNaming.labels(of: p.key, reserving: nil))
            for pair in external.pairs where !labels.contains(name: pair.name) {
                labels.append(name: pair.name, value: pair.value)
            }
            writer.add(&labels, name: state.familyName(of: p.key), suffix: [], value: p.value, at: p.timestamp)
        }
        writer.finishRequest()
        return (writer.requests, future)
    }

    private static let bucket = Array("_bucket".utf8)
    private static let sum = Array("_sum".utf8)
    private static let count = Array("_count".utf8)
    private static let le = Array("le".utf8)
    private static let quantile = Array("quantile".utf8)
    private static let nameLabel = Array("__name__".utf8)

    /// Label pairs of one series: their bytes in one buffer, reused from series to series.
    struct LabelSet {
        private(set) var bytes: [UInt8] = []
        private(set) var pairs: [(name: Range<Int>, value: Range<Int>)] = []

        mutating func removeAll() {
            bytes.removeAll(keepingCapacity: true)
            pairs.removeAll(keepingCapacity: true)
        }

        mutating func append(name: some Collection<UInt8>, value: some Collection<UInt8>, suffix: [UInt8] = []) {
            let n = bytes.count
            bytes.append(contentsOf: name)
            let v = bytes.count
            bytes.append(contentsOf: value)
            bytes.append(contentsOf: suffix)
            pairs.append((n..<v, v..<bytes.count))
        }

        /// Drops the pairs and bytes added after `pairs`/`bytes` counts of `mark`.
        mutating func truncate(to mark: (pairs: Int, bytes: Int)) {
            pairs.removeSubrange(mark.pairs...)
            bytes.removeSubrange(mark.bytes...)
        }

        var mark: (pairs: Int, bytes: Int) { (pairs.count, bytes.count) }

        func contains(name: [UInt8]) -> Bool { pairs.contains { bytes[$0.name].elementsEqual(name) } }

        /// Adds rendered, escaped labels (`a="x",b="y\"z"`, as `/metrics` shows them) as raw pairs.
        mutating func appendRendered(_ labels: PrometheusNaming.Labels) {
            appendRendered(labels.before)
            if !labels.after.isEmpty { appendRendered(labels.after.dropFirst()) }
        }

        private mutating func appendRendered(_ text: ArraySlice<UInt8>) {
            var i = text.startIndex
            while i < text.endIndex {
                let nameStart = bytes.count
                while i < text.endIndex, text[i] != UInt8(ascii: "=") {
                    bytes.append(text[i])
                    i += 1
                }
                let valueStart = bytes.count
                i += 2  // `="`
                i = PrometheusNaming.unescape(text, from: i, upTo: UInt8(ascii: "\""), into: &bytes)
                i += 2  // `",`
                pairs.append((nameStart..<valueStart, valueStart..<bytes.count))
            }
        }

        /// The pairs' indices in byte order of their names.
        func sortedOrder(into order: inout [Int]) {
            order.removeAll(keepingCapacity: true)
            for k in pairs.indices {
                // Insertion: a series has a handful of labels.
                var at = order.count
                while at > 0, bytes[pairs[k].name].lexicographicallyPrecedes(bytes[pairs[order[at - 1]].name]) { at -= 1 }
                order.insert(k, at: at)
            }
        }
    }

    /// Writes time series into request bodies of at most `batchSize` series each.
    struct Writer {
        let timestamp: EpochMillis
        let batchSize: Int
        private(set) var requests: [PushRequest] = []
        private var body = ProtobufWriter()
        private var histogram = ProtobufWriter()
        private var count = 0
        private var order: [Int] = []

        init(timestamp: EpochMillis, batchSize: Int) {
            self.timestamp = timestamp
            self.batchSize = batchSize
        }

        /// One time series: `labels`, plus `__name__` (`name` + `suffix`) and `extra`, sorted.
        mutating func add(
            _ labels: inout LabelSet, name: [UInt8], suffix: [UInt8], extra: ([UInt8], [UInt8])? = nil, value: Double,
            at sampleTime: EpochMillis? = nil
        ) {
            let mark = labels.mark
            labels.append(name: nameLabel, value: name, suffix: suffix)
            if let extra { labels.append(name: extra.0, value: extra.1) }
            labels.sortedOrder(into: &order)
            RemoteWriteEncoder.appendTimeSeries(
                labels, order: order, value: value, timestamp: sampleTime ?? timestamp, to: &body)
            labels.truncate(to: mark)
            seriesAdded()
        }

        /// One time series of a native histogram (seconds for timers): `labels`, plus
        /// `__name__` (`name`, no suffix), sorted.
        mutating func add(_ labels: inout LabelSet, name: [UInt8], native: ExponentialHistogram) {
            let mark = labels.mark
            labels.append(name: nameLabel, value: name)
            labels.sortedOrder(into: &order)
            histogram.removeAll()
            RemoteWriteEncoder.appendNativeHistogram(native, timestamp: timestamp, to: &histogram)
            RemoteWriteEncoder.appendTimeSeries(labels, order: order, histogram: histogram, to: &body)
            labels.truncate(to: mark)
            seriesAdded()
        }

        /// Counts a series into the request, closing it at `batchSize`.
        private mutating func seriesAdded() {
            count += 1
            if count == batchSize { finishRequest() }
        }

        mutating func finishRequest() {
            guard count > 0 else { return }
            requests.append(PushRequest(format: .remoteWrite, body: Snappy.compress(body.bytes), series: count))
            body.removeAll()
            count = 0
        }
    }

    /// Appends one `TimeSeries` (field 1 of `WriteRequest`) with the labels in `order`.
    static func appendTimeSeries(
        _ labels: LabelSet, order: [Int], value: Double, timestamp: EpochMillis, to out: inout ProtobufWriter
    ) {
        let sampleSize = 9 + 1 + ProtobufWriter.varintSize(UInt64(bitPattern: timestamp))
        let size = labelsSize(labels, order: order) + 1 + ProtobufWriter.varintSize(sampleSize) + sampleSize
        out.key(1, 2)
        out.varint(UInt64(size))
        appendLabels(labels, order: order, to: &out)
        out.key(2, 2)
        out.varint(UInt64(sampleSize))
        out.doubleField(1, value)
        out.varintField(2, UInt64(bitPattern: timestamp))
    }

    /// Appends one `TimeSeries` with the labels in `order` and one encoded `Histogram`.
    static func appendTimeSeries(
        _ labels: LabelSet, order: [Int], histogram: ProtobufWriter, to out: inout ProtobufWriter
    ) {
        let h = histogram.bytes.count
        out.key(1, 2)
        out.varint(UInt64(labelsSize(labels, order: order) + 1 + ProtobufWriter.varintSize(h) + h))
        appendLabels(labels, order: order, to: &out)
        out.message(4, histogram)
    }

    /// The bytes of one `Label` message, without its key and length.
    private static func labelSize(_ labels: LabelSet, _ k: Int) -> Int {
        let (n, v) = (labels.pairs[k].name.count, labels.pairs[k].value.count)
        return 1 + ProtobufWriter.varintSize(n) + n + 1 + ProtobufWriter.varintSize(v) + v
    }

    /// The bytes the labels in `order` take as fields 1 of a `TimeSeries`.
    private static func labelsSize(_ labels: LabelSet, order: [Int]) -> Int {
        var size = 0
        for k in order {
            let l = labelSize(labels, k)
            size += 1 + ProtobufWriter.varintSize(l) + l
        }
        return size
    }

    private static func appendLabels(_ labels: LabelSet, order: [Int], to out: inout ProtobufWriter) {
        labels.bytes.withUnsafeBytes { raw in
            for k in order {
                out.key(1, 2)
                out.varint(UInt64(labelSize(labels, k)))
                out.bytesField(1, UnsafeRawBufferPointer(rebasing: raw[labels.pairs[k].name]))
                out.bytesField(2, UnsafeRawBufferPointer(rebasing: raw[labels.pairs[k].value]))
            }
        }
    }

    /// Turns rendered, escaped labels (`a="x",b="y\"z"`) back into raw name/value pairs.
    static func parseLabels(_ labels: PrometheusNaming.Labels) -> [(name: [UInt8], value: [UInt8])] {
        var set = LabelSet()
        set.appendRendered(labels)
        return set.pairs.map { (Array(set.bytes[$0.name]), Array(set.bytes[$0.value])) }
    }
}
