import CStatorSys

/// What staging a share's gauge in the shards needs besides its aggregate (see
/// `ReaderAggregates.sealGauge`): the series' key hash and the shard's route to it.
struct GaugeSeal {
    var keyHash: UInt64
    var route: SeriesRoute
}

/// One reader's share of the open interval: the aggregates of the counters, gauges, sets,
/// timers, histograms and distributions that this reader adds to without a shard
/// (`LockedReaderAggregates`).
///
/// Its state is private: a reader reaches it through the operations below (add a line seen
/// before, prefetch what that add touches, seal a gauge before a gauge line is staged) and the
/// flusher through `take()`. Every operation runs with the share's lock held.
struct ReaderAggregates: ~Copyable {
    private var counters = AggregateList<CounterAggregate>()
    /// A gauge's operations composed (the last set and the deltas after it, or only deltas),
    /// applied after what its shard holds for the interval (`IntervalMerge`).
    private var gauges = AggregateList<GaugeAggregate>()
    /// Per gauge (same positions): what staging it needs.
    private var gaugeSeals = AggregateList<GaugeSeal>()
    /// Each gauge's position in `gauges` by its key hash, for a gauge line that has to be
    /// staged: the share's operations on its series are staged first (`sealGauge`).
    private var gaugeByHash: [UInt64: Int32] = [:]
    /// Two gauges here have one key hash: a staged gauge line then stages every gauge's operations.
    private var gaugeHashesCollide = false
    private var sets = AggregateList<SetAggregate>()
    private var samples = AggregateList<SampleAggregate>()
    /// Which series have an aggregate here, and where.
    private var index = SeriesPositions()
    /// Holds the values and bucket counts of `samples`; made with the interval's first one.
    private var arena: SampleArena?
    /// `arena` without the retain and release that reading a strong reference costs per value.
    /// SAFETY: only ever equal to `arena` (set and cleared together), whose strong reference
    /// keeps the object alive for as long as this one is read.
    private var arenaReference: Unmanaged<SampleArena>?
    /// Counts this share's intervals (as the shards' `generation` counts theirs): a
    /// `LineIdentityCache` record's `shareGeneration` names the interval its `localPosition`
    /// belongs to. Never 0, which a fresh record holds.
    private(set) var generation: UInt32 = 1
    /// For the reservoirs of this reader's sampled series.
    private var rng: SplitMix64

    init(rng: SplitMix64) { self.rng = rng }

    /// How many aggregates the open interval holds, by list.
    var sizes: (counters: Int, gauges: Int, sets: Int, samples: Int) {
        (counters.count, gauges.count, sets.count, samples.count)
    }

    /// Adds a converted value (`member` for a set, else `number`) of the line whose record is
    /// at `position` to the series' aggregate here, making the aggregate with the series'
    /// first line of the interval (`register`).
    /// - Returns: `false` when the record's route no longer holds (the line is staged instead).
    @inline(__always)
    mutating func add(
        record position: UInt64, member: UInt64, number: ParsedValue, cache: borrowing LineIdentityCache,
        table: ShardedTable, maxSamples: Int
    ) -> Bool {
        let record = cache[position]
        var local = Int(record.localPosition)
        if record.shareGeneration != generation {
            guard let registered = register(record: position, cache: cache, table: table) else { return false }
            local = registered
        }
        // (Most lines have rate 1: no division then, which the add would wait for.)
        let unsampled = record.rate == 1
        switch record.metricType {
        case .counter:
            let counter = counters.pointer(local)
            counter.pointee.sum += unsampled ? number.value : number.value / record.rate
            counter.pointee.lines &+= 1
        case .set:
            let set = sets.pointer(local)
            set.pointee.lines &+= 1
            set.pointee.members.insert(member)
            let wanted = UInt32(clamping: set.pointee.members.count &* 2)
            if wanted > cache[position].setHint { cache.setSetHint(position, wanted) }
            cache.setTargets(position, MemberSet.targets(of: set))
        case .timer, .histogram, .distribution:
            let aggregate = samples.pointer(local)
            // `register` made the arena with the interval's first sampled series.
            arenaReference.unsafelyUnwrapped._withUnsafeGuaranteedRef { arena in
                aggregate.pointee.add(
                    number.value, weight: unsampled ? 1 : 1 / record.rate, maxSamples: maxSamples, arena: arena,
                    rng: &rng)
            }
            cache.setTargets(position, SampleAggregate.targets(of: aggregate))
        case .gauge:
            let gauge = gauges.pointer(local)
            gauge.pointee.apply(number)
            gauge.pointee.lines &+= 1
        }
        return true
    }

