/// Roll-up changes not yet folded into the `rollups` table. Each flush merges its changes in
/// here; then, in one transaction, it folds some of the waiting rows into the table and saves
/// the rest as one blob (`RollupStore.write`). So the table and the blob together always hold
/// every flushed value, while a flush writes a bounded number of table rows however many
/// tenants send (`RollupSink.foldCount`).
///
/// A fold takes the waiting rows of the next tag values in the table's order after the last
/// fold's (a sweep that wraps around): their rows sit together in the table's B-tree, so a
/// fold dirties few pages, and every row is folded within one sweep.
///
/// Names, tag values, days and types are interned: a row is four small numbers and its
/// values, hashed and saved without its strings. A row keeps its slot while it waits, and
/// the series that add to it share a group that knows the slot (`add(group:day:_:)`).
struct UnfoldedRows {
    /// A row's identity: its tag value, day, name and type, as interned numbers.
    struct ID: Hashable {
        var key: Int32
        var day: Int32
        var name: Int32
        var type: Int32

        static let free = ID(key: -1, day: -1, name: -1, type: -1)
    }

    struct Entry {
        var id: ID
        var values: RollupValues
    }

    /// The rows of one tag value, name and type, one per day: all the series that add to
    /// them (their other tags differ) share the group, and it knows the day and slot of the
    /// row it made last, so a flush finds a series' row without hashing, and a new day's rows
    /// are made without hashing either.
    struct Group {
        var key: Int32
        var name: Int32
        var type: Int32
        var day: Int32 = -1
        var slot: Int32 = -1
    }

    private struct GroupKey {
        var key: Int32
        var name: Int32
        var type: Int32
    }

    /// Interned strings: `keys`, `days`, `names` and `types`, in that order.
    private(set) var strings = [Interner](repeating: Interner(), count: 4)
    /// Changes when the strings are interned again: group numbers from before are void.
    private(set) var epoch: UInt32 = 0
    /// The rows, each in its slot until folded; a free slot's id is `ID.free`. After a clock
    /// step back over midnight, a day's row can wait in two slots: both are folded, and
    /// queries add them up. The blob's encoder reads them in place, with no closure per row.
    private(set) var slots: [Entry] = []
    private var freeSlots: [Int32] = []
    private var groups: [Group] = []
    private var groupNumbers = GroupIndex()
    /// `strings[3]` numbers by `MetricType.rawValue` (-1: not interned yet).
    private var typeNumbers: [Int32] = []
    /// Where the next fold starts: after this tag value.
    private var sweptTo: String?
    /// The strings' places in byte order, computed again when a table has grown.
    private var ranks: [[Int32]] = [[], [], [], []]

    /// Rows waiting.
    private(set) var count = 0
    var isEmpty: Bool { count == 0 }

    /// A day's number.
    mutating func day(_ day: String) -> Int32 { strings[1].id(day) }

    /// The group of a tag value (its bytes), a name (its number: `nameNumber`) and a type:
    /// what a caller remembers for a series.
    /// - Parameter expected: how many more new groups may follow (the caller's series still
    ///   to route): when the table is full, room for them is made at once, not by doubling
    ///   step by step (each step hashes every group again).
    mutating func group(key: UnsafeRawBufferPointer, nameNumber: Int32, type: MetricType, expected: Int = 0) -> Int32 {
        group(GroupKey(key: strings[0].id(key), name: nameNumber, type: typeNumber(type)), expected: expected)
    }

    /// A name's interned number, which a caller may remember while `epoch` stays the same.
    mutating func nameNumber(_ name: UnsafeRawBufferPointer) -> Int32 { strings[2].id(name) }

    /// The group of a tag value, name and type given as strings (tests and tools).
    mutating func group(key: String, name: String, type: MetricType) -> Int32 {
        group(GroupKey(key: strings[0].id(key), name: strings[2].id(name), type: typeNumber(type)), expected: 0)
    }

    private mutating func group(_ groupKey: GroupKey, expected: Int) -> Int32 {
        if groups.count == groups.capacity {
            groups.reserveCapacity(groups.count + 1 + expected)
            groupNumbers.reserve(groups.count + 1 + expected)
        }
        let found = groupNumbers.number(
            key: groupKey.key, name: groupKey.name, type: groupKey.type, next: Int32(groups.count)
        ) { number in
            let g = groups[Int(number)]
            return g.key == groupKey.key && g.name == groupKey.name && g.type == groupKey.type
        }
        guard found.inserted else { return found.number }
        if freeSlots.isEmpty, slots.count == slots.capacity {
            slots.reserveCapacity(slots.count + 1 + expected)  // a new group's row follows
        }
        groups.append(Group(key: groupKey.key, name: groupKey.name, type: groupKey.type))
        return found.number
    }

