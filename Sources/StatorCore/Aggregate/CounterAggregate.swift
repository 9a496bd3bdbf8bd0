/// A counter's interval: the rate-scaled sum.
struct CounterAggregate {
    var key: MetricKey
    var sum: Double
}
