/// What every shard of one table shares: the series budget and the limits.
final class ShardContext: Sendable {
    let budget: SeriesBudget
    let maxSamples: Int
    let maxSetMembers: Int
    let buckets: HistogramBuckets
    /// The table's key hash seed.
    let keySeed: UInt64
    /// The options of mapped series (their buckets), when a mapping is configured.
    let mappingOptions: MappingOptionsRegistry?
    /// New series by whether a mapping rule named them (counted only with a mapping).
    let newMappedSeries = AtomicCounter()
    let newUnmappedSeries = AtomicCounter()
    /// `tags.limits`, when configured: told of each new series (the values it holds).
    let tagLimits: TagValueLimits?

    init(
        budget: SeriesBudget, maxSamples: Int, maxSetMembers: Int, buckets: HistogramBuckets, keySeed: UInt64,
        mappingOptions: MappingOptionsRegistry? = nil, tagLimits: TagValueLimits? = nil
    ) {
        self.tagLimits = tagLimits
        self.keySeed = keySeed
        self.budget = budget
        self.maxSamples = maxSamples
        self.maxSetMembers = maxSetMembers
        self.buckets = buckets
        self.mappingOptions = mappingOptions
    }

    /// A slot's `boundsIndex` for a mapped series: the flag, the `bucket_overrides` index its
    /// name takes (bits 16-30), and its rule's options slot (bits 0-15). The rule's buckets are
    /// looked up when each interval's aggregate is made, so a reload that changes them takes
    /// effect on the series from the next interval.
    static let mappedBounds: UInt32 = 0x8000_0000

    /// The `boundsIndex` of a new sampled series: its mapping rule's slot (whose buckets win
    /// when it sets some), and the first `bucket_overrides` glob its name matches, else the
    /// defaults.
    func boundsIndex(of key: MetricKey) -> Int {
        let override = key.withName { buckets.boundsIndex(for: $0) }
        guard let id = key.mappingOptions, mappingOptions != nil else { return override }
        // Past 32,767 overrides (none configures that many) a mapped series takes the defaults.
        let overrideBits = override < 0x7FFF ? UInt32(override) << 16 : 0
        return Int(Self.mappedBounds | overrideBits | UInt32(id))
    }

    /// The bounds a `boundsIndex` names, as of now.
    func bounds(at index: UInt32) -> BucketBounds {
        guard index & Self.mappedBounds != 0 else { return buckets.bounds(at: Int(index)) }
        if let bounds = mappingOptions?.bounds(UInt16(truncatingIfNeeded: index)) { return bounds }
        return buckets.bounds(at: Int((index & ~Self.mappedBounds) >> 16))
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

    /// Records staged samples of this shard under one lock, in two phases. First each
    /// sample's series and interval aggregate are found or made, in order (a sample with a
    /// route from the reader's `LineIdentityCache` goes straight to its slot when the slot still holds
    /// its series; the others are looked up by key), with prefetch passes before each step so
    /// that the cache misses of different samples overlap. Then the values are added, through
    /// the aggregate arrays' buffers (no per-sample uniqueness checks).
    /// - Parameters:
    ///   - positions: scratch, one per index.
    ///   - rejected: gets the index of each sample dropped by `max_series`.
    func record(
        samples: UnsafeMutableBufferPointer<StagedSample>, indices: UnsafeBufferPointer<Int32>,
        values: UnsafeBufferPointer<ParsedValue>, keys: StagedKeys, positions: UnsafeMutableBufferPointer<Int32>,
        rejected: inout [Int32]
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
            // Each sample's series and aggregate, in order; fetch the aggregate.
            for (k, i) in indices.enumerated() {
                let e = samples[Int(i)]
                let id: Int32
                if s.index.holds(e.route) {
                    id = e.route.slot
                } else {
                    guard let found = series(&s, key: keys.key(of: e), hash: e.hash, type: e.type) else {
                        rejected.append(i)
                        positions[k] = -1
                        continue
                    }
                    id = found
                    samples[Int(i)].route = SeriesRoute(slot: id, series: s.index[id].key.series)
                    samples[Int(i)].learned = true
                }
                let position = aggregate(&s, id: id, type: e.type)
                positions[k] = Int32(position)
                s.interval.prefetch(e.type, at: position)
            }
            // What adding writes outside the aggregate: a set's member slot, a sampled series' buckets and value slot.
            for (k, i) in indices.enumerated() where positions[k] >= 0 {
                let type = samples[Int(i)].type
                if type != .counter && type != .gauge {
                    s.interval.prefetchTargets(type, at: Int(positions[k]), member: samples[Int(i)].payload)
                }
            }
            add(&s, samples: samples, indices: indices, values: values, positions: positions)
        }
    }

