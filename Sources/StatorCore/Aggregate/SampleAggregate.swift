import CStatorSys

/// A timer's, histogram's or distribution's interval.
///
/// The first `maxSamples` values are kept in blocks of `SampleArena.blockValues`; past that
/// they are a uniform reservoir (algorithm R) and `mean`/`m2` switch to Welford's running
/// form, so count, samples, sum, min, max, mean and stddev stay exact.
struct SampleAggregate {
    // What every `add` touches comes first (the first two cache lines of the record).
    /// Rate-weighted count.
    var count: Double = 0
    /// Raw number of values.
    var samples: Int = 0
    var sum: Double = 0
    /// Rate-weighted sum (what Prometheus' `_sum` adds up), in the statsd unit.
    var weightedSum: Double = 0
    var min: Double = .infinity
    var max: Double = -.infinity
    /// Values kept: `min(samples, maxSamples)`.
    private(set) var kept = 0
    /// The block being filled: the last of `blocks`.
    private var current: UnsafeMutablePointer<Double>?
    /// Rate-weighted count per bucket of `bounds` (not cumulative; the last is `+Inf`), in the arena.
    private let buckets: UnsafeMutablePointer<Double>
    let bounds: BucketBounds
    /// Timers are bucketed in seconds (their values are milliseconds): 1 / 1000, else 1.
    let bucketScale: Double
    /// A mapping rule's `scale` (`BucketBounds.valueScale`), applied after the seconds.
    private let valueScale: Double
    /// Running mean and sum of squared deviations, kept once the reservoir is in use.
    var mean: Double = 0
    var m2: Double = 0
    /// The blocks holding the kept values, in order (in the interval's arena).
    private var blocks: [UnsafeMutablePointer<Double>] = []
    var key: MetricKey
    /// The interval's native histograms, when the bounds ask for them (`nil` costs `add` one
    /// test of a word). Owned by the interval's arena, as the buckets and values are (it lives
    /// exactly as long): held here unretained, so that a sample costs no reference count.
    private var nativeCell: Unmanaged<NativeHistogramCell>?
    /// `nativeCell`'s object (for the flush; `add` uses the reference without retaining it).
    var native: NativeHistogramCell? { nativeCell?.takeUnretainedValue() }
    #if DEBUG
        /// The arena holding `buckets` and `blocks`. Their memory is the arena's: debug builds
        /// check on every use of it that the arena is still alive.
        private weak var owner: SampleArena?
    #endif

    init(key: MetricKey, bounds: BucketBounds, arena: SampleArena) {
        self.key = key
        self.bounds = bounds
        buckets = arena.allocate(bounds.upperBounds.count + 1)
        bucketScale = key.type == .timer ? 1.0 / 1000 : 1
        valueScale = bounds.valueScale
        nativeCell = bounds.native.map {
            Unmanaged.passUnretained(arena.keep(NativeHistogramCell($0, scaled: bucketScale != 1 || bounds.valueScale != 1)))
        }
        #if DEBUG
            owner = arena
        #endif
    }

    /// The value as it is bucketed: a timer's milliseconds in seconds (divided, so that 5 ms
    /// is exactly the bound 0.005), then scaled by a mapping's `scale`.
    @inline(__always)
    private func bucketValue(_ x: Double) -> Double {
        let seconds = bucketScale == 1 ? x : x / 1000
        return valueScale == 1 ? seconds : seconds * valueScale
    }

    /// Checks, in debug builds, that the arena holding the values and bucket counts is alive:
    /// an aggregate must not outlive the interval (and so the arena) it was made in.
    @inline(__always)
    private func checkArena() {
        #if DEBUG
            assert(owner != nil, "a SampleAggregate was used after its SampleArena was freed")
        #endif
    }

