import Synchronization

/// Counts tracked series across all shards and enforces `max_series`.
final class SeriesBudget: Sendable {
    private let count = Atomic<Int>(0)
    let limit: Int

    init(limit: Int) { self.limit = limit }

    /// Takes one series from the budget.
    /// - Returns: `false` (taking nothing) when `limit` series are already tracked.
    @inline(__always)
    func admit() -> Bool {
        let now = count.wrappingAdd(1, ordering: .relaxed).newValue
        if now > limit {
            count.wrappingSubtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    /// Returns one series to the budget.
    func release() { count.wrappingSubtract(1, ordering: .relaxed) }

    /// Series currently tracked.
    var current: Int { count.load(ordering: .relaxed) }
}
