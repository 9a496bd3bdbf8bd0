import CStatorSys

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

    /// Applies one operation: a value sets the gauge, a delta adds to it.
    @inline(__always)
    mutating func apply(_ v: ParsedValue) {
        if !v.isDelta {
            hasSet = true
            value = v.value
        } else if hasSet {
            value += v.value
        } else {
            delta += v.value
        }
    }

    /// The interval's operations as one: the last set (deltas after it included), or the deltas.
    var composed: ParsedValue { ParsedValue(value: hasSet ? value : delta, isDelta: !hasSet) }

    /// Composes `later`, the same series' operations that came after these.
    mutating func then(_ later: GaugeAggregate) { apply(later.composed) }
}

/// A set's interval: hashes of the distinct members (64-bit, seeded).
struct SetAggregate {
    var key: MetricKey
    var members = MemberSet()
}

/// Distinct 64-bit member hashes: open addressing, linear probing. The hashes are
/// already seeded and well mixed, so they index the table directly.
///
/// Exact up to `limit` members (`max_set_members`); the member after that turns the set into
/// a `HyperLogLog` sketch of every member so far (the table is freed), so one set never
/// holds more than about `limit × 16` bytes of table or 16 KiB of sketch.
struct MemberSet {
    private var slots: [UInt64] = []
    private var hasZero = false
    /// Past `limit` members: the sketch, and the table is empty.
    private var sketch: HyperLogLog?
    /// Most members counted exactly.
    let limit: Int

    init(limit: Int = AggregationConfiguration.defaultMaxSetMembers) { self.limit = limit }

    /// An empty set with room for `expected` slots (rounded up to a power of two; 0: none yet).
    init(expected: Int, limit: Int = AggregationConfiguration.defaultMaxSetMembers) {
        self.limit = limit
        guard expected > 0 else { return }
        slots = Array(repeating: 0, count: Int.powerOfTwo(atLeast: min(expected, 2 * limit), minimum: 8))
    }

    /// Whether the set switched to a sketch (its count is an estimate).
    var isEstimated: Bool { sketch != nil }

    /// Bytes the set holds for its members: its table, or its sketch.
    var memberBytes: Int { slots.count * MemoryLayout<UInt64>.stride + (sketch?.registers.count ?? 0) }

    /// The number of distinct members: exact, or the sketch's estimate past `limit`.
    var distinct: Double { sketch?.estimate ?? Double(count) }

    /// Starts fetching the slot where `member` would go in the set of `aggregate`.
    /// (Static, reading fields through the pointer: a method call on the element would copy it.)
    @inline(__always)
    static func prefetch(_ member: UInt64, in aggregate: UnsafePointer<SetAggregate>) {
        aggregate.pointer(to: \.members.slots).unsafelyUnwrapped.pointee.withUnsafeBufferPointer { b in
            if let base = b.baseAddress, b.count > 0 {
                CStatorSys_prefetch(base + (Int(truncatingIfNeeded: member) & (b.count - 1)))
            }
        }
    }

    /// Where the table's slots start and their mask, for a reader to start fetching a member's
    /// slot ahead without reading the set (`KeyCache.Record.targets`); (0, 0) without a table.
    /// (Static, reading fields through the pointer: a method call on the element would copy it.)
    @inline(__always)
    static func targets(of aggregate: UnsafePointer<SetAggregate>) -> (UInt64, UInt64) {
        aggregate.pointer(to: \.members.slots).unsafelyUnwrapped.pointee.withUnsafeBufferPointer { b in
            guard let base = b.baseAddress, b.count > 0 else { return (0, 0) }
            return (UInt64(UInt(bitPattern: base)), UInt64(b.count - 1))
        }
    }

    /// Number of distinct members while exact (it stays at `limit` once the set is a sketch).
    private(set) var count = 0

    /// Slots of the table (twice the members at most, or a power of two it was sized to).
    var capacity: Int { slots.count }