    @inline(__always)
    mutating func add(_ x: Double, weight: Double, maxSamples: Int, arena: SampleArena, rng: inout SplitMix64) {
        checkArena()
        count += weight
        samples &+= 1
        sum += x
        weightedSum += x * weight
        let bucketed = bucketValue(x)
        buckets[bounds.bucket(for: bucketed)] += weight
        if let nativeCell {
            checkArena()  // the cell's owner, as for the buckets
            nativeCell._withUnsafeGuaranteedRef { $0.observe(x, bucketed: bucketed, weight: weight) }
        }
        if x < min { min = x }
        if x > max { max = x }
        if samples <= maxSamples {
            keep(x, arena: arena)
            return
        }
        if samples == maxSamples &+ 1 {
            // Switch to running moments: seed them from the exact values so far.
            (mean, m2) = keptMoments
        }
        let d = x - mean
        mean += d / Double(samples)
        m2 += d * (x - mean)
        let j = Int(rng.next() % UInt64(samples))
        if j < maxSamples { blocks[j / SampleArena.blockValues][j & (SampleArena.blockValues - 1)] = x }
    }

    /// Where the next `add` writes besides the aggregate itself, for a reader to start fetching
    /// ahead without reading the aggregate (`LineIdentityCache.Record.targets`): the bucket counts, and
    /// the slot of the next kept value (0 when the next add starts a block, or once the values
    /// are a reservoir: the add then draws a slot).
    /// (Static, reading fields through the pointer: a method call on the element would copy it.)
    @inline(__always)
    static func targets(of aggregate: UnsafePointer<SampleAggregate>) -> (UInt64, UInt64) {
        let buckets = UInt64(UInt(bitPattern: aggregate.pointer(to: \.buckets).unsafelyUnwrapped.pointee))
        let kept = aggregate.pointer(to: \.kept).unsafelyUnwrapped.pointee
        let slot = kept & (SampleArena.blockValues - 1)
        let drawing = aggregate.pointer(to: \.samples).unsafelyUnwrapped.pointee > kept  // the reservoir is full
        guard slot != 0, !drawing, let current = aggregate.pointer(to: \.current).unsafelyUnwrapped.pointee else {
            return (buckets, 0)
        }
        return (buckets, UInt64(UInt(bitPattern: current + slot)))
    }

    /// Starts fetching what the next `add` writes besides the record itself: the bucket
    /// counts and the slot of the next kept value.
    /// (Static, reading fields through the pointer: a method call on the element would copy it.)
    @inline(__always)
    static func prefetchTargets(of aggregate: UnsafePointer<SampleAggregate>) {
        let buckets = aggregate.pointer(to: \.buckets).unsafelyUnwrapped.pointee
        CStatorSys_prefetch(buckets)
        CStatorSys_prefetch(buckets + 8)
        if let current = aggregate.pointer(to: \.current).unsafelyUnwrapped.pointee {
            let kept = aggregate.pointer(to: \.kept).unsafelyUnwrapped.pointee
            CStatorSys_prefetch(current + (kept & (SampleArena.blockValues - 1)))
        }
    }

    /// Appends `x` to the kept values (room checked by the caller).
    @inline(__always)
    private mutating func keep(_ x: Double, arena: SampleArena) {
        let slot = kept & (SampleArena.blockValues - 1)
        if slot == 0 {
            let block = arena.allocate(SampleArena.blockValues)
            blocks.append(block)
            current = block
        }
        current.unsafelyUnwrapped[slot] = x
        kept += 1
    }

    /// The mean and the sum of squared deviations of the kept values.
    private var keptMoments: (mean: Double, m2: Double) {
        guard kept > 0 else { return (0, 0) }
        var m = 0.0
        forEachValue { m += $0 }
        m /= Double(kept)
        var q = 0.0
        forEachValue { q += ($0 - m) * ($0 - m) }
        return (m, q)
    }

    /// The mean and the sum of squared deviations of all samples: exact from the kept values
    /// while they are every sample, else the running ones.
    private var moments: (mean: Double, m2: Double) { isSampled ? (mean, m2) : keptMoments }

