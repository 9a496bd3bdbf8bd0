/// Turns a `SampleAggregate` into its summary: etsy percentiles, median, population stddev.
enum SampleStatistics {
    /// - Parameters:
    ///   - aggregate: the interval's samples (read while its interval, and so its arena, lives).
    ///   - percentiles: the configured percentiles.
    ///   - interval: seconds, for `rate`.
    static func summarize(_ aggregate: borrowing SampleAggregate, percentiles: [Percentile], interval: Double)
        -> SampleSummary
    {
        let reservoir = aggregate.isSampled
        var values = aggregate.values
        values.sort()
        let n = values.count
        let samples = aggregate.samples
        let mean = samples > 0 ? aggregate.sum / Double(samples) : 0
        let stddev: Double
        if reservoir {
            stddev = (aggregate.m2 / Double(samples)).squareRoot()
        } else {
            var s = 0.0
            for v in values { s += (v - mean) * (v - mean) }
            stddev = n > 0 ? (s / Double(n)).squareRoot() : 0
        }
        let median: Double
        if n == 0 {
            median = 0
        } else if n % 2 == 1 {
            median = values[n / 2]
        } else {
            median = (values[n / 2 - 1] + values[n / 2]) / 2
        }
        let ranks = percentiles.map { p -> Double in
            guard n > 0 else { return 0 }
            return values[rank(p.value, n) - 1]
        }
        return SampleSummary(
            key: aggregate.key, count: aggregate.count, samples: samples,
            rate: interval > 0 ? aggregate.count / interval : 0, sum: aggregate.sum,
            min: aggregate.min, max: aggregate.max, mean: mean, median: median, stddev: stddev,
            percentiles: ranks, sortedValues: values, weightedSum: aggregate.weightedSum, bounds: aggregate.bounds,
            bucketCounts: aggregate.bucketCounts)
    }

    /// etsy's 1-based rank: `floor(p/100 * n + 0.5)`, clamped to 1...n.
    static func rank(_ p: Double, _ n: Int) -> Int {
        let r = Int((p / 100 * Double(n) + 0.5).rounded(.down))
        return Swift.min(Swift.max(r, 1), n)
    }
}
