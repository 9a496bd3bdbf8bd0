/// What `/api/v1/top` is computed from: per statsd name, the lines of the flushes of the last
/// `windowSeconds` and the live series now; per tag key, the live series of each value.
///
/// Fed with every flush batch on its own thread (`TopStatistics`), never per line: a series
/// already known costs an array read and an add per flush (its number, `SeriesID`, indexes
/// `slots`); only a new series' name and tags are read, and an expired one's.
///
/// Memory is bounded: at most `maxNames` names (the others are tallied together as
/// `otherNames`), `maxTagKeys` tag keys, and `maxTrackedValues` tag values in all (a key's
/// further values are counted, not named: its distinct count is then a lower bound), 8 bytes
/// per series number, and per `bucketMillis` of the window one (name, lines) pair per name that
/// had lines in it (flushes closer together are merged, so that a 1 s flush interval keeps 31
/// of them, not 300). At 1M series and 10,000 names: about 8 MB + 5 MB.
struct TopTally {
    static let windowSeconds = 300.0
    /// The window's resolution: the flushes that close within one such span of time are kept as one.
    static let bucketMillis: EpochMillis = 10_000
    static let maxNames = 10_000
    static let maxTagKeys = 1_000
    static let maxTrackedValues = 100_000
    /// Tag keys listed per name.
    static let maxKeysPerName = 16

    struct Name {
        var bytes: [UInt8]
        var windowLines = 0
        var series = 0
        /// One bit per `MetricType` raw value seen among its live series.
        var types: UInt8 = 0
        /// Its series' tag keys (at most `maxKeysPerName`).
        var keys: [[UInt8]] = []
    }

    struct TagKey {
        var bytes: [UInt8]
        var series = 0
        /// Live series per tracked value.
        var values: [[UInt8]: Int] = [:]
        /// Live series whose value is not tracked (the value cap was reached).
        var untracked = 0
    }

    /// One flush in the window: when it closed, its length, and its lines per name.
    struct Flush {
        var timestamp: EpochMillis
        var interval: Double
        var lines: [(name: Int32, lines: Int)]
        var otherLines: Int
        /// Lines of mapped series, per mapping rule slot (`MetricKey.mappingOptions`).
        var ruleLines: [UInt16: Int] = [:]
    }

    private(set) var names: [Name?] = []
    private var nameIDs: [[UInt8]: Int32] = [:]
    private var freeNames: [Int32] = []
    private(set) var keys: [TagKey?] = []
    private var keyIDs: [[UInt8]: Int32] = [:]
    private var freeKeys: [Int32] = []
    private var trackedValues = 0
    /// Per series number: its incarnation << 32 | (name id + 1); 0 when no live series has it.
    private var slots: [UInt64] = []
    private(set) var window: [Flush] = []
    /// Lines and live series of the names past `maxNames`.
    private(set) var otherNames = (lines: 0, series: 0)
    /// Lines of the window per mapping rule slot: the rules' hits (at most one entry per
    /// rule loaded since start, 65,536).
    private(set) var ruleLines: [UInt16: Int] = [:]
    private var lastSequence: UInt64 = 0

    /// The id for a name past the cap (its series and lines go to `otherNames`).
    static let other: Int32 = -1

    /// The window's length in seconds: the intervals of the flushes in it.
    var windowLength: Double { window.reduce(0) { $0 + $1.interval } }

