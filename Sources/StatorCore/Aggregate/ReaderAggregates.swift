/// What staging a share's gauge in the shards needs besides its aggregate (see
/// `ReaderAggregator.sealGauge`): the series' key hash and the shard's route to it.
struct GaugeSeal {
    var keyHash: UInt64
    var route: SeriesRoute
}

/// One reader's share of the open interval: the aggregates of the counters, gauges, sets,
/// timers, histograms and distributions that this reader adds to without a shard (`LockedReaderAggregates`).
struct ReaderAggregates: ~Copyable {
    var counters = AggregateList<CounterAggregate>()
    /// A gauge's operations composed (the last set and the deltas after it, or only deltas),
    /// applied after what its shard holds for the interval (`IntervalMerge`).
    var gauges = AggregateList<GaugeAggregate>()
    /// Per gauge (same positions): what staging it needs.
    var gaugeSeals = AggregateList<GaugeSeal>()
    /// Each gauge's position in `gauges` by its key hash, for a gauge line that has to be
    /// staged: the share's operations on its series are staged first (`ReaderAggregator.sealGauge`).
    var gaugeByHash: [UInt64: Int32] = [:]
    /// Two gauges here have one key hash: a staged gauge line then stages every gauge's operations.
    var gaugeHashesCollide = false
    var sets = AggregateList<SetAggregate>()
    var samples = AggregateList<SampleAggregate>()
    /// Which series have an aggregate here, and where.
    var index = SeriesPositions()
    /// Holds the values and bucket counts of `samples`; made with the interval's first one.
    var arena: SampleArena?
    /// `arena` without the retain and release that reading a strong reference costs per value.
    /// SAFETY: set together with `arena`, which keeps the object alive, and cleared with it.
    var arenaReference: Unmanaged<SampleArena>?
    /// Counts this share's intervals (as the shards' `generation` counts theirs): a `LineIdentityCache`
    /// record's `shareGeneration` names the interval its `localPosition` belongs to.
    var generation: UInt32 = 1
    /// For the reservoirs of this reader's sampled series.
    var rng: SplitMix64

    init(rng: SplitMix64) { self.rng = rng }

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
