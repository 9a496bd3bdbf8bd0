/// One sample group waiting to be recorded: its series (key, hash, route if known), rate and values.
struct StagedSample {
    var hash: UInt64
    var rate: Double
    /// For a set: the member's seeded hash. For a sample whose one value is staged inline
    /// (`values` is `.inlineValue` or `.inlineDelta`): the value's bit pattern.
    var payload: UInt64
    /// Where the shard keeps the series, if the reader knows (`LineIdentityCache`); when it did not
    /// (or the route was stale), the shard writes back where it found it and sets `learned`.
    var route: SeriesRoute
    /// Where the key is: at this offset of the batch's key arena, or (when negative) at
    /// `-keyOffset - 1` of the reader's `LineIdentityCache` ring (see `StagedKeys`).
    var keyOffset: Int32
    var keyLength: Int32
    /// Its values: `values[valueStart..<valueEnd]` of the batch.
    var valueStart: Int32
    var valueEnd: Int32
    /// The line it came from: its datagram's number in the caller's batch and its byte range
    /// there (for the rejection log; the samples of one line share them, so that a rejected
    /// line is counted once).
    var datagram: Int32
    var lineStart: Int32
    var lineEnd: Int32
    /// The position of the line's record in the reader's `LineIdentityCache`, or `LineIdentityCache.none`.
    var cacheRecord: UInt64
    var type: MetricType
    /// Set by the shard when it looked the series up and wrote `route`.
    var learned = false
    /// Where the sample's values are. A line seen before stages its value inline (no entry
    /// in the batch's value list).
    var values: ValueStorage = .inList

    /// Where a staged sample's values are (one byte in the record).
    enum ValueStorage: UInt8 {
        /// `values[valueStart..<valueEnd]` of the batch (none for a set: its member is in `payload`).
        case inList
        /// One value, its bit pattern in `payload`.
        case inlineValue
        /// One delta (a gauge's `+`/`-` value), its bit pattern in `payload`.
        case inlineDelta

        /// One value in `payload`: a delta when `isDelta`.
        init(inline isDelta: Bool) { self = isDelta ? .inlineDelta : .inlineValue }
    }

    /// Calls `body` with each of the sample's values, in order.
    @inline(__always)
    func forEachValue(in values: UnsafeBufferPointer<ParsedValue>, _ body: (ParsedValue) -> Void) {
        if self.values != .inList {
            body(ParsedValue(value: Double(bitPattern: payload), isDelta: self.values == .inlineDelta))
        } else {
            for v in UnsafeBufferPointer(rebasing: values[Int(valueStart)..<Int(valueEnd)]) { body(v) }
        }
    }
}

/// Parsed samples of many datagrams, staged so that they can be recorded shard by
/// shard: one lock per shard per batch instead of one per line, and the cache misses
/// of a shard's lookups overlapped by prefetching. Owned by one reader; reused.
struct StagedBatch: ~Copyable {
    var samples = ScratchList<StagedSample>(capacity: 4096)
    var values = ScratchList<ParsedValue>(capacity: 4096)
    /// Key bytes of every staged sample.
    private var keys: UnsafeMutablePointer<UInt8>
    private var keyCapacity = 1 << 16
    private var keyCount = 0
    /// The oldest `LineIdentityCache` record whose key a staged sample reads from the ring
    /// (`LineIdentityCache.none`: none). The reader commits before its ring could overwrite it.
    private(set) var oldestRingRecord = LineIdentityCache.none

    init() { keys = .allocate(capacity: keyCapacity) }

    deinit { keys.deallocate() }

    mutating func reset() {
        samples.removeAll()
        values.removeAll()
        keyCount = 0
        oldestRingRecord = LineIdentityCache.none
    }

    /// Notes that a sample about to be staged reads its key from the ring record at `position`.
    /// - Returns: the sample's `keyOffset` for that key (`-keyOffset - 1` of the ring).
    @inline(__always)
    mutating func ringKey(record position: UInt64, in cache: borrowing LineIdentityCache) -> Int32 {
        if position < oldestRingRecord { oldestRingRecord = position }
        return Int32(-cache.keyOffset(position) - 1)
    }

    /// Copies a key into the arena.
    /// - Returns: its offset.
    @inline(__always)
    mutating func appendKey(_ key: UnsafeRawBufferPointer) -> Int32 {
        if keyCount + key.count > keyCapacity {
            var size = keyCapacity * 2
            while size < keyCount + key.count { size *= 2 }
            let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: size)
            bigger.update(from: keys, count: keyCount)
            keys.deallocate()
            keys = bigger
            keyCapacity = size
        }
        if let base = key.baseAddress {
            (keys + keyCount).update(from: base.assumingMemoryBound(to: UInt8.self), count: key.count)
        }
        let offset = keyCount
        keyCount += key.count
        return Int32(offset)
    }

    /// The arena's bytes (valid until the next `appendKey` or `reset`).
    var keyBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: keys, count: keyCount) }

    /// The reader's `LineIdentityCache` ring, where samples of lines seen before find their keys
    /// (the reader commits before the ring could overwrite a key a staged sample names).
    var cacheKeys = UnsafeRawBufferPointer(start: nil, count: 0)
}

/// Where a batch's staged samples find their keys: the batch's own arena or the reader's
/// `LineIdentityCache` ring (a line seen before is staged without copying its key).
struct StagedKeys {
    let arena: UnsafeRawBufferPointer
    let cache: UnsafeRawBufferPointer

    /// The key of `sample`.
    @inline(__always)
    func key(of sample: StagedSample) -> UnsafeRawBufferPointer {
        let offset = Int(sample.keyOffset)
        let length = Int(sample.keyLength)
        if offset >= 0 { return UnsafeRawBufferPointer(rebasing: arena[offset..<(offset + length)]) }
        return UnsafeRawBufferPointer(rebasing: cache[(-offset - 1)..<(-offset - 1 + length)])
    }
}
