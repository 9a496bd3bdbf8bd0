import Synchronization

/// Counts tracked series across all shards, enforces `max_series`, and numbers them (`SeriesID`).
final class SeriesBudget: Sendable {
    private struct Numbers {
        /// Numbers given back by expired series, taken again first (so numbers stay dense).
        var free: [UInt32] = []
        /// The lowest number never given out.
        var next: UInt32 = 0
        var incarnation: UInt32 = 0
    }

    private let count = Atomic<Int>(0)
    private let numbers = PthreadLock(Numbers())
    let limit: Int

    init(limit: Int) { self.limit = limit }

    /// Takes one series from the budget and numbers it.
    /// - Returns: its number; `nil` (taking nothing) when `limit` series are already tracked.
    @inline(__always)
    func admit() -> SeriesID? {
        let now = count.wrappingAdd(1, ordering: .relaxed).newValue
        if now > limit {
            count.wrappingSubtract(1, ordering: .relaxed)
            return nil
        }
        return numbers.withLock { n in
            n.incarnation &+= 1
            if let index = n.free.popLast() { return SeriesID(index: index, incarnation: n.incarnation) }
            n.next += 1
            return SeriesID(index: n.next - 1, incarnation: n.incarnation)
        }
    }

    /// Returns an expired series to the budget, and its number for reuse.
    func release(_ series: SeriesID) {
        // (After a mass expiry the free list holds up to `max_series` numbers: 4 bytes each, bounded.)
        numbers.withLock { $0.free.append(series.index) }
        count.wrappingSubtract(1, ordering: .relaxed)
    }

    /// Series currently tracked.
    var current: Int { count.load(ordering: .relaxed) }
}
