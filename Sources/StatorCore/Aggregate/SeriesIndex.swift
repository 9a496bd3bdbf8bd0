import CStatorSys
import Glibc

/// The address of a key's bytes.
/// SAFETY: points into an array that is never mutated and that the owning slot keeps
/// alive; it is only read under the shard's lock, like the slot itself.
struct KeyAddress: @unchecked Sendable {
    let pointer: UnsafeRawPointer
}

/// One tracked series in a shard: its key and where its current-interval
/// aggregate lives.
struct SeriesSlot {
    var key: MetricKey
    /// The key's bytes, for comparing and prefetching without retaining `key`.
    /// SAFETY: `key.bytes` is never mutated and `key` lives in this slot for as long
    /// as the address is used (it is cleared when the slot is removed).
    var keyAddress: KeyAddress?
    /// The key's length; 0 for a free slot.
    var keyLength: Int32
    /// The last flush generation in which the series received data.
    var lastGeneration: UInt32
    /// Index into the interval's array for the key's type, valid while
    /// `lastGeneration` is the shard's current generation.
    var position: Int32
    /// Histogram buckets of a timer/histogram/distribution series, resolved once at creation
    /// (`HistogramBuckets.boundsIndex(for:)`); for a set, `setSizeHint`.
    var boundsIndex: UInt32

    /// A set's table size for its next interval: twice the members of its last interval (so
    /// the table does not grow, rehashing, through the sizes below every interval). Shares
    /// the field with `boundsIndex`, which sets do not use, to keep the slot at 40 bytes.
    var setSizeHint: UInt32 {
        get { boundsIndex }
        set { boundsIndex = newValue }
    }
}

/// An open-addressing (linear probing) map from key bytes to series slots.
///
/// Lookups compare the caller's scratch bytes against stored keys, so finding
/// an existing series allocates nothing. Deletion shifts entries back, so
/// there are no tombstones.
struct SeriesIndex {
    private struct Bucket {
        /// Low 32 bits of the key hash; also gives the home bucket.
        var tag: UInt32
        /// Slot id, or -1 when empty.
        var slot: Int32
    }

    private var buckets: [Bucket]
    private var mask: Int
    /// The table's key hash seed: removal and compaction hash a key again to find its bucket
    /// (rare, so the slot does not keep the hash).
    private let seed: UInt64
    private(set) var slots: [SeriesSlot] = []
    private var freeSlots: [Int32] = []
    private(set) var count = 0

    init(seed: UInt64, initialBuckets: Int = 64) {
        self.seed = seed
        let n = Int.powerOfTwo(atLeast: initialBuckets, minimum: 16)
        buckets = Array(repeating: Bucket(tag: 0, slot: -1), count: n)
        mask = n - 1
    }

    /// Finds the slot whose key equals `key` (with hash `hash`).
    @inline(__always)
    func find(_ key: UnsafeRawBufferPointer, hash: UInt64) -> Int32? {
        let tag = UInt32(truncatingIfNeeded: hash)
        var i = Int(tag) & mask
        while true {
            let b = buckets[i]
            if b.slot < 0 { return nil }
            if b.tag == tag, Self.equal(slots[Int(b.slot)], key) { return b.slot }
            i = (i &+ 1) & mask
        }
    }

    @inline(__always)
    private static func equal(_ slot: borrowing SeriesSlot, _ key: UnsafeRawBufferPointer) -> Bool {
        guard Int(slot.keyLength) == key.count, let a = slot.keyAddress?.pointer, let b = key.baseAddress else { return false }
        return memcmp(a, b, key.count) == 0
    }

    /// Prefetch helpers for batched lookups: each touches only lines an earlier pass asked for.
    @inline(__always)
    func prefetchBucket(_ hash: UInt64) {
        buckets.withUnsafeBufferPointer { b in
            if let base = b.baseAddress { CStatorSys_prefetch(base + (Int(UInt32(truncatingIfNeeded: hash)) & mask)) }
        }
    }

    /// Prefetches slot `id` (which may be out of range: a stale route).
    @inline(__always)
    func prefetchSlot(id: Int32) {
        guard id >= 0, Int(id) < slots.count else { return }
        slots.withUnsafeBufferPointer { s in
            if let base = s.baseAddress { CStatorSys_prefetch(base + Int(id)) }
        }
    }

    /// Whether `route` names a slot that holds its series: then the route's slot is the
    /// series' (a series number is never held by two series at once, and a slot that was
    /// freed, reused or moved by `compacted()` holds another number or none).
    @inline(__always)
    func holds(_ route: SeriesRoute) -> Bool {
        let id = Int(route.slot)
        guard id >= 0, id < slots.count else { return false }
        return slots[id].keyLength > 0 && slots[id].key.series == route.series
    }

