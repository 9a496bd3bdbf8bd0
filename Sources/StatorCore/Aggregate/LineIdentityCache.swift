import CStatorSys
import Glibc

/// One reader's memory of the lines it has seen: from a line's identity bytes (its name as
/// sent, and everything after its value: type, rate, tags) to what parsing and key building
/// made of them (type, rate, encoded key and its hash) and where the shard keeps the series.
/// A line seen before then costs a hash, a compare and its number, instead of a parse of its
/// name and tags, a key build and a lookup by key.
///
/// Bounded and flat: 8,192 sets of four ways, one cache line per set (each way an identity
/// hash and where its record is), and the records (what the line parsed to, then its identity
/// and key bytes) written one after another into a 2 MiB ring, so that long lines cache too.
/// A lookup reads two places, the set and the record, which `prefetch` and
/// `prefetchRecords` fetch ahead for a datagram's lines together. A record that the ring
/// has since overwritten is dead: its way no longer matches and is the first to be reused;
/// otherwise each set replaces its ways in turn. The memory is mapped zeroed and costs RSS
/// only as it fills (at most about 2.6 MB per reader).
///
/// Records never go stale: what they hold depends only on their identity bytes and the
/// mapping rules in force (a reload empties the cache, `forgetAll`), and the route is
/// checked by the shard. A record's position in the ring counts every byte ever
/// written, so it names one record for good: `learn` writes a route only into the record
/// it was learned for, and only while the ring still holds it.
struct LineIdentityCache: ~Copyable {
    /// What a line parsed to; its identity bytes (name, suffix) and key follow it in the ring.
    struct Record {
        var keyHash: UInt64
        var rate: Double
        var route: SeriesRoute
        /// Where this reader keeps the series' aggregate for the open interval (`LockedReaderAggregates`):
        /// its position in the share's array for the type, valid while `shareGeneration` is the
        /// share's generation.
        var shareGeneration: UInt32
        var localPosition: Int32
        /// For a set: the member table's size for the series' next interval in this reader
        /// (twice the members of the last one).
        var setHint: UInt32
        /// Where adding the next line writes outside the share's aggregate, as the last add left
        /// it (`SampleAggregate.targets`, `MemberSet.targets`): addresses only ever prefetched,
        /// never read or written through, so one gone stale (another identity of the same
        /// series grew the set, or the interval ended) costs a useless fetch and nothing else.
        var targets: (UInt64, UInt64)
        var nameLength: UInt16
        var suffixLength: UInt16
        var keyLength: UInt16
        /// `MetricType.rawValue`.
        var type: UInt8

        /// `type` as a `MetricType`, by bit cast: `MetricType(rawValue:)` is not inlined, and
        /// would be a call per line. Valid because the field is only ever written from a
        /// `MetricType` (in `insert`), whose raw values are its tags; checked in debug builds.
        @inline(__always)
        var metricType: MetricType {
            assert(MetricType(rawValue: type) != nil, "a key cache record's type byte is not a MetricType")
            return unsafeBitCast(type, to: MetricType.self)
        }

        /// Bytes from the record's start to its identity bytes.
        static let size = (MemoryLayout<Record>.size + 7) & ~7
    }

    /// One way of a set.
    private struct Way {
        /// The identity hash; 0 when empty.
        var hash: UInt64
        /// The record's position (see `head`).
        var position: UInt64
    }

    /// No record (a position the ring never reaches).
    static let none = UInt64.max

    static let sets = 8192
    static let ways = 4
    static let ringBytes = 1 << 21
    /// Identity and key bytes past which a line is not cached (the scanner hashes no longer identity).
    static let maxBytes = Int(CStatorSys_IDENTITY_MAX_BYTES)

    private let table: UnsafeMutablePointer<Way>
    private let ring: UnsafeMutableRawPointer
    /// Bytes ever written to the ring; the ring holds the last `ringBytes` of them.
    private var head: UInt64 = 0
    /// Per set: the way to replace next when none is empty or dead.
    private var victims: [UInt8]
    /// The identity hash's seed (see `LineScanner`).
    let seed: UInt64

    init(seed: UInt64) {
        // The layout the C scanner assumes (CStatorSys.h, CStatorSys_CACHE_SET_BYTES).
        precondition(
            Self.ways * MemoryLayout<Way>.stride == Int(CStatorSys_CACHE_SET_BYTES),
            "a set is the CStatorSys_CACHE_SET_BYTES bytes LineScanner prefetches")
        self.seed = seed
        victims = Array(repeating: 0, count: Self.sets)
        table = Self.map(Self.sets * Self.ways * MemoryLayout<Way>.stride).bindMemory(
            to: Way.self, capacity: Self.sets * Self.ways)
        ring = Self.map(Self.ringBytes)
    }

