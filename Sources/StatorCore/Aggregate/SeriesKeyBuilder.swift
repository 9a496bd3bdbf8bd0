import Glibc

/// Builds the `MetricKey` bytes of a parsed line in reusable scratch space.
///
/// Each reader thread owns one. `prepare(_:_:)` sorts and de-duplicates the
/// line's tags once (the last value of a repeated key wins); `build(type:)`
/// then encodes one group's key and hashes it, without allocating once warm.
struct SeriesKeyBuilder {
    /// The last built key.
    private(set) var bytes: [UInt8] = []
    /// Encoded name and tags, shared by every group of the line.
    private var body: [UInt8] = []
    private var order: [Int32] = []
    let seed: UInt64

    init(seed: UInt64) {
        self.seed = seed
        bytes.reserveCapacity(256)
        body.reserveCapacity(256)
        order.reserveCapacity(16)
    }

    /// Encodes the line's name and its sorted, de-duplicated tags.
    mutating func prepare(_ line: ParsedLine, _ src: UnsafeRawBufferPointer) {
        body.removeAll(keepingCapacity: true)
        append(src, line.name)
        let tags = line.tags
        guard !tags.isEmpty else { return }
        order.removeAll(keepingCapacity: true)
        for k in tags.indices { order.append(Int32(k)) }
        // Sort by (key bytes, position): a total order, so the result is stable.
        func less(_ a: Int32, _ b: Int32) -> Bool {
            let c = Self.compare(src, tags[Int(a)].key, tags[Int(b)].key)
            return c != 0 ? c < 0 : a < b
        }
        if order.count <= 16 {
            for i in 1..<order.count {
                let x = order[i]
                var j = i
                while j > 0, less(x, order[j - 1]) {
                    order[j] = order[j - 1]
                    j -= 1
                }
                order[j] = x
            }
        } else {
            order.sort(by: less)
        }
        for (n, idx) in order.enumerated() {
            // Keep only the last of a run of equal keys.
            if n + 1 < order.count, Self.compare(src, tags[Int(idx)].key, tags[Int(order[n + 1])].key) == 0 { continue }
            append(src, tags[Int(idx)].key)
            append(src, tags[Int(idx)].value)
        }
    }

    /// Encodes the key of one group of the prepared line into `bytes`.
    /// - Returns: the key's hash.
    mutating func build(type: MetricType) -> UInt64 {
        bytes.removeAll(keepingCapacity: true)
        bytes.append(type.rawValue)
        bytes.append(contentsOf: body)
        return bytes.withUnsafeBytes { SeriesKeyBuilder.hash($0, seed: seed) }
    }

    /// An owned copy of the last built key.
    func ownedKey(hash: UInt64) -> MetricKey { MetricKey(bytes: bytes, hash: hash) }

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
        let h = build(type: type)
        return ownedKey(hash: h)
    }

    private mutating func append(_ src: UnsafeRawBufferPointer, _ r: Range<Int>) {
        let n = min(r.count, Int(UInt16.max))
        body.append(UInt8(truncatingIfNeeded: n))
        body.append(UInt8(truncatingIfNeeded: n >> 8))
        body.append(contentsOf: UnsafeRawBufferPointer(rebasing: src[r.lowerBound..<(r.lowerBound + n)]))
    }

    private static func compare(_ src: UnsafeRawBufferPointer, _ a: Range<Int>, _ b: Range<Int>) -> Int32 {
        guard let base = src.baseAddress else { return 0 }
        let c = memcmp(base + a.lowerBound, base + b.lowerBound, min(a.count, b.count))
        if c != 0 { return c }
        return a.count == b.count ? 0 : (a.count < b.count ? -1 : 1)
    }

    /// A seeded 64-bit hash, eight bytes at a time, with a splitmix64 finalizer.
    static func hash(_ p: UnsafeRawBufferPointer, seed: UInt64) -> UInt64 {
        var h = seed ^ (UInt64(p.count) &* 0x9E37_79B9_7F4A_7C15)
        var i = 0
        let n = p.count
        while i + 8 <= n {
            h = (h ^ p.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xBF58_476D_1CE4_E5B9
            h ^= h >> 29
            i += 8
        }
        if i < n {
            var w: UInt64 = 0
            var shift: UInt64 = 0
            while i < n {
                w |= UInt64(p[i]) << shift
                shift += 8
                i += 1
            }
            h = (h ^ w) &* 0xBF58_476D_1CE4_E5B9
            h ^= h >> 29
        }
        h ^= h >> 30
        h &*= 0xBF58_476D_1CE4_E5B9
        h ^= h >> 27
        h &*= 0x94D0_49BB_1331_11EB
        h ^= h >> 31
        return h
    }
}
