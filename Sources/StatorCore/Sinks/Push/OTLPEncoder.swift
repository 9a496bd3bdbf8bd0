import Glibc

/// The resource every OTLP request describes: `service.name` and `host.name`.
struct OTLPResource: Sendable {
    let serviceName: String
    let hostName: String

    init(serviceName: String, hostName: String = HTTPPushConfiguration.hostName()) {
        self.serviceName = serviceName
        self.hostName = hostName
    }
}

/// Builds OTLP/HTTP protobuf `ExportMetricsServiceRequest`s (opentelemetry-proto, metrics v1),
/// written by hand like the remote-write protobuf, each with at most `batchSize` data points:
///
/// ```
/// ExportMetricsServiceRequest { repeated ResourceMetrics resource_metrics = 1; }
/// ResourceMetrics { Resource resource = 1; repeated ScopeMetrics scope_metrics = 2; }
/// Resource        { repeated KeyValue attributes = 1; }
/// ScopeMetrics    { InstrumentationScope scope = 1; repeated Metric metrics = 2; }
/// Metric          { string name = 1; string unit = 3;
///                   oneof data { Gauge gauge = 5; Sum sum = 7; Histogram histogram = 9;
///                                ExponentialHistogram exponential_histogram = 10; Summary summary = 11; } }
/// Gauge           { repeated NumberDataPoint data_points = 1; }
/// Sum             { repeated NumberDataPoint data_points = 1; AggregationTemporality aggregation_temporality = 2;
///                   bool is_monotonic = 3; }
/// Histogram       { repeated HistogramDataPoint data_points = 1; AggregationTemporality aggregation_temporality = 2; }
/// ExponentialHistogram { repeated ExponentialHistogramDataPoint data_points = 1;
///                   AggregationTemporality aggregation_temporality = 2; }
/// Summary         { repeated SummaryDataPoint data_points = 1; }
/// NumberDataPoint { repeated KeyValue attributes = 7; fixed64 start_time_unix_nano = 2; fixed64 time_unix_nano = 3;
///                   double as_double = 4; }
/// HistogramDataPoint { repeated KeyValue attributes = 9; fixed64 start_time_unix_nano = 2; fixed64 time_unix_nano = 3;
///                   fixed64 count = 4; double sum = 5; repeated fixed64 bucket_counts = 6;
///                   repeated double explicit_bounds = 7; double min = 11; double max = 12; }
/// ExponentialHistogramDataPoint { repeated KeyValue attributes = 1; fixed64 start_time_unix_nano = 2;
///                   fixed64 time_unix_nano = 3; fixed64 count = 4; double sum = 5; sint32 scale = 6;
///                   fixed64 zero_count = 7; Buckets positive = 8; Buckets negative = 9; double min = 12;
///                   double max = 13; double zero_threshold = 14; }
/// Buckets         { sint32 offset = 1; repeated uint64 bucket_counts = 2; }
/// SummaryDataPoint { repeated KeyValue attributes = 7; fixed64 start_time_unix_nano = 2; fixed64 time_unix_nano = 3;
///                   fixed64 count = 4; double sum = 5; repeated ValueAtQuantile quantile_values = 6; }
/// ValueAtQuantile { double quantile = 1; double value = 2; }
/// KeyValue        { string key = 1; AnyValue value = 2; }   AnyValue { string string_value = 1; }
/// ```
///
/// Consecutive data points of one name, unit and kind share one `Metric`.
struct OTLPRequestBuilder {
    /// A metric's unit (UCUM, as OTLP asks).
    enum Unit: String {
        case none = ""
        case milliseconds = "ms"
        case seconds = "s"
    }

    enum Kind: Equatable {
        case gauge
        case sum(OTLPTemporality)
        case histogram(OTLPTemporality)
        case exponentialHistogram(OTLPTemporality)
        case summary

        var field: UInt32 {
            switch self {
            case .gauge: 5
            case .sum: 7
            case .histogram: 9
            case .exponentialHistogram: 10
            case .summary: 11
            }
        }
    }