    /// A type's interned number, remembered by the type's raw value.
    private mutating func typeNumber(_ type: MetricType) -> Int32 {
        let raw = Int(type.rawValue)
        if raw >= typeNumbers.count { typeNumbers += repeatElement(-1, count: raw + 1 - typeNumbers.count) }
        if typeNumbers[raw] < 0 { typeNumbers[raw] = strings[3].id(type.description) }
        return typeNumbers[raw]
    }

    /// A group's tag value and name.
    func keyAndName(ofGroup number: Int32) -> RollupKey {
        let group = groups[Int(number)]
        return RollupKey(key: strings[0][group.key], name: strings[2][group.name])
    }

    /// Drops every waiting row (the group numbers given so far are void), keeping the storage
    /// for the rows to come.
    mutating func removeAll() {
        slots.removeAll(keepingCapacity: true)
        freeSlots.removeAll(keepingCapacity: true)
        groups.removeAll(keepingCapacity: true)
        groupNumbers.removeAll()
        strings = [Interner](repeating: Interner(), count: 4)
        typeNumbers = []
        ranks = [[], [], [], []]
        count = 0
        epoch &+= 1
    }

    /// Merges a change into a group's row of a day, making the row if it is not waiting.
    mutating func add(group number: Int32, day: Int32, _ change: RollupValues) {
        let group = groups[Int(number)]
        let id = ID(key: group.key, day: day, name: group.name, type: group.type)
        // The group's slot may have been folded, reused by another row, or dropped with all
        // the slots (`remove`): the row is there only if the slot holds its identity.
        if group.day == day, Int(group.slot) < slots.count, slots[Int(group.slot)].id == id {
            slots[Int(group.slot)].values.merge(change)
            return
        }
        let slot: Int32
        if let free = freeSlots.popLast() {
            slot = free
            slots[Int(slot)] = Entry(id: id, values: change)
        } else {
            slot = Int32(slots.count)
            slots.append(Entry(id: id, values: change))
        }
        count += 1
        (groups[Int(number)].day, groups[Int(number)].slot) = (day, slot)
    }

    /// Merges a change into its row (reading a saved blob, rebuilding).
    mutating func restore(_ id: ID, _ change: RollupValues) {
        add(group: group(GroupKey(key: id.key, name: id.name, type: id.type), expected: 0), day: id.day, change)
    }

    /// The row of an entry, with its strings.
    func row(_ entry: Entry) -> RollupRow {
        RollupRow(
            day: strings[1][entry.id.day], key: strings[0][entry.id.key], name: strings[2][entry.id.name],
            type: strings[3][entry.id.type], values: entry.values)
    }

    /// Rows chosen to be folded: their slots, and the rows in the table's primary-key order
    /// (so that the fold visits each B-tree page once, in turn).
    struct Fold {
        var slots: [Int32] = []
        var rows: [RollupRow] = []
        var lastKey: String?
    }

    /// At least `n` waiting rows (all of them when fewer wait), the rows of whole tag values
    /// taken in turn after the last fold's.
    mutating func chooseFold(_ n: Int) -> Fold {
        updateRanks()
        guard n < count else { return fold(where: { _ in true }, lastKey: nil) }
        let keyRanks = ranks[0]
        // Rows waiting per tag value, by the value's place in byte order.
        var perRank = [Int](repeating: 0, count: keyRanks.count)
        for entry in slots where entry.id != .free { perRank[Int(keyRanks[Int(entry.id.key)])] += 1 }
        let byRank = strings[0].strings.indices.sorted { keyRanks[$0] < keyRanks[$1] }
        var start = 0
        if let sweptTo {
            // The first tag value after the last fold's (binary search in byte order).
            var (low, high) = (0, byRank.count)
            while low < high {
                let mid = (low + high) / 2
                if sweptTo.utf8.lexicographicallyPrecedes(strings[0].strings[byRank[mid]].utf8) {
                    high = mid
                } else {
                    low = mid + 1
                }
            }
            start = low == byRank.count ? 0 : low
        }
        var chosen = [Bool](repeating: false, count: keyRanks.count)  // by key number
        var taken = 0
        var rank = start
        var last = start
        while taken < n {
            if perRank[rank] > 0 {
                chosen[byRank[rank]] = true
                taken += perRank[rank]
                last = rank
            }
            rank = (rank + 1) % byRank.count
        }
        return fold(where: { chosen[Int($0.key)] }, lastKey: strings[0].strings[byRank[last]])
    }

    private func fold(where take: (ID) -> Bool, lastKey: String?) -> Fold {
        var chosen = Fold(lastKey: lastKey)
        for (slot, entry) in slots.enumerated() where entry.id != .free && take(entry.id) {
            chosen.slots.append(Int32(slot))
        }
        let r = ranks
        func order(_ slot: Int32) -> (Int32, Int32, Int32, Int32) {
            let id = slots[Int(slot)].id
            return (r[0][Int(id.key)], r[1][Int(id.day)], r[2][Int(id.name)], r[3][Int(id.type)])
        }
        chosen.slots.sort { order($0) < order($1) }
        chosen.rows = chosen.slots.map { row(slots[Int($0)]) }
        return chosen
    }

