/// A counter's interval: the rate-scaled sum.
struct CounterAggregate {
    var key: MetricKey
    var sum: Double
}

/// A gauge's interval as composed operations: the last absolute value set
/// (plus deltas after it), or only deltas to add to the previous value.
struct GaugeAggregate {
    var key: MetricKey
    var hasSet: Bool
    var value: Double
    var delta: Double

    /// The gauge after this interval, given its value before it.
    func resolve(previous: Double) -> Double { hasSet ? value : previous + delta }
}

/// A set's interval: hashes of the distinct members (64-bit, seeded).
struct SetAggregate {
    var key: MetricKey
    var members = MemberSet()
}

/// Distinct 64-bit member hashes: open addressing, linear probing. The hashes are
/// already seeded and well mixed, so they index the table directly.
struct MemberSet {
    private var slots: [UInt64] = []
    private var hasZero = false
    /// Number of distinct members.
    private(set) var count = 0

    @inline(__always)
    mutating func insert(_ member: UInt64) {
        if member == 0 {
            if !hasZero {
                hasZero = true
                count += 1
            }
            return
        }
        if (count + 1) * 2 > slots.count { grow() }
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: member) & mask
        while true {
            let existing = slots[i]
            if existing == member { return }
            if existing == 0 {
                slots[i] = member
                count += 1
                return
            }
            i = (i + 1) & mask
        }
    }

    private mutating func grow() {
        let old = slots
        slots = Array(repeating: 0, count: max(8, old.count * 2))
        let mask = slots.count - 1
        for member in old where member != 0 {
            var i = Int(truncatingIfNeeded: member) & mask
            while slots[i] != 0 { i = (i + 1) & mask }
            slots[i] = member
        }
    }
}

/// A timer's, histogram's or distribution's interval.
///
/// `values` holds every sample up to `maxSamples`; past that it is a uniform
/// reservoir (algorithm R) and `mean`/`m2` switch to Welford's running form,
/// so count, samples, sum, min, max, mean and stddev stay exact.
struct SampleAggregate {
    var key: MetricKey
    /// Rate-weighted count.
    var count: Double = 0
    /// Raw number of values.
    var samples: Int = 0
    var sum: Double = 0
    var min: Double = .infinity
    var max: Double = -.infinity
    /// Running mean and sum of squared deviations, kept once the reservoir is in use.
    var mean: Double = 0
    var m2: Double = 0
    var values: [Double] = []
    /// Rate-weighted sum (what Prometheus' `_sum` adds up), in the statsd unit.
    var weightedSum: Double = 0
    /// Rate-weighted count per bucket of `bounds` (not cumulative); the last is `+Inf`.
    var bucketCounts: [Double]
    let bounds: BucketBounds
    /// Timers are bucketed in seconds (their values are milliseconds).
    let bucketScale: Double

    init(key: MetricKey, bounds: BucketBounds) {
        self.key = key
        self.bounds = bounds
        bucketCounts = Array(repeating: 0, count: bounds.upperBounds.count + 1)
        bucketScale = key.type == .timer ? 1.0 / 1000 : 1
    }

    @inline(__always)
    mutating func add(_ x: Double, weight: Double, maxSamples: Int, rng: inout SplitMix64) {
        count += weight
        samples &+= 1
        sum += x
        weightedSum += x * weight
        bucketCounts[bounds.bucket(for: bucketScale == 1 ? x : x / 1000)] += weight
        if x < min { min = x }
        if x > max { max = x }
        if samples <= maxSamples {
            // Grow by doubling, but never past the cap: the reservoir costs maxSamples values at most.
            if values.count == values.capacity { values.reserveCapacity(Swift.min(maxSamples, Swift.max(8, values.count * 2))) }
            values.append(x)
            return
        }
        if samples == maxSamples &+ 1 {
            // Switch to running moments: seed them from the exact values so far.
            var m = 0.0
            for v in values { m += v }
            m /= Double(values.count)
            var s = 0.0
            for v in values { s += (v - m) * (v - m) }
            mean = m
            m2 = s
        }
        let d = x - mean
        mean += d / Double(samples)
        m2 += d * (x - mean)
        let j = Int(rng.next() % UInt64(samples))
        if j < maxSamples { values[j] = x }
    }

    /// Whether `values` is a reservoir rather than every sample.
    var isSampled: Bool { samples > values.count }
}

/// Everything recorded in one shard during one interval, by type.
struct IntervalAggregates {
    var counters: [CounterAggregate] = []
    var gauges: [GaugeAggregate] = []
    var sets: [SetAggregate] = []
    var samples: [SampleAggregate] = []
}

/// A small, fast PRNG (splitmix64): reservoir sampling, and reproducible corpora in the benchmarks.
public struct SplitMix64: Sendable {
    public var state: UInt64

    public init(state: UInt64) { self.state = state }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