    @inline(__always)
    mutating func insert(_ member: UInt64) {
        if sketch != nil {
            sketch?.insert(member)
            return
        }
        if member == 0 {
            if !hasZero {
                if count >= limit { return switchToSketch(adding: member) }
                hasZero = true
                count += 1
            }
            return
        }
        if (count + 1) * 2 > slots.count {
            if count >= limit, !contains(member) { return switchToSketch(adding: member) }
            grow()
        }
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: member) & mask
        while true {
            let existing = slots[i]
            if existing == member { return }
            if existing == 0 {
                if count >= limit { return switchToSketch(adding: member) }
                slots[i] = member
                count += 1
                return
            }
            i = (i + 1) & mask
        }
    }

    /// Whether `member` (not 0) is in the table.
    private func contains(_ member: UInt64) -> Bool {
        guard !slots.isEmpty else { return false }
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: member) & mask
        while slots[i] != 0 {
            if slots[i] == member { return true }
            i = (i + 1) & mask
        }
        return false
    }

    /// The member past `limit`: every member so far and `member` go into a sketch, and the
    /// table is freed. (Out of line: once per set and interval at most.)
    @inline(never)
    private mutating func switchToSketch(adding member: UInt64) {
        var hll = HyperLogLog()
        hll.insert(member)
        becomeSketch(from: hll)
    }

    /// Folds the table's members into `start` and keeps that as the set's sketch.
    private mutating func becomeSketch(from start: HyperLogLog) {
        var hll = start
        if hasZero { hll.insert(0) }
        for m in slots where m != 0 { hll.insert(m) }
        sketch = hll
        slots = []
        hasZero = false
    }

    /// Adds every member of `other` (merging one series' interval from two places).
    mutating func formUnion(_ other: MemberSet) {
        if let theirs = other.sketch {
            if sketch == nil { becomeSketch(from: theirs) } else { sketch?.formUnion(theirs) }
            return
        }
        if other.hasZero { insert(0) }
        for member in other.slots where member != 0 { insert(member) }
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

/// Sample values and bucket counts of one shard's interval, carved from slabs that never
/// move: a series' values cost 8 bytes each plus part of its last block (no growth by
/// copying, no doubling slack), and writing one touches no Swift array (no uniqueness check).
/// Owned by one `IntervalAggregates`; freed with it after the flush has read it.
final class SampleArena: @unchecked Sendable {
    // SAFETY: the slabs are only written under the owning shard's lock while the interval
    // is open, and only read by the flusher after `drain` handed the interval over.
    /// Values per block of a series' samples.
    static let blockValues = 16
    /// Doubles per slab (8 KiB).
    static let slabValues = 1024
    private var slabs: [UnsafeMutablePointer<Double>] = []
    private var next: UnsafeMutablePointer<Double>?
    private var left = 0
    /// Doubles allocated in slabs, used or not.
    private(set) var capacity = 0

    /// `n` zeroed doubles that stay where they are until the arena is freed.
    func allocate(_ n: Int) -> UnsafeMutablePointer<Double> {
        if n > left {
            let size = Swift.max(n, Self.slabValues)
            let slab = UnsafeMutablePointer<Double>.allocate(capacity: size)
            slabs.append(slab)
            capacity += size
            next = slab
            left = size
        }
        let p = next.unsafelyUnwrapped
        p.initialize(repeating: 0, count: n)
        next = p + n
        left -= n
        return p
    }

    deinit {
        for slab in slabs { slab.deallocate() }
    }
}

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
    /// Timers are bucketed in seconds (their values are milliseconds).
    let bucketScale: Double
    /// Running mean and sum of squared deviations, kept once the reservoir is in use.
    var mean: Double = 0
    var m2: Double = 0
    /// The blocks holding the kept values, in order (in the interval's arena).
    private var blocks: [UnsafeMutablePointer<Double>] = []
    var key: MetricKey

    init(key: MetricKey, bounds: BucketBounds, arena: SampleArena) {
        self.key = key
        self.bounds = bounds
        buckets = arena.allocate(bounds.upperBounds.count + 1)
        bucketScale = key.type == .timer ? 1.0 / 1000 : 1
    }

    @inline(__always)
    mutating func add(_ x: Double, weight: Double, maxSamples: Int, arena: SampleArena, rng: inout SplitMix64) {
        count += weight
        samples &+= 1
        sum += x
        weightedSum += x * weight
        buckets[bounds.bucket(for: bucketScale == 1 ? x : x / 1000)] += weight
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
    /// ahead without reading the aggregate (`KeyCache.Record.targets`): the bucket counts, and
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
    /// reader's share, see `ReaderShare`). Counts, sums, extremes and buckets add up exactly.
    /// The kept values are concatenated while both together are at most `maxSamples`; past
    /// that they become a uniform reservoir of the union: each of the `maxSamples` draws takes
    /// from one side with probability proportional to the samples that side has left (a
    /// hypergeometric split), a random kept value of that side. The running mean and squared
    /// deviations combine by Chan's formula.
    /// - Parameter arena: the arena of this aggregate's interval (new blocks come from it).
    mutating func merge(_ other: SampleAggregate, maxSamples: Int, arena: SampleArena, rng: inout SplitMix64) {
        guard other.samples > 0 else { return }
        let (n1, n2) = (samples, other.samples)
        count += other.count
        sum += other.sum
        weightedSum += other.weightedSum
        if other.min < min { min = other.min }
        if other.max > max { max = other.max }
        for b in 0...bounds.upperBounds.count { buckets[b] += other.buckets[b] }
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
    var bucketCounts: [Double] { Array(UnsafeBufferPointer(start: buckets, count: bounds.upperBounds.count + 1)) }
}

/// Everything recorded in one shard during one interval, by type.
struct IntervalAggregates {
    var counters: [CounterAggregate] = []
    var gauges: [GaugeAggregate] = []
    var sets: [SetAggregate] = []
    var samples: [SampleAggregate] = []
    /// Holds the values and bucket counts of `samples`; made with the interval's first one.
    var arena: SampleArena?

    /// Starts fetching the aggregate of a `type` series at `position`.
    @inline(__always)
    func prefetch(_ type: MetricType, at position: Int) {
        switch type {
        case .counter: Self.prefetch(counters, position)
        case .gauge: Self.prefetch(gauges, position)
        case .set: Self.prefetch(sets, position)
        case .timer, .histogram, .distribution: Self.prefetch(samples, position)
        }
    }

    /// Starts fetching what recording into the (fetched) aggregate at `position` writes
    /// outside it: a set's member slot, a sampled series' bucket counts and value slot.
    @inline(__always)
    func prefetchTargets(_ type: MetricType, at position: Int, member: UInt64) {
        // Through the buffers: reading an element by subscript would copy it (and retain what it holds).
        switch type {
        case .counter, .gauge: break
        case .set:
            sets.withUnsafeBufferPointer { b in
                if let base = b.baseAddress, position < b.count { MemberSet.prefetch(member, in: base + position) }
            }
        case .timer, .histogram, .distribution:
            samples.withUnsafeBufferPointer { b in
                if let base = b.baseAddress, position < b.count { SampleAggregate.prefetchTargets(of: base + position) }
            }
        }
    }

    @inline(__always)
    private static func prefetch<T>(_ array: [T], _ position: Int) {
        array.withUnsafeBufferPointer { b in
            guard let base = b.baseAddress, position < b.count else { return }
            let start = UnsafeRawPointer(base + position)
            CStatorSys_prefetch(start)
            if MemoryLayout<T>.stride > 64 { CStatorSys_prefetch(start + 64) }
            if MemoryLayout<T>.stride > 128 { CStatorSys_prefetch(start + 128) }
        }
    }
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
