/// A growable array of aggregates that the reader reaches through plain pointers (a Swift
/// array would check its uniqueness on every write). Owned by one `ReaderInterval`.
struct ShareList<Element>: ~Copyable {
    private var storage: UnsafeMutablePointer<Element>
    private var capacity: Int
    private(set) var count = 0

    init() {
        capacity = Self.firstCapacity
        storage = .allocate(capacity: capacity)
    }

    deinit {
        storage.deinitialize(count: count)
        storage.deallocate()
    }

    /// The element at `index` (below `count`), in place.
    @inline(__always)
    func pointer(_ index: Int) -> UnsafeMutablePointer<Element> {
        precondition(index >= 0 && index < count, "ShareList index out of range")
        return storage + index
    }

    /// Appends `element`; returns its index.
    mutating func append(_ element: Element) -> Int {
        if count == capacity {
            let bigger = UnsafeMutablePointer<Element>.allocate(capacity: capacity * 2)
            bigger.moveInitialize(from: storage, count: count)
            storage.deallocate()
            storage = bigger
            capacity *= 2
        }
        (storage + count).initialize(to: element)
        count += 1
        return count - 1
    }

    /// Moves the elements out into an array and empties the list, back to its first size (so
    /// that an interval with many series leaves no large buffer behind, as the shards' do not).
    mutating func take() -> [Element] {
        let n = count
        // (Not through the initializer below when empty: it stores the count, 0, into the
        // shared empty-array storage, which other threads read; ThreadSanitizer reports it.)
        guard n > 0 else { return [] }
        let taken = [Element](unsafeUninitializedCapacity: n) { buffer, initialized in
            buffer.baseAddress.unsafelyUnwrapped.moveInitialize(from: storage, count: n)
            initialized = n
        }
        count = 0
        if capacity > Self.firstCapacity {
            storage.deallocate()
            capacity = Self.firstCapacity
            storage = .allocate(capacity: capacity)
        }
        return taken
    }

    /// Empties the list, back to its first size.
    mutating func removeAll() {
        storage.deinitialize(count: count)
        count = 0
        if capacity > Self.firstCapacity {
            storage.deallocate()
            capacity = Self.firstCapacity
            storage = .allocate(capacity: capacity)
        }
    }

    static var firstCapacity: Int { 64 }
}

/// What staging a share's gauge in the shards needs besides its aggregate (see
/// `DatagramIngestor.sealGauge`): the series' key hash and the shard's route to it.
struct GaugeSeal {
    var keyHash: UInt64
    var route: SeriesRoute
}

/// Where a share keeps each series it has an aggregate for in the open interval: from the
/// series' number to the aggregate's position in the list for its type. Consulted only when
/// a line's `KeyCache` record does not know the position (the series' first line in the
/// interval, or a record new since), so that a series whose record was evicted and made
/// again does not get a second aggregate. Open addressing, linear probing, at most half
/// full; emptied, back to its first size, with the interval.
struct ShareIndex: ~Copyable {
    private var series: UnsafeMutablePointer<SeriesID>
    private var positions: UnsafeMutablePointer<Int32>
    private var capacity: Int
    private(set) var count = 0

    private static var firstCapacity: Int { 64 }
    /// A free entry (no table numbers a series so).
    private static let empty = SeriesID.none

    init() {
        capacity = Self.firstCapacity
        series = .allocate(capacity: capacity)
        series.initialize(repeating: Self.empty, count: capacity)
        positions = .allocate(capacity: capacity)
    }

    deinit {
        series.deallocate()
        positions.deallocate()
    }

    /// The position recorded for `id`, or `nil`.
    func position(of id: SeriesID) -> Int? {
        var i = Self.slot(id, capacity)
        while series[i] != Self.empty {
            if series[i] == id { return Int(positions[i]) }
            i = (i &+ 1) & (capacity &- 1)
        }
        return nil
    }

    /// Records `position` for `id` (not recorded yet).
    mutating func insert(_ id: SeriesID, at position: Int) {
        if (count &+ 1) &* 2 > capacity { grow() }
        var i = Self.slot(id, capacity)
        while series[i] != Self.empty { i = (i &+ 1) & (capacity &- 1) }
        series[i] = id
        positions[i] = Int32(position)
        count &+= 1
    }

    /// Forgets every entry, back to the first size.
    mutating func removeAll() {
        if capacity > Self.firstCapacity {
            series.deallocate()
            positions.deallocate()
            capacity = Self.firstCapacity
            series = .allocate(capacity: capacity)
            positions = .allocate(capacity: capacity)
        }
        series.initialize(repeating: Self.empty, count: capacity)
        count = 0
    }

