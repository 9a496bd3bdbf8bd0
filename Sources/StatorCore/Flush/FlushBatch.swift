/// A configured percentile: its value and its label as configured (`90`, `99.9`).
public struct Percentile: Sendable, Equatable {
    /// In (0, 100].
    public let value: Double
    /// The JSON key is `p` + label.
    public let label: String

    /// Creates a percentile; the label is the shortest form of `value`.
    public init(_ value: Double) {
        self.value = value
        label = value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : value.description
    }
}

/// A counter's interval.
public struct CounterSummary: Sendable {
    public let key: MetricKey
    /// The rate-scaled sum.
    public let value: Double
    /// `value` per second of the interval.
    public let rate: Double
    /// Lines received in the interval.
    public internal(set) var lines: Int = 0
}

/// A gauge's value after the interval (gauges repeat every flush until they expire).
public struct GaugeSummary: Sendable {
    public let key: MetricKey
    public let value: Double
    /// Lines received in the interval (0 when the gauge only repeats its value).
    public internal(set) var lines: Int = 0
}

/// A set's interval: the number of distinct members.
public struct SetSummary: Sendable {
    public let key: MetricKey
    public let value: Double
    /// Lines received in the interval.
    public internal(set) var lines: Int = 0
}

/// A timer's, histogram's or distribution's interval (SPEC section 2).
public struct SampleSummary: Sendable {
    public let key: MetricKey
    /// Rate-weighted count.
    public let count: Double
    /// Raw number of values (the series' lines, a line of several values counting each).
    public let samples: Int
    public let rate: Double
    public let sum: Double
    public let min: Double
    public let max: Double
    public let mean: Double
    public let median: Double
    /// Population standard deviation.
    public let stddev: Double
    /// One value per configured percentile, in the batch's `percentiles` order.
    public let percentiles: [Double]
    /// The values the percentiles came from, ascending: every sample, or the
    /// reservoir when `samples` exceeded `max_samples_per_series`.
    public let sortedValues: [Double]
    /// Rate-weighted sum of the values, in the statsd unit (ms for timers).
    public let weightedSum: Double
    /// The histogram buckets of this series.
    public let bounds: BucketBounds
    /// Rate-weighted count per bucket (not cumulative), exact over every sample; the last is `+Inf`.
    public let bucketCounts: [Double]
    /// The interval's native histogram in the unit of `bounds` (seconds for timers, after a
    /// mapping's `scale`), when `bounds.native` asks for one.
    public internal(set) var native: ExponentialHistogram? = nil
    /// The same of the values as sent (milliseconds for timers), kept only when the options
    /// ask for it (`keepsStatsdUnit`) and the two units differ.
    public internal(set) var nativeAsSent: ExponentialHistogram? = nil

    /// The native histogram of the values as sent: `nativeAsSent`, or `native` when values
    /// are bucketed as sent (no timer, no `scale`); `nil` when neither is kept.
    public var nativeInStatsdUnit: ExponentialHistogram? {
        if let nativeAsSent { return nativeAsSent }
        return key.type != .timer && bounds.valueScale == 1 ? native : nil
    }
}

/// One interval's aggregates: immutable, built once per flush and handed to every sink.
public struct FlushBatch: Sendable {
    /// 1 for the first batch, then one more per flush (0 for batches made by hand).
    public let sequence: UInt64
    /// The flush time (a boundary, or the shutdown time for the last batch).
    public let timestamp: EpochMillis
    /// Seconds since the previous batch (since start for the first).
    public let interval: Double
    /// The configured percentiles, in order.
    public let percentiles: [Percentile]
    public let counters: [CounterSummary]
    public let gauges: [GaugeSummary]
    public let sets: [SetSummary]
    public let samples: [SampleSummary]
    /// Series forgotten at this flush through `series_ttl`; sinks holding state drop them.
    public let expired: [MetricKey]
    /// The interval's DogStatsD events and service checks, in arrival order (SPEC section 15):
    /// forwarded by the JSON-lines sink and the `datadog` push, never aggregated.
    public let events: [DogEvent]
    /// The interval's timestamped counter and gauge samples (`|T`), in arrival order (SPEC
    /// section 15): not in `counters` or `gauges`; written at their own time by the sinks that
    /// carry a timestamp, and a counter's added to its cumulative total.
    public let points: [TimestampedPoint]

    public init(
        sequence: UInt64 = 0, timestamp: EpochMillis, interval: Double, percentiles: [Percentile],
        counters: [CounterSummary] = [],
        gauges: [GaugeSummary] = [], sets: [SetSummary] = [], samples: [SampleSummary] = [], expired: [MetricKey] = [],
        events: [DogEvent] = [], points: [TimestampedPoint] = []
    ) {
        self.sequence = sequence
        self.timestamp = timestamp
        self.interval = interval
        self.percentiles = percentiles
        self.counters = counters
        self.gauges = gauges
        self.sets = sets
        self.samples = samples
        self.expired = expired
        self.events = events
        self.points = points
    }

    /// Number of series in the batch.
    public var seriesCount: Int { counters.count + gauges.count + sets.count + samples.count }

    /// Whether the batch holds nothing for a sink to write: no series, no event, no point.
    public var isEmpty: Bool { seriesCount == 0 && events.isEmpty && points.isEmpty }
}