    /// The first line of a series in this interval (or since its record was made again): asks
    /// the shard for the series, finds or makes the aggregate here, and notes its position in
    /// the record. (Out of line: once per series and interval, off the per-line path.)
    /// - Returns: the aggregate's position, or `nil` when the route no longer holds.
    @inline(never)
    private mutating func register(
        record position: UInt64, cache: borrowing LineIdentityCache, table: ShardedTable
    ) -> Int? {
        let record = cache[position]
        guard let found = table.touch(hash: record.keyHash, route: record.route) else { return nil }
        let local: Int
        if let known = index.position(of: found.key.series) {
            local = known  // the series has an aggregate here already (its record was made again since)
        } else {
            local = open(
                record.metricType, key: found.key, bounds: found.bounds, setHint: record.setHint,
                seal: GaugeSeal(keyHash: record.keyHash, route: record.route),
                maxSetMembers: table.configuration.maxSetMembers)
            index.insert(found.key.series, at: local)
        }
        cache.setLocal(position, generation: generation, at: Int32(local))
        if record.metricType == .set { cache.setSetHint(position, 0) }
        return local
    }

    /// Makes the aggregate of a series for the open interval.
    /// - Returns: its position in the list for `type`.
    private mutating func open(
        _ type: MetricType, key: MetricKey, bounds: BucketBounds?, setHint: UInt32, seal: GaugeSeal,
        maxSetMembers: Int
    ) -> Int {
        switch type {
        case .counter:
            return counters.append(CounterAggregate(key: key, sum: 0))
        case .set:
            return sets.append(SetAggregate(key: key, members: MemberSet(expected: Int(setHint), limit: maxSetMembers)))
        case .timer, .histogram, .distribution:
            let arena = self.arena ?? SampleArena()
            if self.arena == nil {
                self.arena = arena
                arenaReference = Unmanaged.passUnretained(arena)
            }
            // The shard hands out bounds with every sampled series' key.
            return samples.append(SampleAggregate(key: key, bounds: bounds.unsafelyUnwrapped, arena: arena))
        case .gauge:
            _ = gaugeSeals.append(seal)
            let local = gauges.append(GaugeAggregate(key: key, hasSet: false, value: 0, delta: 0))
            if gaugeByHash.updateValue(Int32(local), forKey: seal.keyHash) != nil { gaugeHashesCollide = true }
            return local
        }
    }

