/// `format: "otlp"` with `temporality: cumulative` (the default): the state `/metrics` shows
/// (`CumulativeState`, shared with the Prometheus sink and remote write), as OTLP.
///
/// - A metric is named by the statsd name of the series that registered its family (the
///   mapped name when a mapping names it); the attributes are the tags as sent (as under
///   delta temporality) of the statsd series that made each series, not the sanitized
///   labels `/metrics` shows.
/// - Counters: monotonic cumulative `Sum`s. Gauges and sets: `Gauge`s. Timers, histograms and
///   distributions: cumulative `Histogram`s; a timer's values are in milliseconds again
///   (unit `ms`), unless a mapping names it, whose values are in seconds as on `/metrics`
///   (unit `s`). Mapped summaries: `Summary`s.
/// - With native histograms (SPEC section 13), a histogram series' native histogram replaces
///   its explicit `Histogram` (OTLP allows one type per metric name in a scope) as a
///   cumulative `ExponentialHistogram`, in the unit above: an unmapped timer's kept as sent
///   (milliseconds; 1,000 is no power of a bucket's growth factor, so seconds cannot be
///   converted), any other series' as on `/metrics`. A series without one in that unit keeps
///   the explicit `Histogram`. Without min and max: the state keeps neither.
/// - Each series keeps one start time: the start of the interval it appeared in.
enum OTLPCumulativeEncoder {
    /// - Returns: the requests, and the batch sequence they reflect.
    static func requests(
        _ state: CumulativeState, resource: OTLPResource, batchSize: Int, labels: PushEncoders.ExternalLabels
    ) -> (requests: [PushRequest], sequence: UInt64) {
        state.withState { s in
            var builder = OTLPRequestBuilder(resource: resource, batchSize: batchSize)
            let time = UInt64(max(0, s.appliedTimestamp)) * 1_000_000
            var f = s.firstFamily
            while f >= 0 {
                let family = s.families[Int(f)]
                let source = family.source
                let timer = source.type == .timer
                let unit: OTLPRequestBuilder.Unit = timer ? (source.isMapped ? .seconds : .milliseconds) : .none
                let scale = unit == .milliseconds ? 1000.0 : 1
                var bounds = s.bounds(of: family)?.upperBounds ?? []
                if scale != 1 { bounds = OTLPRequestBuilder.milliseconds(bounds) }
                let boundBits = bounds.map(\.bitPattern)
                source.withName { name in
                    var i = family.firstSeries
                    while i >= 0 {
                        let series = s.series[Int(i)]
                        let attributes = Self.attributes(series, asSent: s.tagsAsSent.isEmpty ? nil : s.tagsAsSent[i])
                        func writeAttributes(_ w: inout ProtobufWriter, field: UInt32) {
                            for a in attributes { OTLPRequestBuilder.attribute(&w, field: field, a.name, a.value) }
                            for pair in labels.pairs where !attributes.contains(where: { $0.name == pair.name }) {
                                OTLPRequestBuilder.attribute(&w, field: field, pair.name, pair.value)
                            }
                        }
                        let start = UInt64(s.seriesStarts[Int(i)]) * 1_000_000_000
                        switch family.type {
                        case .counter:
                            builder.add(name: name, unit: unit, kind: .sum(.cumulative)) { w in
                                writeAttributes(&w, field: 7)
                                w.fixed64Field(2, start)
                                w.fixed64Field(3, time)
                                w.doubleField(4, series.value)
                            }
                        case .gauge:
                            builder.add(name: name, unit: unit, kind: .gauge) { w in
                                writeAttributes(&w, field: 7)
                                w.fixed64Field(3, time)
                                w.doubleField(4, series.reads(at: s.flushNumber))
                            }
                        case .histogram:
                            let h = s.histograms[Int(series.histogram)]
                            if let native = h.native.flatMap({ unit == .milliseconds ? $0.asSent : $0.bucketed }) {
                                builder.add(name: name, unit: unit, kind: .exponentialHistogram(.cumulative)) { w in
                                    writeAttributes(&w, field: 1)
                                    w.fixed64Field(2, start)
                                    w.fixed64Field(3, time)
                                    OTLPRequestBuilder.exponentialHistogram(&w, native)
                                }
                                break
                            }
                            let (counts, total) = OTLPRequestBuilder.wholeCounts(h.buckets)
                            builder.add(name: name, unit: unit, kind: .histogram(.cumulative)) { w in
                                writeAttributes(&w, field: 9)
                                w.fixed64Field(2, start)
                                w.fixed64Field(3, time)
                                w.fixed64Field(4, total)
                                w.doubleField(5, h.sum * scale)
                                OTLPRequestBuilder.packed(&w, field: 6, counts)
                                OTLPRequestBuilder.packed(&w, field: 7, boundBits)
                            }
                        case .summary:
                            let h = s.histograms[Int(series.histogram)]
                            let fresh = series.setAt == UInt32(truncatingIfNeeded: s.flushNumber)
                            builder.add(name: name, unit: unit, kind: .summary) { w in
                                writeAttributes(&w, field: 7)
                                w.fixed64Field(2, start)
                                w.fixed64Field(3, time)
                                w.fixed64Field(4, OTLPRequestBuilder.wholeCounts([h.count]).total)
                                w.doubleField(5, h.sum)
                                guard fresh else { return }
                                for (k, q) in h.quantiles.enumerated() where k < h.buckets.count {
                                    var quantile = ProtobufWriter(capacity: 18)
                                    quantile.doubleField(1, q)
                                    quantile.doubleField(2, h.buckets[k])
                                    w.message(6, quantile)
                                }
                            }
                        }
                        i = series.next
                    }
                }
                f = family.next
            }
            builder.finishRequest()
            return (builder.requests, s.appliedSequence)
        }
    }
}

extension OTLPCumulativeEncoder {
    /// A series' attributes: the tags as sent of the statsd series that made it (as the delta
    /// encoder sends them), not the Prometheus labels, whose names are sanitized.
    fileprivate static func attributes(_ series: CumulativeState.Series, asSent: [UInt8]?)
        -> [(name: [UInt8], value: [UInt8])]
    {
        guard let asSent else { return RemoteWriteEncoder.parseLabels(series.labels) }
        var pairs: [(name: [UInt8], value: [UInt8])] = []
        MetricKey(bytes: asSent, series: .none).forEachTag { k, v in pairs.append((Array(k), Array(v))) }
        return pairs
    }
}

/// An OTLP answer's `partial_success` (`ExportMetricsServiceResponse`, field 1:
/// `{ int64 rejected_data_points = 1; string error_message = 2; }`).
struct OTLPPartialSuccess: Equatable {
    var rejectedDataPoints: Int64 = 0
    var message = ""

    /// - Returns: nil when the body holds no partial success (an empty answer is a full success).
    init?(decoding body: [UInt8]) {
        var response = ProtobufReader(body[...])
        var found = false
        while let (field, value) = response.next() {
            guard field == 1, case .bytes(let inner) = value else { continue }
            found = true
            var partial = ProtobufReader(inner)
            while let (f, v) = partial.next() {
                switch (f, v) {
                case (1, .varint(let n)): rejectedDataPoints = Int64(bitPattern: n)
                case (2, .bytes(let text)): message = String(decoding: text.prefix(500), as: UTF8.self)
                default: break
                }
            }
        }
        guard found else { return nil }
    }
}
