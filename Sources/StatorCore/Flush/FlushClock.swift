/// The two clocks the flusher reads: the wall clock, which stamps batches and says where the
/// boundaries are, and the monotonic clock, which measures intervals, schedules the sleeps
/// and ages series for `series_ttl` (SPEC section 2, "Time"). Injected, so that a test can
/// step the wall clock both ways without waiting.
///
/// Implementation requirements: `monotonicMillis` never goes back; `wait` returns at
/// `deadline` at the latest, or earlier when `lock` is signalled, with `lock` held throughout
/// as `ConditionLock.wait(until:)` requires.
public protocol FlushClock: Sendable {
    /// Wall-clock now, milliseconds since the Unix epoch (may step either way).
    func wallMillis() -> EpochMillis
    /// Monotonic now, in milliseconds from an arbitrary origin.
    func monotonicMillis() -> Int64
    /// Waits, `lock` held, until the monotonic clock reads `deadline` or `lock` is signalled.
    func wait(untilMonotonic deadline: Int64, on lock: ConditionLock)
}

/// The system's `CLOCK_REALTIME` and `CLOCK_MONOTONIC`.
public struct SystemFlushClock: FlushClock {
    public init() {}

    public func wallMillis() -> EpochMillis { WallClock.nowMillis() }

    public func monotonicMillis() -> Int64 { Int64((WallClock.monotonicSeconds() * 1000).rounded(.down)) }

    public func wait(untilMonotonic deadline: Int64, on lock: ConditionLock) {
        _ = lock.wait(until: Double(deadline) / 1000)
    }
}
