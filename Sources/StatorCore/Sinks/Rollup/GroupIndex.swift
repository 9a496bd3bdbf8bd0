/// The numbers of the waiting rows' groups by their identity (interned tag value, name and
/// type): an open-addressing table with linear probing whose slots hold the identity and the
/// number together, so a lookup reads one 16-byte slot, mostly in one cache line. A new
/// series' group is looked up once, at its first flush; a start routes every series at once.
///
/// The hash mixes the three numbers with a per-process seed (splitmix64's finalizer): the
/// numbers follow the order in which the network's tag values and names arrive, and a crafted
/// order must not make every lookup walk one long run of slots.
struct GroupIndex {
    private struct Slot {
        var key: Int32
        var name: Int32
        var type: Int32
        /// The group's number; -1: an empty slot.
        var number: Int32

        static let empty = Slot(key: 0, name: 0, type: 0, number: -1)
    }

    /// A power of two in size, at most half full, so a probe always ends at an empty slot.
    private var slots: [Slot] = []
    private(set) var count = 0
    private static let seed = UInt64.random(in: 0...UInt64.max)

    /// The number of the group (key, name, type), made `next` when it has none yet.
    /// - Returns: the number, and whether it was made now.
    mutating func number(key: Int32, name: Int32, type: Int32, next: Int32) -> (number: Int32, inserted: Bool) {
        if (count + 1) * 2 > slots.count { reserve(count + 1) }
        let mask = slots.count - 1
        var slot = Self.hash(key, name, type) & mask
        while slots[slot].number >= 0 {
            let s = slots[slot]
            if s.key == key && s.name == name && s.type == type { return (s.number, false) }
            slot = (slot + 1) & mask
        }
        slots[slot] = Slot(key: key, name: name, type: type, number: next)
        count += 1
        return (next, true)
    }

    /// Makes room for `n` groups in all, at most half filling the table.
    mutating func reserve(_ n: Int) {
        guard n * 2 > slots.count else { return }
        var size = Swift.max(16, slots.count)
        while size < n * 2 { size *= 2 }
        let old = slots
        slots = [Slot](repeating: .empty, count: size)
        let mask = size - 1
        for s in old where s.number >= 0 {
            var slot = Self.hash(s.key, s.name, s.type) & mask
            while slots[slot].number >= 0 { slot = (slot + 1) & mask }
            slots[slot] = s
        }
    }

    /// Forgets every group, keeping the table's storage.
    mutating func removeAll() {
        for i in slots.indices { slots[i] = .empty }
        count = 0
    }

    private static func hash(_ key: Int32, _ name: Int32, _ type: Int32) -> Int {
        let packed = UInt64(UInt32(bitPattern: key)) << 32 | UInt64(UInt32(bitPattern: name))
        var mixer = SplitMix64(state: packed ^ seed ^ (UInt64(UInt32(bitPattern: type)) &* 0xFF51_AFD7_ED55_8CCD))
        return Int(truncatingIfNeeded: mixer.next())
    }
}