    deinit {
        munmap(table, Self.sets * Self.ways * MemoryLayout<Way>.stride)
        munmap(ring, Self.ringBytes)
    }

    /// Zeroed, page-aligned memory that costs RSS only once touched.
    private static func map(_ bytes: Int) -> UnsafeMutableRawPointer {
        guard let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED
        else { fatalError("out of memory for the key cache") }
        return p
    }

    /// The identity hash of a line with `name` and `suffix` (`LineScanner.identityHash`, which
    /// the scanner computes as it finds the line).
    func hash(_ src: UnsafeRawBufferPointer, name: Range<Int>, suffix: Range<Int>) -> UInt64 {
        LineScanner.identityHash(src, name: name, suffix: suffix, seed: seed)
    }

    @inline(__always)
    private func firstWay(_ hash: UInt64) -> Int {
        (Int(truncatingIfNeeded: hash >> UInt64(CStatorSys_CACHE_SET_SHIFT)) & (Self.sets - 1)) &* Self.ways
    }

    /// Forgets every line identity (a mapping reload changes what keys lines make): every way
    /// is emptied, so each identity misses once and is parsed and remembered again. Records
    /// in the ring stay until it overwrites them, unreachable.
    mutating func forgetAll() {
        table.update(repeating: Way(hash: 0, position: 0), count: Self.sets * Self.ways)
        for k in victims.indices { victims[k] = 0 }
    }

    /// Whether the ring still holds the record at `position`.
    @inline(__always)
    private func alive(_ position: UInt64) -> Bool { head &- position <= UInt64(Self.ringBytes) }

    @inline(__always)
    private func address(_ position: UInt64) -> UnsafeMutableRawPointer {
        ring + Int(position & UInt64(Self.ringBytes - 1))
    }

    /// The sets, `CStatorSys_CACHE_SET_BYTES` each, where `LineScanner` starts fetching a
    /// line's set: the set of `hash` is at `(hash >> CStatorSys_CACHE_SET_SHIFT) & setMask`
    /// (as `firstWay` finds it).
    var sets: UnsafeRawPointer { UnsafeRawPointer(table) }
    static let setMask = UInt64(sets - 1)

    /// Starts fetching the set of `hash` (first of a lookup's two steps).
    @inline(__always)
    func prefetch(_ hash: UInt64) { CStatorSys_prefetch(table + firstWay(hash)) }

    /// Starts fetching the records that the set of `hash` names for it (the set fetched already):
    /// what `find` reads, the record and its `identity` bytes (a line's name and suffix). Records
    /// are 8-byte aligned, so a 64-byte record and 40 to 60 identity bytes usually span three
    /// cache lines: the first two, and the one with the identity's last byte.
    @inline(__always)
    func prefetchRecords(_ hash: UInt64, identity: Int) {
        let first = firstWay(hash)
        for w in first..<(first &+ Self.ways) where table[w].hash == hash {
            let p = address(table[w].position)
            CStatorSys_prefetch(p)
            CStatorSys_prefetch(p + 64)
            CStatorSys_prefetch(p + (Record.size &- 1 &+ identity))
        }
    }

    /// The position of the record of this identity, or `nil`.
    @inline(__always)
    func find(_ src: UnsafeRawBufferPointer, name: Range<Int>, suffix: Range<Int>, hash: UInt64) -> UInt64? {
        let first = firstWay(hash)
        for w in first..<(first &+ Self.ways) where table[w].hash == hash {
            let position = table[w].position
            guard alive(position), let base = src.baseAddress else { continue }
            let p = address(position)
            let record = p.load(as: Record.self)
            guard Int(record.nameLength) == name.count, Int(record.suffixLength) == suffix.count else { continue }
            let stored = p + Record.size
            if ByteScan.equal(stored, base + name.lowerBound, count: name.count),
                ByteScan.equal(stored + name.count, base + suffix.lowerBound, count: suffix.count)
            {
                return position
            }
        }
        return nil
    }

