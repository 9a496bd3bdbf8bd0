/// What every shard of one table shares: the series budget and the limits.
final class ShardContext: Sendable {
    let budget: SeriesBudget
    let maxSamples: Int
    let buckets: HistogramBuckets
    /// The table's key hash seed.
    let keySeed: UInt64

    init(budget: SeriesBudget, maxSamples: Int, buckets: HistogramBuckets, keySeed: UInt64) {
        self.keySeed = keySeed
        self.budget = budget
        self.maxSamples = maxSamples
        self.buckets = buckets
    }
}

/// One lock's worth of series: the index of tracked series plus the current
/// interval's aggregates. Flushing swaps the aggregates out, so the lock is
/// held for O(1) (statsite's approach).
final class Shard: Sendable {
    struct State {
        var generation: UInt32 = 1
        var index: SeriesIndex
        var interval = IntervalAggregates()
        var rng: SplitMix64
        /// Where the next expiry sweep continues.
        var sweepCursor = 0
    }

    private let state: PthreadLock<State>
    private let context: ShardContext
    /// Copies of the context's plain values, so the hot path reads them without touching the context.
    private let maxSamples: Int

    init(seed: UInt64, context: ShardContext) {
        state = PthreadLock(State(index: SeriesIndex(seed: context.keySeed), rng: SplitMix64(state: seed)))
        self.context = context
        maxSamples = context.maxSamples
    }

    /// Records staged samples of this shard under one lock. Samples with a route (from the
    /// reader's `KeyCache`) go straight to their slot when it still holds their series; the
    /// others are looked up by key, after three prefetch passes (buckets, then slots, then key
    /// bytes), so that the cache misses of the lookups overlap instead of coming one after another.
    /// - Parameter rejected: gets the line of each sample dropped by `max_series`.
    func record(
        samples: UnsafeMutableBufferPointer<StagedSample>, indices: UnsafeBufferPointer<Int32>,
        values: UnsafeBufferPointer<ParsedValue>, keys: StagedKeys, rejected: inout [Int32]
    ) {
        state.withLock { s in
            var lookups = 0
            for i in indices {
                let e = samples[Int(i)]
                if e.route.slot >= 0 {
                    s.index.prefetchSlot(id: e.route.slot)
                } else {
                    s.index.prefetchBucket(e.hash)
                    lookups &+= 1
                }
            }
            if lookups > 0 {
                for i in indices where samples[Int(i)].route.slot < 0 { s.index.prefetchSlot(samples[Int(i)].hash) }
                for i in indices where samples[Int(i)].route.slot < 0 { s.index.prefetchKey(samples[Int(i)].hash) }
            }
            // Routed samples of series that have an aggregate this interval: fetch it, then what it points to.
            for i in indices {
                let e = samples[Int(i)]
                if let position = aggregatePosition(s, e.route) { s.interval.prefetch(e.type, at: position) }
            }
            for i in indices {
                let e = samples[Int(i)]
                if e.type != .counter && e.type != .gauge, let position = aggregatePosition(s, e.route) {
                    s.interval.prefetchTargets(e.type, at: position, member: e.memberHash)
                }
            }
            for i in indices {
                let e = samples[Int(i)]
                let mine = UnsafeBufferPointer(rebasing: values[Int(e.valueStart)..<Int(e.valueEnd)])
                let id: Int32
                if s.index.holds(e.route) {
                    id = e.route.slot
                } else {
                    let key = keys.key(of: e)
                    guard let found = series(&s, key: key, hash: e.hash, type: e.type) else {
                        rejected.append(e.line)
                        continue
                    }
                    id = found
                    samples[Int(i)].route = SeriesRoute(slot: id, series: s.index[id].key.series)
                }
                recordOne(&s, id: id, type: e.type, rate: e.rate, values: mine, memberHash: e.memberHash)
            }
        }
    }

    /// Where the interval's aggregate of a routed series is, if it has one yet.
    @inline(__always)
    private func aggregatePosition(_ s: borrowing State, _ route: SeriesRoute) -> Int? {
        guard s.index.holds(route) else { return nil }
        let slot = route.slot
        guard s.index[slot].lastGeneration == s.generation, s.index[slot].position >= 0 else { return nil }
        return Int(s.index[slot].position)
    }