    /// Folds one flush batch in.
    mutating func add(_ batch: FlushBatch) {
        if batch.sequence > 0, lastSequence > 0, batch.sequence != lastSequence + 1 {
            // A batch was missed (the queue was full): its expiries with it. Start again from
            // this one rather than keep series that may be gone.
            forgetLive()
        }
        if batch.sequence > 0 { lastSequence = batch.sequence }
        var lines = [Int](repeating: 0, count: names.count)
        var otherLines = 0
        var ruleLinesNow: [UInt16: Int] = [:]
        func see(_ key: MetricKey, _ n: Int) {
            let id = live(key)
            guard n > 0 else { return }
            if let slot = key.mappingOptions { ruleLinesNow[slot, default: 0] += n }
            if id == Self.other {
                otherLines += n
            } else {
                if Int(id) >= lines.count { lines += [Int](repeating: 0, count: names.count - lines.count) }
                lines[Int(id)] += n
            }
        }
        for c in batch.counters { see(c.key, c.lines) }
        for g in batch.gauges { see(g.key, g.lines) }
        for s in batch.sets { see(s.key, s.lines) }
        for t in batch.samples { see(t.key, t.samples) }
        // A timestamped sample (`|T`) is a line of its series too.
        for p in batch.points { see(p.key, 1) }
        for key in batch.expired { expire(key) }

        var flush = Flush(
            timestamp: batch.timestamp, interval: batch.interval, lines: [], otherLines: otherLines, ruleLines: ruleLinesNow)
        for (slot, n) in ruleLinesNow { ruleLines[slot, default: 0] += n }
        for (id, n) in lines.enumerated() where n > 0 {
            flush.lines.append((Int32(id), n))
            names[id]?.windowLines += n
        }
        otherNames.lines += otherLines
        if let last = window.last, last.timestamp.floorDiv(Self.bucketMillis) == flush.timestamp.floorDiv(Self.bucketMillis) {
            window[window.count - 1] = Self.merged(last, flush)
        } else {
            window.append(flush)
        }
        let start = batch.timestamp - EpochMillis(Self.windowSeconds * 1000)
        var leaving = 0
        while leaving < window.count - 1, window[leaving].timestamp <= start { leaving += 1 }
        for old in window.prefix(leaving) {
            for (id, n) in old.lines { names[Int(id)]?.windowLines -= n }
            otherNames.lines -= old.otherLines
            for (slot, n) in old.ruleLines {
                let left = (ruleLines[slot] ?? 0) - n
                ruleLines[slot] = left > 0 ? left : nil
            }
        }
        window.removeFirst(leaving)
        retireNames()
    }

    /// One flush of the window holding `earlier` and `later` (which closed after it): the
    /// later's time, both intervals, and the lines of both (each list in name id order).
    static func merged(_ earlier: Flush, _ later: Flush) -> Flush {
        var lines: [(name: Int32, lines: Int)] = []
        lines.reserveCapacity(max(earlier.lines.count, later.lines.count))
        var a = 0
        var b = 0
        while a < earlier.lines.count || b < later.lines.count {
            if b == later.lines.count || (a < earlier.lines.count && earlier.lines[a].name < later.lines[b].name) {
                lines.append(earlier.lines[a])
                a += 1
            } else if a == earlier.lines.count || later.lines[b].name < earlier.lines[a].name {
                lines.append(later.lines[b])
                b += 1
            } else {
                lines.append((earlier.lines[a].name, earlier.lines[a].lines + later.lines[b].lines))
                a += 1
                b += 1
            }
        }
        return Flush(
            timestamp: later.timestamp, interval: earlier.interval + later.interval, lines: lines,
            otherLines: earlier.otherLines + later.otherLines,
            ruleLines: earlier.ruleLines.merging(later.ruleLines, uniquingKeysWith: +))
    }

    /// The name id of `key`'s series, made live (named, its tags counted) when it is new.
    private mutating func live(_ key: MetricKey) -> Int32 {
        let series = key.series
        guard series != .none else { return intern(key) }
        let index = Int(series.index)
        if index >= slots.count { slots += [UInt64](repeating: 0, count: index + 1 - slots.count) }
        let slot = slots[index]
        if slot != 0, UInt32(slot >> 32) == series.incarnation { return Int32(truncatingIfNeeded: slot & 0xFFFF_FFFF) - 1 }
        if slot != 0 { dropSeries(nameID: Int32(truncatingIfNeeded: slot & 0xFFFF_FFFF) - 1) }
        let id = intern(key)
        slots[index] = UInt64(series.incarnation) << 32 | UInt64(UInt32(bitPattern: id + 1))
        if id == Self.other {
            otherNames.series += 1
        } else {
            names[Int(id)]?.series += 1
            names[Int(id)]?.types |= 1 << key.type.rawValue
        }
        key.forEachTag { k, v in countTag(k, v, by: 1, name: id) }
        return id
    }