    @inline(__always)
    private static func slot(_ id: SeriesID, _ capacity: Int) -> Int {
        Int(truncatingIfNeeded: (UInt64(id.index) &* 0x9E37_79B9_7F4A_7C15) >> 32) & (capacity &- 1)
    }

    private mutating func grow() {
        let (oldSeries, oldPositions, oldCapacity) = (series, positions, capacity)
        capacity *= 2
        series = .allocate(capacity: capacity)
        series.initialize(repeating: Self.empty, count: capacity)
        positions = .allocate(capacity: capacity)
        count = 0
        for i in 0..<oldCapacity where oldSeries[i] != Self.empty { insert(oldSeries[i], at: Int(oldPositions[i])) }
        oldSeries.deallocate()
        oldPositions.deallocate()
    }
}

/// One reader's share of the open interval: the aggregates of the counters, gauges, sets,
/// timers, histograms and distributions that this reader adds to without a shard (`ReaderShare`).
struct ReaderInterval: ~Copyable {
    var counters = ShareList<CounterAggregate>()
    /// A gauge's operations composed (the last set and the deltas after it, or only deltas),
    /// applied after what its shard holds for the interval (`IntervalMerge`).
    var gauges = ShareList<GaugeAggregate>()
    /// Per gauge (same positions): what staging it needs.
    var gaugeSeals = ShareList<GaugeSeal>()
    /// Each gauge's position in `gauges` by its key hash, for a gauge line that has to be
    /// staged: the share's operations on its series are staged first (`DatagramIngestor.sealGauge`).
    var gaugeByHash: [UInt64: Int32] = [:]
    /// Two gauges here have one key hash: a staged gauge line then stages every gauge's operations.
    var gaugeHashesCollide = false
    var sets = ShareList<SetAggregate>()
    var samples = ShareList<SampleAggregate>()
    /// Which series have an aggregate here, and where.
    var index = ShareIndex()
    /// Holds the values and bucket counts of `samples`; made with the interval's first one.
    var arena: SampleArena?
    /// `arena` without the retain and release that reading a strong reference costs per value.
    /// SAFETY: set together with `arena`, which keeps the object alive, and cleared with it.
    var arenaReference: Unmanaged<SampleArena>?
    /// Counts the intervals: a `KeyCache` record's `localEpoch` names the interval its
    /// `localPosition` belongs to.
    var epoch: UInt32 = 1
    /// For the reservoirs of this reader's sampled series.
    var rng: SplitMix64

    init(rng: SplitMix64) { self.rng = rng }

    /// Moves the interval's aggregates out and starts the next epoch.
    mutating func take() -> IntervalAggregates {
        let taken = IntervalAggregates(
            counters: counters.take(), gauges: gauges.take(), sets: sets.take(), samples: samples.take(), arena: arena)
        gaugeSeals.removeAll()
        gaugeByHash.removeAll(keepingCapacity: true)
        gaugeHashesCollide = false
        index.removeAll()
        arena = nil
        arenaReference = nil
        epoch &+= 1
        if epoch == 0 { epoch = 1 }  // 0 is a fresh record's
        return taken
    }
}

/// A reader's share of the aggregation, so that a line seen before costs no staging, no
/// grouping and no shard lock: the reader adds its value straight into an aggregate of its
/// own, found through the line's `KeyCache` record.
///
/// Which values go here: those of lines whose series the reader has a checked route to
/// (counter sums, gauge operations, set members, sampled values). The shard still owns the series: the reader asks it once per
/// series and interval (`ShardedTable.touch`), which checks the route, marks the series as
/// receiving data (for `series_ttl`) and hands out its key. At a flush the table drains every
/// share with the shards and merges what two places hold of one series (`ShardedTable.drainAll`).
///
/// The reader holds the share's lock while it stages and commits a receive batch; the flusher
/// holds every share's lock while it drains the shares and the shards, so that each batch
/// lands wholly in one interval, in its shard and share parts alike (a gauge's operations in
/// two places keep their order only so). Uncontended, it costs two atomic operations per batch.
final class ReaderShare: Sendable {
    private let interval: PthreadLock<ReaderInterval>

    init(seed: UInt64) { interval = PthreadLock(ReaderInterval(rng: SplitMix64(state: seed))) }

    @inline(__always)
    func lock() { interval.lock() }

    @inline(__always)
    func unlock() { interval.unlock() }

    /// The open interval; touch only between `lock()` and `unlock()`.
    var state: UnsafeMutablePointer<ReaderInterval> { interval.unsafeValue }

