/// Configuration of the aggregation stage.
public struct AggregationConfiguration: Sendable {
    /// Number of lock shards, a power of two (`shards`).
    public var shards: Int = AggregationConfiguration.defaultShards
    /// Cap on tracked series (`max_series`).
    public var maxSeries: Int = 1_000_000
    /// Exact samples kept per series per interval before the reservoir (`max_samples_per_series`).
    public var maxSamplesPerSeries: Int = 10_000
    /// Members a set counts exactly per interval before its HyperLogLog sketch (`max_set_members`).
    public var maxSetMembers: Int = AggregationConfiguration.defaultMaxSetMembers
    public static let defaultMaxSetMembers = 10_000
    /// Histogram buckets of timers, histograms and distributions (`sinks.prometheus.buckets`, `bucket_overrides`).
    public var buckets = HistogramBuckets()
    /// What one line may carry (`max_name_bytes`, `max_tags`, `max_tag_bytes`); the readers' parsers hold lines to it.
    public var lineLimits = LineLimits()
    /// The mapping rules in force (`mapping_config`), if any: readers name series by them.
    public var mapping: MappingRules?
    /// The tag policy in force (`tags.*`), if any: readers apply it to the tags of new line identities.
    var tagPolicy: TagPolicy?
    /// The clock `|T` timestamps are bounded by (SPEC section 15): the wall clock, or a fixed
    /// one in tests and the fuzzer.
    var clock: @Sendable () -> EpochMillis = WallClock.nowMillis

    /// Eight per core (at least 16): few enough that a reader's commit, which visits every shard
    /// its batch touches, finds several samples per shard (each visit costs a lock and a few
    /// hundred instructions), and enough that readers, one per core, seldom want the same one.
    public static var defaultShards: Int {
        Int.powerOfTwo(atLeast: 8 * ReceiverConfiguration.defaultReaders, minimum: 16)
    }

    public init(
        shards: Int = AggregationConfiguration.defaultShards, maxSeries: Int = 1_000_000, maxSamplesPerSeries: Int = 10_000,
        buckets: HistogramBuckets = HistogramBuckets(), lineLimits: LineLimits = LineLimits(),
        maxSetMembers: Int = AggregationConfiguration.defaultMaxSetMembers
    ) {
        self.maxSetMembers = maxSetMembers
        self.shards = shards
        self.maxSeries = maxSeries
        self.maxSamplesPerSeries = maxSamplesPerSeries
        self.buckets = buckets
        self.lineLimits = lineLimits
    }
}

/// The aggregation stage: series tables sharded by a hash of the series key,
/// each shard behind its own lock, updated concurrently by the reader threads.
public final class ShardedTable: Sendable {
    private let shards: [Shard]
    private let context: ShardContext
    /// Shards minus one: a shard is picked by bits 48 and up of the key hash.
    private let shardMask: Int
    let budget: SeriesBudget
    let configuration: AggregationConfiguration
    /// Seeds the key hash (per process, against crafted collisions).
    let seed: UInt64
    /// Seeds set-member hashes.
    let memberSeed: UInt64
    /// The open interval's DogStatsD events and service checks (at most 10,000, fewer with a
    /// lower `max_series`), drained with the shards.
    let events: EventQueue
    /// The open interval's timestamped points (`|T`, at most 100,000, fewer with a lower
    /// `max_series`), drained with the shards.
    let points: PointQueue
    /// The readers' shares of the open interval, drained with the shards.
    private let shares = PthreadLock(ReaderAggregatesRegistry())
    /// Seeds the shares' reservoirs, and the merge's.
    private let shareSeeds: PthreadLock<SplitMix64>

    /// Creates the table.
    /// - Parameters:
    ///   - configuration: shards, limits.
    ///   - seed: hash seed; random by default.
    public init(configuration: AggregationConfiguration, seed: UInt64 = UInt64.random(in: 0...UInt64.max)) {
        precondition(
            configuration.shards > 0 && configuration.shards <= 1 << 16
                && configuration.shards & (configuration.shards - 1) == 0,
            "shards must be a power of two up to 65536")
        self.configuration = configuration
        self.seed = seed
        events = EventQueue(capacity: min(configuration.maxSeries, 10_000))
        points = PointQueue(capacity: min(configuration.maxSeries, 100_000))
        var rng = SplitMix64(state: seed)
        let budget = SeriesBudget(limit: configuration.maxSeries)
        self.budget = budget
        let memberSeed = rng.next()
        self.memberSeed = memberSeed
        let context = ShardContext(
            budget: budget, maxSamples: configuration.maxSamplesPerSeries, maxSetMembers: configuration.maxSetMembers,
            buckets: configuration.buckets, keySeed: seed, mappingOptions: configuration.mapping?.options,
            tagLimits: configuration.tagPolicy?.limits)
        self.context = context
        shards = (0..<configuration.shards).map { _ in Shard(seed: rng.next(), context: context) }
        shardMask = configuration.shards - 1
        shareSeeds = PthreadLock(SplitMix64(state: rng.next()))
    }

    /// A share for a new reader, drained with the shards until `retire`.
    func makeShare() -> LockedReaderAggregates {
        let share = LockedReaderAggregates(seed: shareSeeds.withLock { $0.next() })
        shares.withLock { $0.live.append(share) }
        return share
    }

    /// Stops draining `share`; what it holds goes out with the next flush.
    func retire(_ share: LockedReaderAggregates) {
        let last = share.drain()
        shares.withLock { s in
            s.live.removeAll { $0 === share }
            if !last.isEmpty { s.retired.append(last) }
        }
    }

    /// See `Shard.admitPoint`.
    @inline(never)
    func admitPoint(key: UnsafeRawBufferPointer, hash: UInt64, type: MetricType) -> MetricKey? {
        shards[shardIndex(hash)].admitPoint(key: key, hash: hash, type: type)
    }