    /// Finds or creates the series of `key` (the lock held).
    /// - Returns: its slot, or `nil` when `max_series` series are tracked.
    @inline(__always)
    private func series(_ s: inout State, key: UnsafeRawBufferPointer, hash: UInt64, type: MetricType) -> Int32? {
        if let found = s.index.find(key, hash: hash) { return found }
        let context = self.context
        guard let series = context.budget.admit() else { return nil }
        let owned = MetricKey(bytes: Array(key), series: series)
        let bounds = type.isSampled ? owned.withName { context.buckets.boundsIndex(for: $0) } : 0
        return s.index.insert(owned, hash: hash, generation: s.generation, boundsIndex: bounds)
    }

    /// Adds the values to the interval aggregate of the series in slot `id` (the lock held).
    @inline(__always)
    private func recordOne(
        _ s: inout State, id: Int32, type: MetricType, rate: Double, values: UnsafeBufferPointer<ParsedValue>,
        memberHash: UInt64
    ) {
        let generation = s.generation
        var position = Int(s.index[id].position)
        let fresh = s.index[id].lastGeneration != generation || position < 0
        switch type {
        case .counter:
            if fresh {
                position = s.interval.counters.count
                s.interval.counters.append(CounterAggregate(key: s.index[id].key, sum: 0))
            }
            var sum = s.interval.counters[position].sum
            for v in values { sum += v.value / rate }
            s.interval.counters[position].sum = sum
        case .gauge:
            if fresh {
                position = s.interval.gauges.count
                s.interval.gauges.append(GaugeAggregate(key: s.index[id].key, hasSet: false, value: 0, delta: 0))
            }
            for v in values {
                if !v.isDelta {
                    s.interval.gauges[position].hasSet = true
                    s.interval.gauges[position].value = v.value
                } else if s.interval.gauges[position].hasSet {
                    s.interval.gauges[position].value += v.value
                } else {
                    s.interval.gauges[position].delta += v.value
                }
            }
        case .set:
            if fresh {
                position = s.interval.sets.count
                s.interval.sets.append(SetAggregate(key: s.index[id].key))
            }
            s.interval.sets[position].members.insert(memberHash)
        case .timer, .histogram, .distribution:
            let arena: SampleArena
            if let existing = s.interval.arena {
                arena = existing
            } else {
                arena = SampleArena()
                s.interval.arena = arena
            }
            if fresh {
                position = s.interval.samples.count
                let bounds = self.context.buckets.bounds(at: Int(s.index[id].boundsIndex))
                s.interval.samples.append(SampleAggregate(key: s.index[id].key, bounds: bounds, arena: arena))
            }
            let weight = 1 / rate
            for v in values {
                s.interval.samples[position].add(v.value, weight: weight, maxSamples: maxSamples, arena: arena, rng: &s.rng)
            }
        }
        if fresh {
            s.index[id].position = Int32(position)
            s.index[id].lastGeneration = generation
        }
    }

    /// Swaps out the interval's aggregates and starts `nextGeneration`.
    func drain(nextGeneration: UInt32) -> IntervalAggregates {
        state.withLock { s in
            var taken = IntervalAggregates()
            swap(&taken, &s.interval)
            s.generation = nextGeneration
            return taken
        }
    }

    /// Forgets series whose last data came in generation `cutoff` or earlier,
    /// visiting at most `limit` slots under the lock.
    /// - Returns: the forgotten keys and whether the sweep reached the end of the shard.
    func sweep(cutoff: UInt32, limit: Int) -> (removed: [MetricKey], done: Bool) {
        let budget = context.budget
        return state.withLock { s in
            var removed: [MetricKey] = []
            let end = min(s.index.slots.count, s.sweepCursor + limit)
            var id = s.sweepCursor
            while id < end {
                let slot = s.index.slots[id]
                if slot.keyLength > 0, slot.lastGeneration <= cutoff {
                    removed.append(slot.key)
                    s.index.remove(Int32(id))
                    budget.release(slot.key.series)
                }
                id += 1
            }
            let done = end >= s.index.slots.count
            s.sweepCursor = done ? 0 : end
            if done, s.index.isSparse { s.index = s.index.compacted() }
            return (removed, done)
        }
    }

    /// The number of series tracked by this shard.
    var seriesCount: Int { state.withLock { $0.index.count } }

    /// Slots allocated, live or free.
    var slotCount: Int { state.withLock { $0.index.slots.count } }
}
