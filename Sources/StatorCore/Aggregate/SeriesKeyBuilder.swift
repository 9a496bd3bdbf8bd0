import Glibc

/// Builds the `MetricKey` bytes of a parsed line in reusable scratch space.
///
/// Each reader thread owns one. `prepare(_:_:)` encodes the name and the line's
/// tags, sorted and de-duplicated (the last value of a repeated key wins), once
/// per line after a placeholder type byte; `build(type:)` writes one group's type
/// byte and hashes the key. Nothing is allocated once the buffer has grown.
struct SeriesKeyBuilder: ~Copyable {
    private var buffer: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    /// Bytes of the current key.
    private(set) var count = 0
    private var order = ScratchList<Int32>(capacity: 16)
    /// Whether the prepared key is a mapped series' (`prepareMapped`).
    private(set) var isMapped = false
    let seed: UInt64

    init(seed: UInt64) {
        self.seed = seed
        capacity = 256
        buffer = .allocate(capacity: capacity)
    }

    deinit { buffer.deallocate() }

    /// The current key's bytes (valid until the next `prepare`).
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: buffer, count: count) }

    /// Encodes the line's name and its sorted, de-duplicated tags after a type byte.
    mutating func prepare(_ line: borrowing ParsedLine, _ src: UnsafeRawBufferPointer) {
        isMapped = false
        count = 1  // the type byte, written by build(type:)
        append(src, line.name)
        guard !line.tags.isEmpty else { return }
        if line.tags.count == 1 {
            append(src, line.tags[0].key)
            append(src, line.tags[0].value)
            return
        }
        if line.tags.count == 2 {
            // The common case, without the general sort.
            let (a, b) = (line.tags[0], line.tags[1])
            let c = Self.compare(src, a.key, b.key)
            if c == 0 {
                append(src, b.key)  // the same key twice: the last value wins
                append(src, b.value)
            } else {
                let (first, second) = c < 0 ? (a, b) : (b, a)
                append(src, first.key)
                append(src, first.value)
                append(src, second.key)
                append(src, second.value)
            }
            return
        }
        order.removeAll()
        for k in line.tags.indices { order.append(Int32(k)) }
        // Sort by (key bytes, position): a total order, so the result is stable.
        if order.count <= 16 {
            for i in 1..<order.count {
                let x = order[i]
                var j = i
                while j > 0 {
                    let c = Self.compare(src, line.tags[Int(x)].key, line.tags[Int(order[j - 1])].key)
                    guard c < 0 || (c == 0 && x < order[j - 1]) else { break }
                    order[j] = order[j - 1]
                    j -= 1
                }
                order[j] = x
            }
        } else {
            let tags = line.tags.toArray()  // many tags: rare enough to allocate for the sort
            var sorted = order.toArray()
            sorted.sort { a, b in
                let c = Self.compare(src, tags[Int(a)].key, tags[Int(b)].key)
                return c != 0 ? c < 0 : a < b
            }
            for (k, v) in sorted.enumerated() { order[k] = v }
        }
        for n in order.indices {
            let idx = Int(order[n])
            // Keep only the last of a run of equal keys.
            if n + 1 < order.count, Self.compare(src, line.tags[idx].key, line.tags[Int(order[n + 1])].key) == 0 { continue }
            append(src, line.tags[idx].key)
            append(src, line.tags[idx].value)
        }
    }

    /// Encodes a mapped series' key (see `MetricKey`): the name a mapping rule gave, the line's
    /// tags together with the rule's labels (a label wins over a tag of the same name unless
    /// the rule honours the line's labels), and the rule's options. Off the per-line path: it
    /// runs when a reader meets a line identity it does not know.
    mutating func prepareMapped(_ line: borrowing ParsedLine, _ src: UnsafeRawBufferPointer, _ parts: MappedKeyParts) {
        isMapped = true
        count = 1
        parts.name.withUnsafeBytes { append($0, 0..<$0.count) }
        // A tag's value, nil for a bare tag.
        var tags: [[UInt8]: [UInt8]?] = [:]
        for t in line.tags.indices {
            let tag = line.tags[t]
            let value = tag.value == TagRange.bare ? nil : Array(Self.resolve(src, tag.value))
            tags[Array(Self.resolve(src, tag.key))] = .some(value)
        }
        for label in parts.labels where !(parts.honorLabels && tags[label.name] != nil) {
            tags[label.name] = .some(label.value)
        }
        for key in tags.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            key.withUnsafeBytes { append($0, 0..<$0.count) }
            if let value = tags[key].unsafelyUnwrapped {
                value.withUnsafeBytes { append($0, 0..<$0.count) }
            } else {
                append(src, TagRange.bare)
            }
        }
        if count + 2 > capacity { grow(to: count + 2) }
        buffer[count] = UInt8(truncatingIfNeeded: parts.options)
        buffer[count + 1] = UInt8(truncatingIfNeeded: parts.options >> 8)
        count += 2
    }

    /// Sets the type byte of the prepared key.
    /// - Returns: the key's hash.
    @inline(__always)
    mutating func build(type: MetricType) -> UInt64 {
        buffer[0] = isMapped ? type.rawValue | MetricKey.mappedFlag : type.rawValue
        return Self.hash(bytes, seed: seed)
    }

    /// Builds a key from Swift strings (tests, tools).
    mutating func makeKey(type: MetricType, name: String, tags: [(String, String)]) -> MetricKey {
        var text = Array(name.utf8)
        var line = ParsedLine()
        line.name = 0..<text.count
        for (k, v) in tags {
            let ks = text.count
            text.append(contentsOf: k.utf8)
            let vs = text.count
            text.append(contentsOf: v.utf8)
            line.tags.append(TagRange(key: ks..<vs, value: vs..<text.count))
        }
        text.withUnsafeBytes { prepare(line, $0) }
        _ = build(type: type)
        return MetricKey(bytes: Array(bytes), series: .none)
    }

    /// The bytes a range of a parsed line names: `src[r]`, or for the ranges below zero that
    /// `TagRange` defines, the bytes they stand for (`TagRange.bare` has none).
    @inline(__always)
    static func resolve(_ src: UnsafeRawBufferPointer, _ r: Range<Int>) -> UnsafeRawBufferPointer {
        if r.lowerBound >= 0 { return UnsafeRawBufferPointer(rebasing: src[r]) }
        if r == TagRange.containerIDKey {
            return UnsafeRawBufferPointer(
                start: TagRange.containerID.utf8Start, count: TagRange.containerID.utf8CodeUnitCount)
        }
        return UnsafeRawBufferPointer(start: nil, count: 0)
    }

    /// Appends a length-prefixed byte range (lengths are little-endian u16; a datagram is < 64 KiB).
    /// A bare tag's value is the length `MetricKey.bareValueLength` and no bytes: no value
    /// sent can have that length (`max_tag_bytes` is at most 65,535, key and `:` included).
    @inline(__always)
    private mutating func append(_ src: UnsafeRawBufferPointer, _ range: Range<Int>) {
        if range.lowerBound < 0, range == TagRange.bare {
            if count + 2 > capacity { grow(to: count + 2) }
            buffer[count] = UInt8(truncatingIfNeeded: MetricKey.bareValueLength)
            buffer[count + 1] = UInt8(truncatingIfNeeded: MetricKey.bareValueLength >> 8)
            count += 2
            return
        }
        let source = range.lowerBound < 0 ? Self.resolve(src, range) : src
        let r = range.lowerBound < 0 ? 0..<source.count : range
        let n = min(r.count, Int(UInt16.max))
        if count + 2 + n > capacity { grow(to: count + 2 + n) }
        buffer[count] = UInt8(truncatingIfNeeded: n)
        buffer[count + 1] = UInt8(truncatingIfNeeded: n >> 8)
        if n > 0, let base = source.baseAddress {
            (buffer + count + 2).update(from: base.assumingMemoryBound(to: UInt8.self) + r.lowerBound, count: n)
        }
        count += 2 + n
    }

    private mutating func grow(to needed: Int) {
        var size = capacity * 2
        while size < needed { size *= 2 }
        let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: size)
        bigger.update(from: buffer, count: count)
        buffer.deallocate()
        buffer = bigger
        capacity = size
    }

    private static func compare(_ src: UnsafeRawBufferPointer, _ a: Range<Int>, _ b: Range<Int>) -> Int32 {
        if a.lowerBound < 0 || b.lowerBound < 0 {
            let (x, y) = (resolve(src, a), resolve(src, b))
            let n = min(x.count, y.count)
            if n > 0, let xa = x.baseAddress, let ya = y.baseAddress {
                let c = memcmp(xa, ya, n)
                if c != 0 { return c }
            }
            return x.count == y.count ? 0 : (x.count < y.count ? -1 : 1)
        }
        guard let base = src.baseAddress else { return 0 }
        let c = memcmp(base + a.lowerBound, base + b.lowerBound, min(a.count, b.count))
        if c != 0 { return c }
        return a.count == b.count ? 0 : (a.count < b.count ? -1 : 1)
    }

    /// A seeded 64-bit hash, eight bytes at a time, with a splitmix64 finalizer. The last
    /// word overlaps the one before it rather than being read byte by byte (the length is
    /// mixed in first, so overlapping reads of different lengths cannot meet).
    @inline(__always)
    static func hash(_ p: UnsafeRawBufferPointer, seed: UInt64) -> UInt64 {
        var h = seed ^ (UInt64(p.count) &* 0x9E37_79B9_7F4A_7C15)
        if let base = p.baseAddress {
            ByteScan.forEachWord(base, count: p.count) { w in
                h = (h ^ w) &* 0xBF58_476D_1CE4_E5B9
                h ^= h >> 29
            }
        }
        h ^= h >> 30
        h &*= 0xBF58_476D_1CE4_E5B9
        h ^= h >> 27
        h &*= 0x94D0_49BB_1331_11EB
        h ^= h >> 31
        return h
    }
}