    /// Starts fetching the aggregate of the line whose record is at `position`, when `add`
    /// will add to it, and what adding writes outside it, from the addresses the record keeps
    /// (`LineIdentityCache.Record.targets`): reading them from the aggregate would wait for it
    /// here. For a set, the slot of the member `value` of `datagram`: its hash is computed here too.
    @inline(__always)
    func prefetch(
        record position: UInt64, cache: borrowing LineIdentityCache, datagram: UnsafeRawBufferPointer,
        value: Range<Int>, memberSeed: UInt64
    ) {
        let record = cache[position]
        // A record of an earlier interval names no aggregate here (`register` runs first).
        guard record.shareGeneration == generation else { return }
        let local = Int(record.localPosition)
        let (first, second) = record.targets
        switch record.metricType {
        case .counter:
            CStatorSys_prefetch(counters.pointer(local))
        case .set:
            CStatorSys_prefetch(sets.pointer(local))
            // SAFETY: a hint only; a stale address is fetched, never dereferenced.
            guard first != 0, let slots = UnsafeRawPointer(bitPattern: UInt(first)) else { return }
            CStatorSys_prefetch(slots - 16)  // the table's header: its count and reference count
            if StatsdParser.isMember(value) {
                let member = MemberSet.hash(of: value, in: datagram, seed: memberSeed)
                CStatorSys_prefetch(slots + (Int(truncatingIfNeeded: member & second) &* 8))
            }
        case .timer, .histogram, .distribution:
            let aggregate = UnsafeRawPointer(samples.pointer(local))
            CStatorSys_prefetch(aggregate)
            CStatorSys_prefetch(aggregate + 64)
            // SAFETY: hints only, as above.
            if let buckets = UnsafeRawPointer(bitPattern: UInt(first)) {
                CStatorSys_prefetch(buckets)
                CStatorSys_prefetch(buckets + 64)
            }
            if let slot = UnsafeRawPointer(bitPattern: UInt(second)) { CStatorSys_prefetch(slot) }
        case .gauge:
            CStatorSys_prefetch(gauges.pointer(local))
        }
    }

    /// Before a gauge line is staged: if this share holds operations of the line's series
    /// (found by `keyHash`), stages them first, composed into one (the last set and later
    /// deltas as one set, or the deltas as one delta), and empties the aggregate here.
    /// A staged line reaches its shard at the commit, and the shards' part of an interval is
    /// applied before the shares': without this, operations the line came after (another
    /// identity of the series, such as tags in another order) would be applied after it.
    /// Operations that come later still compose here. (Two gauges of one key hash here:
    /// every gauge's operations are staged.)
    mutating func sealGauge(keyHash: UInt64, into staged: inout StagedBatch) {
        if gaugeHashesCollide {
            for k in 0..<gauges.count { sealGauge(at: k, into: &staged) }
        } else if let k = gaugeByHash[keyHash] {
            sealGauge(at: Int(k), into: &staged)
        }
    }

    /// Stages the operations of the gauge at `k` and empties it. Its line count stays here:
    /// the staged operation is no line of its own (`datagram` -1, which the shard does not count).
    private mutating func sealGauge(at k: Int, into staged: inout StagedBatch) {
        let g = gauges.pointer(k)
        guard g.pointee.hasSet || g.pointee.delta != 0 else { return }  // nothing to apply
        let seal = gaugeSeals.pointer(k).pointee
        let op = g.pointee.composed
        let key = g.pointee.key.bytes
        let offset = key.withUnsafeBytes { staged.appendKey($0) }
        // (No line of its own: `datagram` -1 keeps it out of the rejection log.)
        staged.samples.append(
            StagedSample(
                hash: seal.keyHash, rate: 1, payload: op.value.bitPattern,
                route: seal.route, keyOffset: offset, keyLength: Int32(key.count), valueStart: 0, valueEnd: 0,
                datagram: -1, lineStart: 0, lineEnd: 0, cacheRecord: LineIdentityCache.none, type: .gauge,
                values: .init(inline: op.isDelta)))
        g.pointee.hasSet = false
        g.pointee.value = 0
        g.pointee.delta = 0
    }

    /// Moves the interval's aggregates out and starts the next generation.
    mutating func take() -> IntervalAggregates {
        let taken = IntervalAggregates(
            counters: counters.take(), gauges: gauges.take(), sets: sets.take(), samples: samples.take(), arena: arena)
        gaugeSeals.removeAll()
        gaugeByHash.removeAll(keepingCapacity: true)
        gaugeHashesCollide = false
        index.removeAll()
        arena = nil
        arenaReference = nil
        generation &+= 1
        if generation == 0 { generation = 1 }  // 0 is a fresh record's
        return taken
    }
}