    /// Adds the samples of `other`, the same series' interval recorded in another place (a
    /// reader's share, see `LockedReaderAggregates`). Counts, sums, extremes and buckets add up exactly.
    /// The kept values are concatenated while both together are at most `maxSamples`; past
    /// that they become a uniform reservoir of the union: each of the `maxSamples` draws takes
    /// from one side with probability proportional to the samples that side has left (a
    /// hypergeometric split), a random kept value of that side. The running mean and squared
    /// deviations combine by Chan's formula.
    /// - Parameter arena: the arena of this aggregate's interval (new blocks come from it).
    mutating func merge(_ other: SampleAggregate, maxSamples: Int, arena: SampleArena, rng: inout SplitMix64) {
        guard other.samples > 0 else { return }
        checkArena()
        other.checkArena()
        let (n1, n2) = (samples, other.samples)
        count += other.count
        sum += other.sum
        weightedSum += other.weightedSum
        if other.min < min { min = other.min }
        if other.max > max { max = other.max }
        if other.bounds == bounds {
            for b in 0...bounds.upperBounds.count { buckets[b] += other.buckets[b] }
        } else {
            // A reload changed the rule's buckets while the interval was open, between the
            // making of the two parts: each of the other's counts goes to the bucket that holds
            // its upper bound. Approximate for that one interval only; the Prometheus state
            // starts such a histogram again from zero anyway (a counted reset).
            let upper = other.bounds.upperBounds
            for b in 0...upper.count {
                buckets[bounds.bucket(for: b < upper.count ? upper[b] : .infinity)] += other.buckets[b]
            }
        }
        if let theirs = other.native {
            // Another share of one interval has the same options, but a reload may have
            // changed a rule's between the two: the histograms still merge exactly.
            // (Merged into a cell of this interval's arena: the other's goes with its arena.)
            let mine = native ?? arena.keep(NativeHistogramCell(empty: theirs))
            nativeCell = Unmanaged.passUnretained(mine)
            mine.merge(theirs)
        }
        if n1 + n2 <= maxSamples {
            samples = n1 + n2
            other.forEachValue { keep($0, arena: arena) }
            return
        }
        // (The moments only here: without a reservoir they come from the kept values when asked.)
        let (mean1, q1) = moments
        let (mean2, q2) = other.moments
        samples = n1 + n2
        /// A random value of `kept`, taken out of it.
        func draw(_ kept: inout [Double]) -> Double {
            kept.swapAt(Int(rng.next() % UInt64(kept.count)), kept.count - 1)
            return kept.removeLast()
        }
        var (first, second) = (values, other.values)
        var remaining = (n1, n2)
        var chosen: [Double] = []
        chosen.reserveCapacity(maxSamples)
        while chosen.count < maxSamples {
            if Int(rng.next() % UInt64(remaining.0 + remaining.1)) < remaining.0 {
                chosen.append(draw(&first))
                remaining.0 -= 1
            } else {
                chosen.append(draw(&second))
                remaining.1 -= 1
            }
        }
        blocks.removeAll()
        current = nil
        kept = 0
        for x in chosen { keep(x, arena: arena) }
        let n = Double(n1 + n2)
        let delta = mean2 - mean1
        mean = mean1 + delta * Double(n2) / n
        m2 = q1 + q2 + delta * delta * Double(n1) * Double(n2) / n
    }

    /// Whether the kept values are a reservoir rather than every sample.
    var isSampled: Bool { samples > kept }

    /// Calls `body` with the kept values of each block, in the order kept (the last block may be partly used).
    private func forEachBlock(_ body: (UnsafeBufferPointer<Double>) -> Void) {
        checkArena()
        for (b, block) in blocks.enumerated() {
            body(UnsafeBufferPointer(start: block, count: Swift.min(SampleArena.blockValues, kept - b * SampleArena.blockValues)))
        }
    }

    /// Calls `body` with each kept value, in the order kept.
    func forEachValue(_ body: (Double) -> Void) {
        forEachBlock { for v in $0 { body(v) } }
    }

    /// The kept values, copied out of the arena (only while the interval, and so its arena, lives).
    var values: [Double] {
        var out: [Double] = []
        out.reserveCapacity(kept)
        forEachBlock { out.append(contentsOf: $0) }
        return out
    }

    /// The bucket counts, copied out of the arena (only while the interval, and so its arena, lives).
    var bucketCounts: [Double] {
        checkArena()
        return Array(UnsafeBufferPointer(start: buckets, count: bounds.upperBounds.count + 1))
    }
}
