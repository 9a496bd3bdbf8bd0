/// A reader's share of the aggregation, so that a line seen before costs no staging, no
/// grouping and no shard lock: the reader adds its value straight into an aggregate of its
/// own, found through the line's `LineIdentityCache` record.
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
final class LockedReaderAggregates: Sendable {
    private let interval: PthreadLock<ReaderAggregates>

    init(seed: UInt64) { interval = PthreadLock(ReaderAggregates(rng: SplitMix64(state: seed))) }

    @inline(__always)
    func lock() { interval.lock() }

    @inline(__always)
    func unlock() { interval.unlock() }

    /// The open interval; touch only between `lock()` and `unlock()`.
    var state: UnsafeMutablePointer<ReaderAggregates> { interval.unsafeValue }

    /// Swaps the open interval out and starts the next generation.
    func drain() -> IntervalAggregates { interval.withLock { $0.take() } }

    /// `drain()` with the lock held by the caller.
    func drainLocked() -> IntervalAggregates { interval.unsafeValue.pointee.take() }
}

/// The shares the table drains at each flush, and what retired readers left.
struct ReaderAggregatesRegistry {
    var live: [LockedReaderAggregates] = []
    /// Intervals of readers that stopped (their last values go out with the next flush).
    var retired: [IntervalAggregates] = []
}