    /// Swaps the open interval out and starts the next epoch.
    func drain() -> IntervalAggregates { interval.withLock { $0.take() } }

    /// `drain()` with the lock held by the caller.
    func drainLocked() -> IntervalAggregates { interval.unsafeValue.pointee.take() }
}

/// The shares the table drains at each flush, and what retired readers left.
struct ReaderShares {
    var live: [ReaderShare] = []
    /// Intervals of readers that stopped (their last values go out with the next flush).
    var retired: [IntervalAggregates] = []
}

extension IntervalAggregates {
    /// Whether nothing was recorded.
    var isEmpty: Bool { counters.isEmpty && gauges.isEmpty && sets.isEmpty && samples.isEmpty }
}

/// Merges intervals in which one series may have aggregates in several places (the shards'
/// and the readers' shares), so that each series appears once.
enum IntervalMerge {
    /// Folds every aggregate of `extra` whose series has one in `parts` (or in an earlier
    /// `extra`, or earlier in the same one: two identities, such as tags in another order, can
    /// name one series) into that one; what is left of each `extra` is appended to `parts`.
    /// `parts` must hold each series at most once (the shards' intervals do). Series are told
    /// apart by their `SeriesID` (dense), so the lookup is an array indexed by it, made for the
    /// merge and dropped after.
    static func merge(
        _ parts: inout [IntervalAggregates], _ extra: [IntervalAggregates], maxSamples: Int, rng: inout SplitMix64
    ) {
        let extra = extra.filter { !$0.isEmpty }
        guard !extra.isEmpty else { return }
        let firstExtra = parts.count
        parts.append(contentsOf: extra)
        var highest = 0
        func see(_ key: MetricKey) {
            if key.series != .none { highest = Swift.max(highest, Int(key.series.index) + 1) }
        }
        for part in parts {
            for c in part.counters { see(c.key) }
            for g in part.gauges { see(g.key) }
            for s in part.sets { see(s.key) }
            for t in part.samples { see(t.key) }
        }
        var place = [UInt64](repeating: .max, count: highest)
        fold(&parts, firstExtra: firstExtra, \.counters, place: &place, key: \.key) { into, c, _ in into.sum += c.sum }
        // Gauges compose in order: the shards' part of the interval first, then the shares'
        // (between two readers there is no order to keep).
        fold(&parts, firstExtra: firstExtra, \.gauges, place: &place, key: \.key) { into, g, _ in into.then(g) }
        fold(&parts, firstExtra: firstExtra, \.sets, place: &place, key: \.key) { into, s, _ in
            into.members.formUnion(s.members)
        }
        fold(&parts, firstExtra: firstExtra, \.samples, place: &place, key: \.key) { into, t, arena in
            into.merge(t, maxSamples: maxSamples, arena: arena.unsafelyUnwrapped, rng: &rng)
        }
    }

    /// One type's pass of `merge`. `place[series]` is (part << 32) | position, or `.max`.
    /// (A series number names one series throughout the drained interval: numbers are given
    /// back only by expiry, which runs after the drain, and a route to an expired series is
    /// refused by `Shard.touch`.)
    private static func fold<A>(
        _ parts: inout [IntervalAggregates], firstExtra: Int, _ path: WritableKeyPath<IntervalAggregates, [A]>,
        place: inout [UInt64], key: (A) -> MetricKey, combine: (inout A, A, SampleArena?) -> Void
    ) {
        for i in place.indices { place[i] = .max }
        for p in 0..<firstExtra {
            for (i, a) in parts[p][keyPath: path].enumerated() {
                let series = key(a).series
                if series != .none { place[Int(series.index)] = UInt64(p) << 32 | UInt64(i) }
            }
        }
        for p in firstExtra..<parts.count {
            let items = parts[p][keyPath: path]
            parts[p][keyPath: path] = []
            var kept: [A] = []
            kept.reserveCapacity(items.count)
            for a in items {
                let series = key(a).series
                guard series != .none else {
                    kept.append(a)
                    continue
                }
                let w = place[Int(series.index)]
                if w != .max {
                    let (q, i) = (Int(w >> 32), Int(w & 0xFFFF_FFFF))
                    let arena = parts[q].arena
                    if q == p { combine(&kept[i], a, arena) } else { combine(&parts[q][keyPath: path][i], a, arena) }
                    continue
                }
                place[Int(series.index)] = UInt64(p) << 32 | UInt64(kept.count)
                kept.append(a)
            }
            parts[p][keyPath: path] = kept
        }
    }
}