    private let batchSize: Int
    private let head: ProtobufWriter
    private(set) var requests: [PushRequest] = []
    /// `Metric` messages of the request being built, each as field 2 of `ScopeMetrics`.
    private var metrics = ProtobufWriter()
    /// Data points of the metric being built, each as field 1 of its data message.
    private var points = ProtobufWriter()
    private var point = ProtobufWriter()
    private var current: (name: [UInt8], unit: Unit, kind: Kind)?
    private var requestPoints = 0

    init(resource: OTLPResource, batchSize: Int) {
        self.batchSize = batchSize
        // Resource (field 1 of ResourceMetrics) and the scope, written once.
        var resourceBody = ProtobufWriter()
        Self.attribute(&resourceBody, field: 1, Array("service.name".utf8), Array(resource.serviceName.utf8))
        Self.attribute(&resourceBody, field: 1, Array("host.name".utf8), Array(resource.hostName.utf8))
        var scope = ProtobufWriter()
        scope.stringField(1, "stator")
        scope.stringField(2, statorVersion)
        var head = ProtobufWriter()
        head.message(1, resourceBody)
        self.head = head
        scopeHead = scope
    }

    private let scopeHead: ProtobufWriter

    /// Starts a data point of the metric `name` (a new `Metric` unless it continues the last).
    /// `body` writes the point's fields.
    mutating func add(
        name: UnsafeRawBufferPointer, unit: Unit, kind: Kind, _ body: (inout ProtobufWriter) -> Void
    ) {
        let continues =
            current.map {
                $0.kind == kind && $0.unit == unit && $0.name.elementsEqual(name)
            } ?? false
        if !continues {
            finishMetric()
            current = (Array(name), unit, kind)
        }
        points.message(1, scratch: &point, body)
        requestPoints += 1
        if requestPoints == batchSize { finishRequest() }
    }

    private mutating func finishMetric() {
        guard let c = current, !points.isEmpty else { return }
        var metric = ProtobufWriter(capacity: points.bytes.count + c.name.count + 16)
        metric.bytesField(1, c.name)
        if c.unit != .none { metric.stringField(3, c.unit.rawValue) }
        var data = ProtobufWriter(capacity: points.bytes.count + 8)
        data.append(points)
        switch c.kind {
        case .sum(let t):
            data.varintField(2, t == .delta ? 1 : 2)
            data.varintField(3, 1)  // is_monotonic
        case .histogram(let t), .exponentialHistogram(let t):
            data.varintField(2, t == .delta ? 1 : 2)
        case .gauge, .summary:
            break
        }
        metric.message(c.kind.field, data)
        metrics.message(2, metric)
        points.removeAll()
    }

    /// Closes the request being built, if it holds anything.
    mutating func finishRequest() {
        finishMetric()
        guard requestPoints > 0 else { return }
        var scopeMetrics = ProtobufWriter(capacity: metrics.bytes.count + 32)
        scopeMetrics.message(1, scopeHead)
        scopeMetrics.append(metrics)
        var resourceMetrics = ProtobufWriter(capacity: scopeMetrics.bytes.count + head.bytes.count + 8)
        resourceMetrics.append(head)
        resourceMetrics.message(2, scopeMetrics)
        var request = ProtobufWriter(capacity: resourceMetrics.bytes.count + 8)
        request.message(1, resourceMetrics)
        requests.append(PushRequest(format: .otlp, body: request.bytes, series: requestPoints))
        metrics.removeAll()
        requestPoints = 0
    }

    /// A `KeyValue` with a string value, as field `field`.
    static func attribute(
        _ w: inout ProtobufWriter, field: UInt32, _ key: some Collection<UInt8>, _ value: some Collection<UInt8>
    ) {
        let anyValue = 1 + ProtobufWriter.varintSize(value.count) + value.count
        let keyValue = 1 + ProtobufWriter.varintSize(key.count) + key.count + 1 + ProtobufWriter.varintSize(anyValue) + anyValue
        w.key(field, 2)
        w.varint(UInt64(keyValue))
        w.key(1, 2)
        w.varint(UInt64(key.count))
        w.append(contentsOf: key)
        w.key(2, 2)
        w.varint(UInt64(anyValue))
        w.key(1, 2)
        w.varint(UInt64(value.count))
        w.append(contentsOf: value)
    }

