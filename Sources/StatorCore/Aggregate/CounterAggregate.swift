/// A counter's interval: the rate-scaled sum.
struct CounterAggregate {
    var key: MetricKey
    var sum: Double
    /// Lines received in the interval (for `/api/v1/top`): 8 bytes more per record (24 to 32),
    /// written in the cache line the add already holds.
    var lines: UInt32 = 0
}