    /// See `Shard.touch`.
    @inline(never)
    func touch(hash: UInt64, route: SeriesRoute) -> (key: MetricKey, bounds: BucketBounds?)? {
        shards[shardIndex(hash)].touch(route)
    }

    /// Makes a reader's key builder (its scratch for the keys of the lines it parses).
    func makeKeyBuilder() -> SeriesKeyBuilder { SeriesKeyBuilder(seed: seed) }

    /// The shard a key hash belongs to (bits 48 and up; the index uses the low bits).
    @inline(__always)
    func shardIndex(_ hash: UInt64) -> Int { Int(truncatingIfNeeded: hash &>> 48) & shardMask }

    /// Number of shards.
    var shardCount: Int { shards.count }

    /// Records a staged batch shard by shard (see `StagedBatch`).
    /// - Parameters:
    ///   - order: scratch for the grouping (reused by the caller).
    ///   - rejected: gets the index of each sample dropped by `max_series`.
    /// Each sample's `route` is left where its shard found or made the series.
    func record(_ batch: inout StagedBatch, order: inout [Int32], starts: inout [Int32], rejected: inout [Int32]) {
        let n = batch.samples.count
        guard n > 0 else { return }
        // Counting sort by shard: stable, so a series' samples keep their order.
        // (Unsafe buffers: an array write per sample would check uniqueness every time.)
        let count = shards.count
        if starts.count != 2 * count + 1 { starts = Array(repeating: 0, count: 2 * count + 1) }
        // order[0..<n]: sample indices grouped by shard; order[n..<2n]: the shards' scratch.
        if order.count < 2 * n { order = Array(repeating: 0, count: 2 * n) }
        batch.samples.withUnsafeBufferPointer { samples in
            starts.withUnsafeMutableBufferPointer { starts in
                order.withUnsafeMutableBufferPointer { order in
                    // starts[0...count]: where each shard's run begins; starts[count+1...]: fill cursors.
                    for k in 0...count { starts[k] = 0 }
                    for e in samples { starts[shardIndex(e.hash) + 1] &+= 1 }
                    for k in 0..<count { starts[k + 1] &+= starts[k] }
                    for k in 0..<count { starts[count + 1 + k] = starts[k] }
                    for (i, e) in samples.enumerated() {
                        let cursor = count + 1 + shardIndex(e.hash)
                        order[Int(starts[cursor])] = Int32(i)
                        starts[cursor] &+= 1
                    }
                }
            }
        }
        let keys = StagedKeys(arena: batch.keyBytes, cache: batch.cacheKeys)
        batch.samples.withUnsafeMutableBufferPointer { samples in
            batch.values.withUnsafeBufferPointer { values in
                order.withUnsafeMutableBufferPointer { order in
                    for k in 0..<count where starts[k + 1] > starts[k] {
                        let run = Int(starts[k])..<Int(starts[k + 1])
                        let indices = UnsafeBufferPointer(UnsafeMutableBufferPointer(rebasing: order[run]))
                        let positions = UnsafeMutableBufferPointer(rebasing: order[(n + run.lowerBound)..<(n + run.upperBound)])
                        shards[k].record(
                            samples: samples, indices: indices, values: values, keys: keys, positions: positions,
                            rejected: &rejected)
                    }
                }
            }
        }
    }

    /// Swaps out every shard's interval and every reader's share of it, and starts
    /// `nextGeneration`. A series with aggregates in several of them comes out once, merged
    /// (`IntervalMerge`).
    func drainAll(nextGeneration: UInt32) -> [IntervalAggregates] {
        // Every share's lock is held across the whole drain, the shards' included: a reader
        // stages and commits a batch under its share's lock, so each batch lands wholly in one
        // interval. (Draining the shards and the shares one after the other let a batch's
        // commit fall in the next interval while the next batch's share operations fell in
        // this one: a gauge's older set would then win.) Order: the table's list, the shares,
        // the shards; a reader takes its share, then shards.
        let drained = shares.withLock { s in
            for share in s.live { share.lock() }
            defer { for share in s.live { share.unlock() } }
            let parts = shards.map { $0.drain(nextGeneration: nextGeneration) }
            var taken = s.retired
            s.retired = []
            for share in s.live { taken.append(share.drainLocked()) }
            return (parts, taken)
        }
        var parts = drained.0
        let extra = drained.1
        var rng = shareSeeds.withLock { SplitMix64(state: $0.next()) }
        IntervalMerge.merge(&parts, extra, maxSamples: configuration.maxSamplesPerSeries, rng: &rng)
        return parts
    }

    /// Slots allocated over all shards, live or free (for tests of the compaction after expiry).
    var slotCount: Int { shards.reduce(0) { $0 + $1.slotCount } }

    /// Forgets every series whose last data came in generation `cutoff` or
    /// earlier, in chunks so that no lock is held for long.
    /// - Returns: the forgotten keys.
    func expire(cutoff: UInt32, mappedCutoffs: [UInt32?] = [], chunk: Int = 4096) -> [MetricKey] {
        var removed: [MetricKey] = []
        for shard in shards {
            while true {
                let (keys, done) = shard.sweep(cutoff: cutoff, mappedCutoffs: mappedCutoffs, limit: chunk)
                removed.append(contentsOf: keys)
                if done { break }
            }
        }
        return removed
    }

    /// New series a mapping rule named, and new series none did (with a mapping configured).
    var newSeriesByMapping: (mapped: UInt64, unmapped: UInt64) {
        (context.newMappedSeries.value, context.newUnmappedSeries.value)
    }

    /// Series currently tracked (`stator_series_active`).
    public var activeSeries: Int { budget.current }
}