    /// Packed `repeated fixed64` / `repeated double`.
    static func packed(_ w: inout ProtobufWriter, field: UInt32, _ values: some Collection<UInt64>) {
        w.key(field, 2)
        w.varint(UInt64(values.count * 8))
        for v in values { w.fixed64(v) }
    }

    /// Histogram bucket counts for the wire: whole numbers (a sample rate makes them fractional),
    /// and their total, which OTLP requires `count` to equal.
    static func wholeCounts(_ counts: some Collection<Double>) -> (counts: [UInt64], total: UInt64) {
        var total: UInt64 = 0
        let whole = counts.map { c -> UInt64 in
            let n = c.isFinite && c > 0 ? UInt64(min(c.rounded(), 1.8e19)) : 0
            total &+= n
            return n
        }
        return (whole, total)
    }

    /// The fields of an `ExponentialHistogramDataPoint` that `h` gives (count to negative, and
    /// zero_threshold); the caller writes the attributes, times, min and max.
    ///
    /// OTLP's bucket `i` holds `(base^i, base^(i+1)]` where Prometheus' (and `h`'s) bucket `i`
    /// holds `(base^(i-1), base^i]`: the offset is the first key less one. `scale` is the
    /// schema. Counts are whole numbers, as OTLP requires (`uint64`): each weighted count is
    /// rounded as the classic histogram's are, and `count` is their total with the zero
    /// bucket's, as OTLP requires too.
    ///
    /// OTLP's buckets are dense: a histogram whose buckets span more than `maxBuckets` indices
    /// (an outlier far from the rest) goes out at a coarser scale, as OpenTelemetry's SDKs
    /// keep theirs within `max_size` (160 by default, as here).
    static func exponentialHistogram(_ w: inout ProtobufWriter, _ h: ExponentialHistogram) {
        let h = h.reduced(toWidthAtMost: h.maxBuckets)
        let zero = wholeCounts(CollectionOfOne(h.zeroCount)).total
        let positive = wholeCounts(h.positive.counts)
        let negative = wholeCounts(h.negative.counts)
        w.fixed64Field(4, zero &+ positive.total &+ negative.total)
        w.doubleField(5, h.sum)
        w.sintField(6, Int64(h.schema))
        w.fixed64Field(7, zero)
        exponentialBuckets(&w, field: 8, offset: h.positive.first - 1, positive.counts)
        exponentialBuckets(&w, field: 9, offset: h.negative.first - 1, negative.counts)
        w.doubleField(14, h.zeroThreshold)
    }

    /// `Buckets`: the offset, and the counts from it as packed varints. None when empty.
    private static func exponentialBuckets(_ w: inout ProtobufWriter, field: UInt32, offset: Int, _ counts: [UInt64]) {
        guard !counts.isEmpty else { return }
        let offsetZigzag = ProtobufWriter.zigzag(Int64(offset))
        var packed = 0
        for c in counts { packed += ProtobufWriter.varintSize(c) }
        w.key(field, 2)
        w.varint(UInt64(1 + ProtobufWriter.varintSize(offsetZigzag) + 1 + ProtobufWriter.varintSize(packed) + packed))
        w.varintField(1, offsetZigzag)
        w.key(2, 2)
        w.varint(UInt64(packed))
        for c in counts { w.varint(c) }
    }

    /// A timer's bucket bounds, held in seconds, in milliseconds again: multiplied, then rounded
    /// to 15 significant digits so that 0.005 s is 5 ms, not 5.000000000000001.
    static func milliseconds(_ seconds: [Double]) -> [Double] {
        seconds.map { s in
            let ms = s * 1000
            guard ms.isFinite, ms != 0 else { return ms }
            let scale = pow(10, Double(14 - Int(log10(abs(ms)).rounded(.down))))
            return (ms * scale).rounded() / scale
        }
    }
}