    /// Remembers a parsed line in an empty or dead way of its set, or the set's next one.
    /// - Returns: the record's position, or `nil` when identity and key take over `maxBytes`.
    mutating func insert(
        _ src: UnsafeRawBufferPointer, name: Range<Int>, suffix: Range<Int>, hash: UInt64, type: MetricType, rate: Double,
        key: UnsafeRawBufferPointer, keyHash: UInt64
    ) -> UInt64? {
        let bytes = name.count + suffix.count + key.count
        guard bytes <= Self.maxBytes, let base = src.baseAddress, let keyBase = key.baseAddress else { return nil }
        let size = (Record.size + bytes + 7) & ~7
        let first = firstWay(hash)
        var w = -1
        for candidate in first..<(first &+ Self.ways) where table[candidate].hash == 0 || !alive(table[candidate].position) {
            w = candidate
            break
        }
        if w < 0 {
            let set = first / Self.ways
            w = first &+ Int(victims[set])
            victims[set] = (victims[set] &+ 1) & UInt8(Self.ways - 1)
        }
        // A record never wraps around the end of the ring.
        let offset = Int(head & UInt64(Self.ringBytes - 1))
        if offset + size > Self.ringBytes { head &+= UInt64(Self.ringBytes - offset) }
        let position = head
        head &+= UInt64(size)
        table[w] = Way(hash: hash, position: position)
        let p = address(position)
        p.storeBytes(
            of: Record(
                keyHash: keyHash, rate: rate, route: .unknown, shareGeneration: 0, localPosition: 0, setHint: 0, targets: (0, 0),
                nameLength: UInt16(name.count),
                suffixLength: UInt16(suffix.count), keyLength: UInt16(key.count), type: type.rawValue),
            as: Record.self)
        let stored = p + Record.size
        memcpy(stored, base + name.lowerBound, name.count)
        memcpy(stored + name.count, base + suffix.lowerBound, suffix.count)
        memcpy(stored + name.count + suffix.count, keyBase, key.count)
        return position
    }

    /// The record at `position` (from `find` or `insert`, before the next `insert`).
    @inline(__always)
    subscript(position: UInt64) -> Record { address(position).load(as: Record.self) }

    /// The whole ring, where `keyOffset(_:)` points.
    var ringBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: ring, count: Self.ringBytes) }

    /// Bytes written to the ring so far (positions are below it).
    var written: UInt64 { head }

    /// The most one `insert` moves `written` on: its record (at most `maxBytes` of identity
    /// and key, rounded up) and the skip to the ring's start when it would not fit before the end.
    static let maxInsertAdvance = 2 * ((Record.size + maxBytes + 7) & ~7)

    /// Whether the record at `position`, with everything after it, is still in the ring after
    /// one more `insert`: false when that insert could write over it.
    @inline(__always)
    func survivesInsert(_ position: UInt64) -> Bool {
        head &+ UInt64(Self.maxInsertAdvance) &- position <= UInt64(Self.ringBytes)
    }

    /// Whether the record at `position` has not been written over (its key is still readable).
    @inline(__always)
    func isAlive(_ position: UInt64) -> Bool { alive(position) }

    /// Where in `ringBytes` the key of the record at `position` starts.
    @inline(__always)
    func keyOffset(_ position: UInt64) -> Int {
        let record = address(position).load(as: Record.self)
        return Int(position & UInt64(Self.ringBytes - 1)) + Record.size + Int(record.nameLength) + Int(record.suffixLength)
    }

    /// The encoded key of the record at `position` (valid until the next `insert`).
    @inline(__always)
    func key(_ position: UInt64) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: ring + keyOffset(position), count: Int(self[position].keyLength))
    }

    /// Records where this reader's share keeps the series of the record at `position` (found
    /// just now, so alive) in the interval of `generation`.
    @inline(__always)
    func setLocal(_ position: UInt64, generation: UInt32, at local: Int32) {
        let p = address(position)
        p.storeBytes(of: generation, toByteOffset: Self.shareGenerationOffset, as: UInt32.self)
        p.storeBytes(of: local, toByteOffset: Self.localPositionOffset, as: Int32.self)
    }

    /// Sets the targets of the record at `position` (found just now, so alive).
    @inline(__always)
    func setTargets(_ position: UInt64, _ targets: (UInt64, UInt64)) {
        address(position).storeBytes(of: targets, toByteOffset: Self.targetsOffset, as: (UInt64, UInt64).self)
    }

    /// Sets the set-size hint of the record at `position` (found just now, so alive).
    @inline(__always)
    func setSetHint(_ position: UInt64, _ hint: UInt32) {
        address(position).storeBytes(of: hint, toByteOffset: Self.setHintOffset, as: UInt32.self)
    }

    private static let shareGenerationOffset = offset(of: \.shareGeneration)
    private static let localPositionOffset = offset(of: \.localPosition)
    private static let setHintOffset = offset(of: \.setHint)
    private static let targetsOffset = offset(of: \.targets)

    private static func offset(of field: PartialKeyPath<Record>) -> Int {
        guard let offset = MemoryLayout<Record>.offset(of: field) else { fatalError("a stored field has an offset") }
        return offset
    }

    /// Learns where the shard keeps the series of the record at `position`, if the ring still holds it.
    @inline(__always)
    func learn(_ position: UInt64, route: SeriesRoute) {
        guard alive(position) else { return }
        let p = address(position)
        var record = p.load(as: Record.self)
        record.route = route
        p.storeBytes(of: record, as: Record.self)
    }
}
