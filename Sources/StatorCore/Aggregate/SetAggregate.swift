/// A set's interval: hashes of the distinct members (64-bit, seeded).
struct SetAggregate {
    var key: MetricKey
    var members = MemberSet()
    /// Lines received in the interval (for `/api/v1/top`): 8 bytes more per record (56 to 64).
    var lines: UInt32 = 0
}
