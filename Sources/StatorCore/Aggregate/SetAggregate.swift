/// A set's interval: hashes of the distinct members (64-bit, seeded).
struct SetAggregate {
    var key: MetricKey
    var members = MemberSet()
}
