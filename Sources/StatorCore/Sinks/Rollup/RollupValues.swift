/// What a flush adds to one roll-up row: `nil` where the row's type keeps no such value.
/// (Five numbers and a byte of which are present: a waiting row fits one cache line.)
struct RollupValues: Equatable, Sendable {
    private var numbers: (Double, Double, Double, Double, Double) = (0, 0, 0, 0, 0)
    private var present: UInt8 = 0

    init(sum: Double? = nil, count: Double? = nil, min: Double? = nil, max: Double? = nil, last: Double? = nil) {
        (self.sum, self.count, self.min, self.max, self.last) = (sum, count, min, max, last)
    }

    /// Counters, timers, histograms, distributions.
    var sum: Double? {
        get { present & 1 != 0 ? numbers.0 : nil }
        set { (numbers.0, present) = (newValue ?? 0, newValue == nil ? present & ~1 : present | 1) }
    }
    /// Timers, histograms, distributions (rate-weighted, as the JSON lines' `count`).
    var count: Double? {
        get { present & 2 != 0 ? numbers.1 : nil }
        set { (numbers.1, present) = (newValue ?? 0, newValue == nil ? present & ~2 : present | 2) }
    }
    /// Timers, histograms, distributions, gauges.
    var min: Double? {
        get { present & 4 != 0 ? numbers.2 : nil }
        set { (numbers.2, present) = (newValue ?? 0, newValue == nil ? present & ~4 : present | 4) }
    }
    var max: Double? {
        get { present & 8 != 0 ? numbers.3 : nil }
        set { (numbers.3, present) = (newValue ?? 0, newValue == nil ? present & ~8 : present | 8) }
    }
    /// Gauges: the last value flushed.
    var last: Double? {
        get { present & 16 != 0 ? numbers.4 : nil }
        set { (numbers.4, present) = (newValue ?? 0, newValue == nil ? present & ~16 : present | 16) }
    }

    static func == (a: RollupValues, b: RollupValues) -> Bool {
        a.sum == b.sum && a.count == b.count && a.min == b.min && a.max == b.max && a.last == b.last
    }

    /// Adds a later change, as the database's upsert does: sums and counts add up, minimums
    /// and maximums widen, `last` replaces.
    mutating func merge(_ change: RollupValues) {
        if let s = change.sum { sum = (sum ?? 0) + s }
        if let c = change.count { count = (count ?? 0) + c }
        if let m = change.min { min = Swift.min(min ?? m, m) }
        if let m = change.max { max = Swift.max(max ?? m, m) }
        if let l = change.last { last = l }
    }
}