    /// For a reader that adds this interval's values of the series at `route` into its own
    /// share (`LockedReaderAggregates`): checks that the route still holds, marks the series as receiving
    /// data in the current generation (for `series_ttl`; without an aggregate here, which a
    /// staged sample would still make), and returns its key and, for a sampled series, its
    /// histogram bounds.
    /// - Returns: `nil` when the slot no longer holds the series (it expired).
    func touch(_ route: SeriesRoute) -> (key: MetricKey, bounds: BucketBounds?)? {
        state.withLock { s in
            guard s.index.holds(route) else { return nil }
            let id = route.slot
            Self.markReceiving(&s, id)
            let key = s.index[id].key
            let bounds = key.type.isSampled ? context.bounds(at: s.index[id].boundsIndex) : nil
            return (key, bounds)
        }
    }

    /// Finds or makes the series of a timestamped point (SPEC section 15), counted against
    /// `max_series` as any new series is, and marks it as receiving data in the current
    /// generation (for `series_ttl`) without an interval aggregate: the point is not aggregated.
    /// - Returns: the series' key, or `nil` when `max_series` series are tracked.
    func admitPoint(key: UnsafeRawBufferPointer, hash: UInt64, type: MetricType) -> MetricKey? {
        state.withLock { s in
            guard let id = series(&s, key: key, hash: hash, type: type) else { return nil }
            Self.markReceiving(&s, id)
            return s.index[id].key
        }
    }

    /// Marks the series in slot `id` as receiving data in the current generation, keeping its
    /// interval aggregate if this generation made one (the lock held).
    @inline(__always)
    private static func markReceiving(_ s: inout State, _ id: Int32) {
        guard s.index[id].lastGeneration != s.generation else { return }
        s.index[id].lastGeneration = s.generation
        s.index[id].position = -1
    }

    /// Finds or creates the series of `key` (the lock held).
    /// - Returns: its slot, or `nil` when `max_series` series are tracked.
    @inline(__always)
    private func series(_ s: inout State, key: UnsafeRawBufferPointer, hash: UInt64, type: MetricType) -> Int32? {
        if let found = s.index.find(key, hash: hash) { return found }
        let context = self.context
        guard let series = context.budget.admit() else { return nil }
        let owned = MetricKey(bytes: Array(key), series: series)
        let bounds = type.isSampled ? context.boundsIndex(of: owned) : 0
        if context.mappingOptions != nil {
            (owned.isMapped ? context.newMappedSeries : context.newUnmappedSeries).add(1)
        }
        context.tagLimits?.retain(owned)
        return s.index.insert(owned, hash: hash, generation: s.generation, boundsIndex: bounds)
    }

