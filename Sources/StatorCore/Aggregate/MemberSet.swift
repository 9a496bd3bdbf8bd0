import CStatorSys

/// Distinct 64-bit member hashes: open addressing, linear probing. The hashes are
/// already seeded and well mixed, so they index the table directly.
///
/// Exact up to `limit` members (`max_set_members`); the member after that turns the set into
/// a `HyperLogLog` sketch of every member so far (the table is freed), so one set never
/// holds more than about `limit × 16` bytes of table or 16 KiB of sketch.
struct MemberSet {
    private var slots: [UInt64] = []
    private var hasZero = false
    /// Past `limit` members: the sketch, and the table is empty.
    private var sketch: HyperLogLog?
    /// Most members counted exactly.
    let limit: Int

    init(limit: Int = AggregationConfiguration.defaultMaxSetMembers) { self.limit = limit }

    /// An empty set with room for `expected` slots (rounded up to a power of two; 0: none yet).
    init(expected: Int, limit: Int = AggregationConfiguration.defaultMaxSetMembers) {
        self.limit = limit
        guard expected > 0 else { return }
        slots = Array(repeating: 0, count: Int.powerOfTwo(atLeast: min(expected, 2 * limit), minimum: 8))
    }

    /// Whether the set switched to a sketch (its count is an estimate).
    var isEstimated: Bool { sketch != nil }

    /// Bytes the set holds for its members: its table, or its sketch.
    var memberBytes: Int { slots.count * MemoryLayout<UInt64>.stride + (sketch?.registers.count ?? 0) }

    /// The number of distinct members: exact, or the sketch's estimate past `limit`.
    var distinct: Double { sketch?.estimate ?? Double(count) }

    /// The seeded hash of the member at `range` of `datagram`: what a set counts.
    @inline(__always)
    static func hash(of range: Range<Int>, in datagram: UnsafeRawBufferPointer, seed: UInt64) -> UInt64 {
        SeriesKeyBuilder.hash(UnsafeRawBufferPointer(rebasing: datagram[range]), seed: seed)
    }

    /// Starts fetching the slot where `member` would go in the set of `aggregate`.
    /// (Static, reading fields through the pointer: a method call on the element would copy it.)
    @inline(__always)
    static func prefetch(_ member: UInt64, in aggregate: UnsafePointer<SetAggregate>) {
        aggregate.pointer(to: \.members.slots).unsafelyUnwrapped.pointee.withUnsafeBufferPointer { b in
            if let base = b.baseAddress, b.count > 0 {
                CStatorSys_prefetch(base + (Int(truncatingIfNeeded: member) & (b.count - 1)))
            }
        }
    }

    /// Where the table's slots start and their mask, for a reader to start fetching a member's
    /// slot ahead without reading the set (`LineIdentityCache.Record.targets`); (0, 0) without a table.
    /// (Static, reading fields through the pointer: a method call on the element would copy it.)
    @inline(__always)
    static func targets(of aggregate: UnsafePointer<SetAggregate>) -> (UInt64, UInt64) {
        aggregate.pointer(to: \.members.slots).unsafelyUnwrapped.pointee.withUnsafeBufferPointer { b in
            guard let base = b.baseAddress, b.count > 0 else { return (0, 0) }
            return (UInt64(UInt(bitPattern: base)), UInt64(b.count - 1))
        }
    }

    /// Number of distinct members while exact (it stays at `limit` once the set is a sketch).
    private(set) var count = 0

    /// Slots of the table (twice the members at most, or a power of two it was sized to).
    var capacity: Int { slots.count }

    @inline(__always)
    mutating func insert(_ member: UInt64) {
        if sketch != nil {
            sketch?.insert(member)
            return
        }
        if member == 0 {
            if !hasZero {
                if count >= limit { return switchToSketch(adding: member) }
                hasZero = true
                count += 1
            }
            return
        }
        if (count + 1) * 2 > slots.count {
            if count >= limit, !contains(member) { return switchToSketch(adding: member) }
            grow()
        }
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: member) & mask
        while true {
            let existing = slots[i]
            if existing == member { return }
            if existing == 0 {
                if count >= limit { return switchToSketch(adding: member) }
                slots[i] = member
                count += 1
                return
            }
            i = (i + 1) & mask
        }
    }

    /// Whether `member` (not 0) is in the table.
    private func contains(_ member: UInt64) -> Bool {
        guard !slots.isEmpty else { return false }
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: member) & mask
        while slots[i] != 0 {
            if slots[i] == member { return true }
            i = (i + 1) & mask
        }
        return false
    }

    /// The member past `limit`: every member so far and `member` go into a sketch, and the
    /// table is freed. (Out of line: once per set and interval at most.)
    @inline(never)
    private mutating func switchToSketch(adding member: UInt64) {
        var hll = HyperLogLog()
        hll.insert(member)
        becomeSketch(from: hll)
    }

    /// Folds the table's members into `start` and keeps that as the set's sketch.
    private mutating func becomeSketch(from start: HyperLogLog) {
        var hll = start
        if hasZero { hll.insert(0) }
        for m in slots where m != 0 { hll.insert(m) }
        sketch = hll
        slots = []
        hasZero = false
    }

    /// Adds every member of `other` (merging one series' interval from two places).
    mutating func formUnion(_ other: MemberSet) {
        if let theirs = other.sketch {
            if sketch == nil { becomeSketch(from: theirs) } else { sketch?.formUnion(theirs) }
            return
        }
        if other.hasZero { insert(0) }
        for member in other.slots where member != 0 { insert(member) }
    }

    private mutating func grow() {
        let old = slots
        slots = Array(repeating: 0, count: max(8, old.count * 2))
        let mask = slots.count - 1
        for member in old where member != 0 {
            var i = Int(truncatingIfNeeded: member) & mask
            while slots[i] != 0 { i = (i + 1) & mask }
            slots[i] = member
        }
    }
}