    /// Reads the home bucket (prefetched) and prefetches the slot it names.
    @inline(__always)
    func prefetchSlot(_ hash: UInt64) {
        prefetchSlot(id: buckets[Int(UInt32(truncatingIfNeeded: hash)) & mask].slot)
    }

    /// Reads the home bucket and its slot (prefetched) and prefetches the slot's key bytes.
    @inline(__always)
    func prefetchKey(_ hash: UInt64) {
        let b = buckets[Int(UInt32(truncatingIfNeeded: hash)) & mask]
        guard b.slot >= 0 else { return }
        if let address = slots[Int(b.slot)].keyAddress { CStatorSys_prefetch(address.pointer) }
    }

    /// Inserts a new series (the caller checked it is absent).
    /// - Returns: its slot id.
    mutating func insert(_ key: MetricKey, hash: UInt64, generation: UInt32, boundsIndex: Int) -> Int32 {
        if (count + 1) * 2 > buckets.count { grow() }
        let address = key.bytes.withUnsafeBytes { $0.baseAddress.map(KeyAddress.init) }
        let tag = UInt32(truncatingIfNeeded: hash)
        assert(tag == self.tag(of: key), "the hash is not the table's hash of the key")
        let slot = SeriesSlot(
            key: key, keyAddress: address, keyLength: Int32(key.bytes.count), lastGeneration: generation, position: -1,
            boundsIndex: UInt32(boundsIndex))
        let id: Int32
        if let free = freeSlots.popLast() {
            id = free
            slots[Int(id)] = slot
        } else {
            id = Int32(slots.count)
            slots.append(slot)
        }
        place(Bucket(tag: tag, slot: id))
        count += 1
        return id
    }

    private mutating func place(_ bucket: Bucket) {
        var i = Int(bucket.tag) & mask
        while buckets[i].slot >= 0 { i = (i &+ 1) & mask }
        buckets[i] = bucket
    }

    private mutating func grow() {
        let old = buckets
        buckets = Array(repeating: Bucket(tag: 0, slot: -1), count: old.count * 2)
        mask = buckets.count - 1
        for b in old where b.slot >= 0 { place(b) }
    }

    /// A stored key's bucket tag: the low 32 bits of its hash, as the reader computed it.
    private func tag(of key: MetricKey) -> UInt32 {
        UInt32(truncatingIfNeeded: key.bytes.withUnsafeBytes { SeriesKeyBuilder.hash($0, seed: seed) })
    }

    /// Accesses a slot.
    /// (Read and modified in place: reading a field does not copy the slot or retain its key.)
    subscript(id: Int32) -> SeriesSlot {
        _read { yield slots[Int(id)] }
        _modify { yield &slots[Int(id)] }
    }

    /// Whether most slots are free (after a mass expiry): worth `compacted()`.
    var isSparse: Bool { slots.count >= 1024 && count * 4 < slots.count }

    /// A copy holding only the live slots, sized for them: arrays never shrink by
    /// themselves, so after a cardinality bomb expires the index would keep its peak
    /// size for good. Slot ids change; nobody holds one across a lock release.
    func compacted() -> SeriesIndex {
        var fresh = SeriesIndex(seed: seed, initialBuckets: count * 2)
        fresh.slots.reserveCapacity(count)
        for slot in slots where slot.keyLength > 0 {
            let id = Int32(fresh.slots.count)
            fresh.place(Bucket(tag: tag(of: slot.key), slot: id))
            fresh.slots.append(slot)
            fresh.count += 1
        }
        return fresh
    }

    /// Removes the series in slot `id`.
    mutating func remove(_ id: Int32) {
        var i = Int(tag(of: slots[Int(id)].key)) & mask
        while buckets[i].slot != id { i = (i &+ 1) & mask }
        // Backward-shift deletion.
        var j = i
        while true {
            j = (j &+ 1) & mask
            let b = buckets[j]
            if b.slot < 0 { break }
            let home = Int(b.tag) & mask
            let stays = i <= j ? (i < home && home <= j) : (i < home || home <= j)
            if stays { continue }
            buckets[i] = b
            i = j
        }
        buckets[i] = Bucket(tag: 0, slot: -1)
        slots[Int(id)] = SeriesSlot(
            key: MetricKey(bytes: [], series: .none), keyAddress: nil, keyLength: 0, lastGeneration: 0, position: -1,
            boundsIndex: 0)
        freeSlots.append(id)
        count -= 1
    }
}