    /// The position of the interval aggregate of the series in slot `id`, made with the
    /// series' first sample of the interval (the lock held).
    @inline(__always)
    private func aggregate(_ s: inout State, id: Int32, type: MetricType) -> Int {
        let generation = s.generation
        let known = Int(s.index[id].position)
        if s.index[id].lastGeneration == generation, known >= 0 { return known }
        let key = s.index[id].key
        let position: Int
        switch type {
        case .counter:
            position = s.interval.counters.count
            s.interval.counters.append(CounterAggregate(key: key, sum: 0))
        case .gauge:
            position = s.interval.gauges.count
            s.interval.gauges.append(GaugeAggregate(key: key, hasSet: false, value: 0, delta: 0))
        case .set:
            // Sized for as many members as the last interval's; the hint then follows this one's.
            position = s.interval.sets.count
            s.interval.sets.append(
                SetAggregate(key: key, members: MemberSet(expected: Int(s.index[id].setSizeHint), limit: context.maxSetMembers)))
            s.index[id].setSizeHint = 0
        case .timer, .histogram, .distribution:
            let arena: SampleArena
            if let existing = s.interval.arena {
                arena = existing
            } else {
                arena = SampleArena()
                s.interval.arena = arena
            }
            position = s.interval.samples.count
            let bounds = context.bounds(at: s.index[id].boundsIndex)
            s.interval.samples.append(SampleAggregate(key: key, bounds: bounds, arena: arena))
        }
        s.index[id].position = Int32(position)
        s.index[id].lastGeneration = generation
        return position
    }

    /// Adds each sample's values to its aggregate at `positions` (-1: rejected), in order
    /// (the lock held).
    @inline(__always)
    private func add(
        _ s: inout State, samples: UnsafeMutableBufferPointer<StagedSample>, indices: UnsafeBufferPointer<Int32>,
        values: UnsafeBufferPointer<ParsedValue>, positions: UnsafeMutableBufferPointer<Int32>
    ) {
        let maxSamples = self.maxSamples
        let arena = s.interval.arena
        s.interval.counters.withUnsafeMutableBufferPointer { counters in
            s.interval.gauges.withUnsafeMutableBufferPointer { gauges in
                s.interval.sets.withUnsafeMutableBufferPointer { sets in
                    s.interval.samples.withUnsafeMutableBufferPointer { sampled in
                        for (k, i) in indices.enumerated() where positions[k] >= 0 {
                            let e = samples[Int(i)]
                            let position = Int(positions[k])
                            switch e.type {
                            case .counter:
                                var sum = counters[position].sum
                                e.forEachValue(in: values) { v in sum += v.value / e.rate }
                                counters[position].sum = sum
                                counters[position].lines &+= 1
                            case .gauge:
                                e.forEachValue(in: values) { v in gauges[position].apply(v) }
                                // (A gauge's operations sealed from a reader's share are no line.)
                                gauges[position].lines &+= e.datagram >= 0 ? 1 : 0
                            case .set:
                                sets[position].lines &+= 1
                                sets[position].members.insert(e.payload)
                                let wanted = UInt32(clamping: sets[position].members.count &* 2)
                                if wanted > s.index[e.route.slot].setSizeHint { s.index[e.route.slot].setSizeHint = wanted }
                            case .timer, .histogram, .distribution:
                                let weight = 1 / e.rate
                                e.forEachValue(in: values) { v in
                                    sampled[position].add(
                                        v.value, weight: weight, maxSamples: maxSamples, arena: arena.unsafelyUnwrapped,
                                        rng: &s.rng)
                                }
                            }
                        }
                    }
                }
            }
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
    /// - Parameter mappedCutoffs: per mapping options number (`MetricKey.mappingOptions`), the
    ///   cutoff of series whose rule sets a `ttl` (0: they never expire); empty when none does.
    func sweep(cutoff: UInt32, mappedCutoffs: [UInt32?] = [], limit: Int) -> (removed: [MetricKey], done: Bool) {
        let budget = context.budget
        return state.withLock { s in
            var removed: [MetricKey] = []
            let end = min(s.index.slots.count, s.sweepCursor + limit)
            var id = s.sweepCursor
            while id < end {
                let slot = s.index.slots[id]
                var seriesCutoff = cutoff
                if !mappedCutoffs.isEmpty, slot.keyLength > 0, let n = slot.key.mappingOptions, Int(n) < mappedCutoffs.count,
                    let own = mappedCutoffs[Int(n)]
                {
                    seriesCutoff = own
                }
                if slot.keyLength > 0, slot.lastGeneration <= seriesCutoff {
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
