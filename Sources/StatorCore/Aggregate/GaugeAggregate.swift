/// A gauge's interval as composed operations: the last absolute value set
/// (plus deltas after it), or only deltas to add to the previous value.
struct GaugeAggregate {
    var key: MetricKey
    var hasSet: Bool
    /// Lines received in the interval (for `/api/v1/top`), beside `hasSet` in what was padding.
    var lines: UInt32 = 0
    var value: Double
    var delta: Double

    /// The gauge after this interval, given its value before it.
    func resolve(previous: Double) -> Double { hasSet ? value : previous + delta }

    /// Applies one operation: a value sets the gauge, a delta adds to it.
    @inline(__always)
    mutating func apply(_ v: ParsedValue) {
        if !v.isDelta {
            hasSet = true
            value = v.value
        } else if hasSet {
            value += v.value
        } else {
            delta += v.value
        }
    }

    /// The interval's operations as one: the last set (deltas after it included), or the deltas.
    var composed: ParsedValue { ParsedValue(value: hasSet ? value : delta, isDelta: !hasSet) }

    /// Composes `later`, the same series' operations that came after these.
    mutating func then(_ later: GaugeAggregate) { apply(later.composed) }
}
