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
        sortAscending(&values)
        let n = values.count
        let samples = aggregate.samples
        let sum = aggregate.sum.withoutNaN
        let mean = samples > 0 ? sum / Double(samples) : 0
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
            median = values[n / 2 - 1] / 2 + values[n / 2] / 2  // halves first: finite for finite values
        }
        let ranks = percentiles.map { p -> Double in
            guard n > 0 else { return 0 }
            return values[rank(p.value, n) - 1]
        }
        var summary = SampleSummary(
            key: aggregate.key, count: aggregate.count, samples: samples,
            rate: interval > 0 ? aggregate.count / interval : 0, sum: sum,
            min: aggregate.min, max: aggregate.max, mean: mean.withoutNaN, median: median, stddev: stddev.withoutNaN,
            percentiles: ranks, sortedValues: values, weightedSum: aggregate.weightedSum.withoutNaN, bounds: aggregate.bounds,
            bucketCounts: aggregate.bucketCounts)
        if let native = aggregate.native {
            summary.native = native.bucketed
            summary.nativeAsSent = native.asSent
        }
        return summary
    }

    /// etsy's 1-based rank: `floor(p/100 * n + 0.5)`, clamped to 1...n.
    static func rank(_ p: Double, _ n: Int) -> Int {
        let r = Int((p / 100 * Double(n) + 0.5).rounded(.down))
        return Swift.min(Swift.max(r, 1), n)
    }

    /// Sorts finite values ascending: an introsort (quicksort with the median of three,
    /// insertion sort below 16 values, heapsort past 2·log2(n) levels, so crafted values cannot
    /// make it quadratic), not the standard library's stable sort: at the few dozen values of
    /// a typical timer interval the stable sort spends most of its time insertion-sorting its
    /// runs (BENCHMARKS.md has the figures), and equal values need no stable order here (values
    /// are finite: the parser rejects NaN and infinities).
    /// (`depthLimit` is for tests: 0 heapsorts everything of 16 values or more.)
    static func sortAscending(_ values: inout [Double], depthLimit: Int? = nil) {
        values.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress, buffer.count > 1 else { return }
            var depth = 0
            var n = buffer.count
            while n > 0 {
                depth += 2
                n >>= 1
            }
            introsort(base, 0, buffer.count - 1, depthLimit ?? depth)
        }
    }

    private static func introsort(_ a: UnsafeMutablePointer<Double>, _ low: Int, _ high: Int, _ depth: Int) {
        var low = low
        var high = high
        var depth = depth
        while high - low >= 16 {
            if depth == 0 {
                heapsort(a + low, high - low + 1)
                return
            }
            depth -= 1
            // The median of the first, middle and last as the pivot, left at `low`.
            let mid = low + (high - low) / 2
            if a[mid] < a[low] { swap(a, mid, low) }
            if a[high] < a[low] { swap(a, high, low) }
            if a[high] < a[mid] { swap(a, high, mid) }
            swap(a, low, mid)
            let pivot = a[low]
            // Hoare partition: stops on equal values, so runs of equal values split evenly.
            var i = low
            var j = high + 1
            while true {
                repeat { i += 1 } while a[i] < pivot && i < high
                repeat { j -= 1 } while pivot < a[j]
                if i >= j { break }
                swap(a, i, j)
            }
            swap(a, low, j)
            // Recurse into the smaller side, loop on the larger: the stack stays O(log n).
            if j - low < high - j {
                introsort(a, low, j - 1, depth)
                low = j + 1
            } else {
                introsort(a, j + 1, high, depth)
                high = j - 1
            }
        }
        // Insertion sort of what is left.
        if high <= low { return }
        for k in (low + 1)...high {
            let x = a[k]
            var m = k - 1
            while m >= low, x < a[m] {
                a[m + 1] = a[m]
                m -= 1
            }
            a[m + 1] = x
        }
    }

    private static func heapsort(_ a: UnsafeMutablePointer<Double>, _ n: Int) {
        func siftDown(_ start: Int, _ end: Int) {
            var root = start
            while 2 * root + 1 < end {
                var child = 2 * root + 1
                if child + 1 < end, a[child] < a[child + 1] { child += 1 }
                if !(a[root] < a[child]) { return }
                swap(a, root, child)
                root = child
            }
        }
        for start in stride(from: n / 2 - 1, through: 0, by: -1) { siftDown(start, n) }
        for end in stride(from: n - 1, to: 0, by: -1) {
            swap(a, 0, end)
            siftDown(0, end)
        }
    }

    @inline(__always)
    private static func swap(_ a: UnsafeMutablePointer<Double>, _ i: Int, _ j: Int) {
        let t = a[i]
        a[i] = a[j]
        a[j] = t
    }
}