    /// Takes folded rows out (once their transaction is committed).
    mutating func remove(_ fold: Fold) {
        for slot in fold.slots { free(slot) }
        sweptTo = fold.lastKey
        if isEmpty {
            // The groups stay (their slots are checked before use); the slots start again.
            slots.removeAll(keepingCapacity: true)
            freeSlots.removeAll(keepingCapacity: true)
        }
    }

    /// Forgets the groups (and strings) of series that sent nothing since `day`, if they are
    /// most of them: the tables stay within about twice what recent days used. Once a day;
    /// the callers' group numbers are then void (`epoch`).
    /// - Returns: whether the groups were made again.
    @discardableResult
    mutating func forgetIdleGroups(activeSince day: String) -> Bool {
        let days = strings[1]
        let active = groups.reduce(0) { $0 + ($1.day >= 0 && days[$1.day] >= day ? 1 : 0) }
        guard groups.count - active > active + 4096 else { return false }
        var fresh = UnfoldedRows(epoch: epoch &+ 1, sweptTo: sweptTo)
        for group in groups where group.day >= 0 && days[group.day] >= day {
            let key = GroupKey(
                key: fresh.strings[0].id(strings[0][group.key]), name: fresh.strings[2].id(strings[2][group.name]),
                type: fresh.strings[3].id(strings[3][group.type]))
            _ = fresh.group(key, expected: 0)
        }
        for entry in slots where entry.id != .free {
            let row = row(entry)
            fresh.restore(fresh.id(key: row.key, day: row.day, name: row.name, type: row.type), entry.values)
        }
        self = fresh
        return true
    }

    private mutating func free(_ slot: Int32) {
        slots[Int(slot)].id = .free
        freeSlots.append(slot)
        count -= 1
    }

    private init(epoch: UInt32, sweptTo: String?) {
        self.epoch = epoch
        self.sweptTo = sweptTo
    }

    init() {}

    /// Drops the waiting rows of days before `day` (their days are being deleted).
    /// - Returns: how many.
    mutating func removeDays(before day: String) -> Int {
        let expired = strings[1].strings.map { $0 < day }
        guard expired.contains(true) else { return 0 }
        let before = count
        for slot in slots.indices where slots[slot].id != .free && expired[Int(slots[slot].id.day)] { free(Int32(slot)) }
        return before - count
    }

    private mutating func id(key: String, day: String, name: String, type: String) -> ID {
        ID(key: strings[0].id(key), day: strings[1].id(day), name: strings[2].id(name), type: strings[3].id(type))
    }

    /// Computes the strings' byte-order places again for the tables that grew.
    private mutating func updateRanks() {
        for table in 0..<4 where ranks[table].count != strings[table].count {
            ranks[table] = strings[table].byteOrderRanks()
        }
    }

    /// The waiting rows a query selects, in primary-key order.
    func rows(key: String?, nameGlob: [UInt8]?, start: String, end: String, after cursor: RollupStore.Cursor?)
        -> [RollupRow]
    {
        var selected: [RollupRow] = []
        let keyID = key.map { strings[0].lookup($0) }
        if case .some(.none) = keyID { return [] }  // a tag value with no waiting row
        for entry in slots where entry.id != .free {
            if let keyID, entry.id.key != keyID { continue }
            let day = strings[1][entry.id.day]
            guard day >= start, day <= end else { continue }
            if let nameGlob {
                guard Glob.matches(nameGlob, strings[2][entry.id.name]) else {
                    continue
                }
            }
            let row = row(entry)
            if let cursor, !row.isAfter(cursor) { continue }
            selected.append(row)
        }
        selected.sort { $0.precedes($1) }
        // A day's row waiting in two slots (a clock step back over midnight) is one row.
        var combined: [RollupRow] = []
        combined.reserveCapacity(selected.count)
        for row in selected {
            if let last = combined.last, !last.precedes(row) {
                combined[combined.count - 1].values.merge(row.values)
            } else {
                combined.append(row)
            }
        }
        return combined
    }

    /// Today's sums of each tag value and name (the limits' usage after a restart).
    func sums(day: String, where matches: (String) -> Bool) -> [RollupKey: Double] {
        guard let dayID = strings[1].lookup(day) else { return [:] }
        var sums: [RollupKey: Double] = [:]
        for entry in slots where entry.id != .free && entry.id.day == dayID {
            guard let sum = entry.values.sum else { continue }
            let name = strings[2][entry.id.name]
            guard matches(name) else { continue }
            sums[RollupKey(key: strings[0][entry.id.key], name: name), default: 0] += sum
        }
        return sums
    }

    /// Interns a string of one of the four tables (reading a saved blob).
    mutating func intern(_ string: String, table: Int) { _ = strings[table].id(string) }
}
