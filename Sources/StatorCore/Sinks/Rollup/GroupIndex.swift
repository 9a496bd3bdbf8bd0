/// The numbers of the waiting rows' groups by their identity (interned tag value, name and
/// type): an open-addressing table with linear probing. A slot is 8 bytes, the high half of
/// the group's hash and its number, so the table of 200,000 groups stays within 4 MB: a
/// start routes every series at once, and each new group is a lookup at a random place.
/// A slot whose hash half matches is confirmed by the caller (`isGroup`), against the group
/// itself.
///
/// The hash mixes the three numbers with a per-process seed (splitmix64's finalizer): the
/// numbers follow the order in which the network's tag values and names arrive, and a crafted
/// order must not make every lookup walk one long run of slots.
struct GroupIndex {
    /// `hash << 32 | (number + 1)`; 0: an empty slot. A power of two in size, at most half
    /// full, so a probe always ends at an empty slot. A slot's place comes from its hash
    /// half, so growing needs no group.
    private var slots: [UInt64] = []
    private(set) var count = 0
    private static let seed = UInt64.random(in: 0...UInt64.max)

    /// The number of the group (key, name, type), made `next` when it has none yet.
    /// - Parameter isGroup: whether the group of a number is (key, name, type).
    /// - Returns: the number, and whether it was made now.
    mutating func number(key: Int32, name: Int32, type: Int32, next: Int32, isGroup: (Int32) -> Bool)
        -> (number: Int32, inserted: Bool)
    {
        if (count + 1) * 2 > slots.count { reserve(count + 1) }
        let mask = slots.count - 1
        let hash = Self.hash(key, name, type)
        var slot = Int(hash) & mask
        while slots[slot] != 0 {
            let s = slots[slot]
            let number = Int32(truncatingIfNeeded: s & 0xFFFF_FFFF) - 1
            if UInt32(truncatingIfNeeded: s >> 32) == hash, isGroup(number) { return (number, false) }
            slot = (slot + 1) & mask
        }
        slots[slot] = UInt64(hash) << 32 | UInt64(UInt32(next + 1))
        count += 1
        return (next, true)
    }

    /// Makes room for `n` groups in all, at most half filling the table.
    mutating func reserve(_ n: Int) {
        guard n * 2 > slots.count else { return }
        var size = Swift.max(16, slots.count)
        while size < n * 2 { size *= 2 }
        let old = slots
        slots = [UInt64](repeating: 0, count: size)
        let mask = size - 1
        for s in old where s != 0 {
            var slot = Int(s >> 32) & mask
            while slots[slot] != 0 { slot = (slot + 1) & mask }
            slots[slot] = s
        }
    }

    /// Forgets every group, keeping the table's storage.
    mutating func removeAll() {
        for i in slots.indices { slots[i] = 0 }
        count = 0
    }

    private static func hash(_ key: Int32, _ name: Int32, _ type: Int32) -> UInt32 {
        let packed = UInt64(UInt32(bitPattern: key)) << 32 | UInt64(UInt32(bitPattern: name))
        var mixer = SplitMix64(state: packed ^ seed ^ (UInt64(UInt32(bitPattern: type)) &* 0xFF51_AFD7_ED55_8CCD))
        return UInt32(truncatingIfNeeded: mixer.next() >> 32)
    }
}