    /// Forgets an expired series.
    private mutating func expire(_ key: MetricKey) {
        let series = key.series
        guard series != .none, Int(series.index) < slots.count else { return }
        let slot = slots[Int(series.index)]
        guard slot != 0, UInt32(slot >> 32) == series.incarnation else { return }
        slots[Int(series.index)] = 0
        dropSeries(nameID: Int32(truncatingIfNeeded: slot & 0xFFFF_FFFF) - 1)
        key.forEachTag { k, v in countTag(k, v, by: -1, name: Self.other) }
    }

    private mutating func dropSeries(nameID id: Int32) {
        if id == Self.other { otherNames.series -= 1 } else { names[Int(id)]?.series -= 1 }
    }

    /// The id of `key`'s name, made when new (`other` past `maxNames`).
    private mutating func intern(_ key: MetricKey) -> Int32 {
        let bytes = key.withName { Array($0) }
        if let id = nameIDs[bytes] { return id }
        let id: Int32
        if let free = freeNames.popLast() {
            id = free
        } else {
            guard names.count < Self.maxNames else { return Self.other }
            id = Int32(names.count)
            names.append(nil)
        }
        names[Int(id)] = Name(bytes: bytes)
        nameIDs[bytes] = id
        return id
    }

    /// Adds `delta` series to the tag `key`=`value` (and notes the key under `name`).
    private mutating func countTag(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, by delta: Int, name: Int32) {
        let bytes = Array(key)
        var id = keyIDs[bytes]
        if id == nil, delta > 0 {
            if let free = freeKeys.popLast() {
                id = free
            } else if keys.count < Self.maxTagKeys {
                id = Int32(keys.count)
                keys.append(nil)
            }
            if let id {
                keys[Int(id)] = TagKey(bytes: bytes)
                keyIDs[bytes] = id
            }
        }
        guard let id, var entry = keys[Int(id)] else { return }
        keys[Int(id)] = nil  // (no copy of the dictionary while it changes)
        entry.series += delta
        let text = Array(value)
        if let n = entry.values[text] {
            if n + delta > 0 {
                entry.values[text] = n + delta
            } else {
                entry.values[text] = nil
                trackedValues -= 1
            }
        } else if delta > 0, trackedValues < Self.maxTrackedValues {
            entry.values[text] = delta
            trackedValues += 1
        } else {
            entry.untracked += delta
        }
        if entry.series <= 0 {
            trackedValues -= entry.values.count
            keyIDs[bytes] = nil
            freeKeys.append(id)
        } else {
            keys[Int(id)] = entry
        }
        if name != Self.other, delta > 0, var n = names[Int(name)], n.keys.count < Self.maxKeysPerName,
            !n.keys.contains(bytes)
        {
            names[Int(name)] = nil
            n.keys.append(bytes)
            names[Int(name)] = n
        }
    }

    /// Frees the names with no lines in the window and no live series.
    private mutating func retireNames() {
        for id in names.indices {
            guard let n = names[id], n.windowLines == 0, n.series == 0 else { continue }
            nameIDs[n.bytes] = nil
            names[id] = nil
            freeNames.append(Int32(id))
        }
    }

    /// Forgets every live series (the window's lines stay).
    private mutating func forgetLive() {
        slots.removeAll()
        keys.removeAll()
        keyIDs.removeAll()
        freeKeys.removeAll()
        trackedValues = 0
        otherNames.series = 0
        for id in names.indices {
            names[id]?.series = 0
            names[id]?.types = 0
            names[id]?.keys = []
        }
    }
}
