/// Encodes the cumulative state as Prometheus remote write 1.0 `WriteRequest`s
/// (protobuf, written by hand), each with at most `batchSize` time series.
///
/// ```
/// message WriteRequest { repeated TimeSeries timeseries = 1; }
/// message TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
/// message Label        { string name = 1; string value = 2; }
/// message Sample       { double value = 1; int64 timestamp = 2; }
/// ```
public enum RemoteWriteEncoder {
    /// One time series to send.
    public struct Series: Equatable, Sendable {
        /// Label pairs sorted by name in byte order (so `__name__` comes before lowercase names).
        public var labels: [(name: [UInt8], value: [UInt8])]
        public var value: Double

        public init(labels: [(name: [UInt8], value: [UInt8])], value: Double) {
            self.labels = labels
            self.value = value
        }

        public static func == (a: Series, b: Series) -> Bool {
            a.value.bitPattern == b.value.bitPattern && a.labels.count == b.labels.count
                && zip(a.labels, b.labels).allSatisfy { $0.name == $1.name && $0.value == $1.value }
        }
    }

    /// Every series on the Prometheus page (histograms as `_bucket`/`_sum`/`_count`
    /// series), as of the last applied batch.
    /// - Parameter labels: a push's `external_labels`, added to every series without a label of that name.
    /// - Returns: the series, the flush time to stamp them with, and the batch sequence they reflect.
    static func series(from state: CumulativeState, labels external: PushEncoders.ExternalLabels = .none) -> (
        series: [Series], timestamp: EpochMillis, sequence: UInt64
    ) {
        func sorted(_ labels: [(name: [UInt8], value: [UInt8])], name: [UInt8]) -> [(name: [UInt8], value: [UInt8])] {
            var all = labels
            for pair in external.pairs where !labels.contains(where: { $0.name == pair.name }) { all.append(pair) }
            all.append((Array("__name__".utf8), name))
            return all.sorted { $0.name.lexicographicallyPrecedes($1.name) }
        }
        return state.withState { s in
            var out: [Series] = []
            var f = s.firstFamily
            while f >= 0 {
                let family = s.families[Int(f)]
                let name = state.familyName(of: family.source)
                let bounds = s.bounds(of: family)?.upperBounds ?? []
                var i = family.firstSeries
                while i >= 0 {
                    let series = s.series[Int(i)]
                    let labels = parseLabels(series.labels)
                    switch family.type {
                    case .counter, .gauge:
                        let value = series.reads(at: s.flushNumber)
                        out.append(Series(labels: sorted(labels, name: name), value: value))
                    case .histogram:
                        let h = s.histograms[Int(series.histogram)]
                        var cumulative = 0.0
                        for b in 0...bounds.count {
                            cumulative += b < h.buckets.count ? h.buckets[b] : 0
                            let le = b == bounds.count ? "+Inf" : PrometheusNumber.format(bounds[b])
                            out.append(
                                Series(
                                    labels: sorted(
                                        labels + [(Array("le".utf8), Array(le.utf8))], name: name + Array("_bucket".utf8)),
                                    value: b == bounds.count ? h.count : cumulative))
                        }
                        out.append(Series(labels: sorted(labels, name: name + Array("_sum".utf8)), value: h.sum))
                        out.append(Series(labels: sorted(labels, name: name + Array("_count".utf8)), value: h.count))
                    case .summary:
                        let h = s.histograms[Int(series.histogram)]
                        if series.setAt == UInt32(truncatingIfNeeded: s.flushNumber) {
                            for (k, q) in h.quantiles.enumerated() where k < h.buckets.count {
                                let quantile = (Array("quantile".utf8), Array(PrometheusNumber.format(q).utf8))
                                out.append(Series(labels: sorted(labels + [quantile], name: name), value: h.buckets[k]))
                            }
                        }
                        out.append(Series(labels: sorted(labels, name: name + Array("_sum".utf8)), value: h.sum))
                        out.append(Series(labels: sorted(labels, name: name + Array("_count".utf8)), value: h.count))
                    }
                    i = series.next
                }
                f = family.next
            }
            return (out, s.appliedTimestamp, s.appliedSequence)
        }
    }

    /// Turns rendered, escaped labels (`a="x",b="y\"z"`) back into raw name/value pairs.
    static func parseLabels(_ labels: PrometheusNaming.Labels) -> [(name: [UInt8], value: [UInt8])] {
        var text = Array(labels.before)
        if !labels.after.isEmpty {
            if !text.isEmpty { text.append(0x2C) }
            text.append(contentsOf: labels.after.dropFirst())
        }
        var pairs: [(name: [UInt8], value: [UInt8])] = []
        var i = 0
        while i < text.count {
            var name: [UInt8] = []
            while i < text.count, text[i] != UInt8(ascii: "=") {
                name.append(text[i])
                i += 1
            }
            i += 2  // `="`
            var value: [UInt8] = []
            while i < text.count, text[i] != 0x22 {
                if text[i] == 0x5C, i + 1 < text.count {
                    i += 1
                    value.append(text[i] == UInt8(ascii: "n") ? 0x0A : text[i])
                } else {
                    value.append(text[i])
                }
                i += 1
            }
            i += 2  // `",`
            pairs.append((name, value))
        }
        return pairs
    }

    /// Encodes one `WriteRequest` holding `series`, every sample stamped `timestamp` (ms).
    public static func writeRequest(_ series: ArraySlice<Series>, timestamp: EpochMillis) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(series.count * 96)
        var ts: [UInt8] = []
        var field: [UInt8] = []
        for s in series {
            ts.removeAll(keepingCapacity: true)
            for label in s.labels {
                field.removeAll(keepingCapacity: true)
                appendBytesField(1, label.name, &field)
                appendBytesField(2, label.value, &field)
                appendBytesField(1, field, &ts)
            }
            field.removeAll(keepingCapacity: true)
            field.append(0x09)  // field 1, fixed64
            var bits = s.value.bitPattern.littleEndian
            withUnsafeBytes(of: &bits) { field.append(contentsOf: $0) }
            field.append(0x10)  // field 2, varint
            Snappy.appendVarint(UInt64(bitPattern: timestamp), to: &field)
            appendBytesField(2, field, &ts)
            appendBytesField(1, ts, &out)
        }
        return out
    }

    private static func appendBytesField(_ number: UInt8, _ bytes: [UInt8], _ out: inout [UInt8]) {
        out.append(number << 3 | 2)
        Snappy.appendVarint(UInt64(bytes.count), to: &out)
        out.append(contentsOf: bytes)
    }
}
