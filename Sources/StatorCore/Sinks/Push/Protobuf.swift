/// Protocol buffers, the little of the wire format the push encoders and the Prometheus
/// protobuf page need, written by hand: varints (zigzag for `sint32`/`sint64`), fixed 64-bit
/// fields, packed repeated fields, length-delimited fields and nested messages.
struct ProtobufWriter {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    var isEmpty: Bool { bytes.isEmpty }

    mutating func removeAll() { bytes.removeAll(keepingCapacity: true) }

    mutating func append(contentsOf raw: some Collection<UInt8>) { bytes.append(contentsOf: raw) }

    mutating func append(_ other: ProtobufWriter) { bytes.append(contentsOf: other.bytes) }

    /// Appends `value` as a base-128 varint (`Varint`), the encoding Snappy's length header uses too.
    mutating func varint(_ value: UInt64) { Varint.append(value, to: &bytes) }

    /// The bytes `varint` writes for `n`: what a message's length prefix is sized by before
    /// the message is written.
    static func varintSize(_ n: UInt64) -> Int {
        var size = 1
        var v = n >> 7
        while v > 0 {
            size += 1
            v >>= 7
        }
        return size
    }

    static func varintSize(_ n: Int) -> Int { varintSize(UInt64(n)) }

    /// A field's key: its number and wire type (0 varint, 1 fixed64, 2 length-delimited).
    mutating func key(_ field: UInt32, _ wireType: UInt8) { varint(UInt64(field) << 3 | UInt64(wireType)) }

    mutating func varintField(_ field: UInt32, _ value: UInt64) {
        key(field, 0)
        varint(value)
    }

    /// A `sint32` or `sint64` field: zigzag, so that small negative numbers stay short.
    mutating func sintField(_ field: UInt32, _ value: Int64) {
        key(field, 0)
        varint(Self.zigzag(value))
    }

    /// `sint64`'s zigzag encoding: 0, -1, 1, -2 ... become 0, 1, 2, 3 ... (for `sint32` too,
    /// whose values it maps the same).
    @inline(__always)
    static func zigzag(_ n: Int64) -> UInt64 { UInt64(bitPattern: (n << 1) ^ (n >> 63)) }

    /// A packed `repeated double`: one key and length, then the values (nothing when empty).
    mutating func packedDoubles(_ field: UInt32, _ values: some Collection<Double>) {
        guard !values.isEmpty else { return }
        key(field, 2)
        varint(UInt64(values.count * 8))
        for v in values { fixed64(v.bitPattern) }
    }

    /// Whether a weighted count can go in an integer field: whole, not negative, below 2^63
    /// (a difference of two of them is then an `Int64`).
    @inline(__always)
    static func isWholeCount(_ x: Double) -> Bool { x >= 0 && x < 0x1p63 && x == x.rounded(.towardZero) }

    /// One sign of a native histogram, as both Prometheus messages lay it out (the page's
    /// `io.prometheus.client.Histogram` and remote write's `prompb.Histogram`): its
    /// `BucketSpan`s {offset 1 (sint32), length 2} as field `spansField`, then its counts,
    /// as packed `sint64` differences from the bucket before (across spans) in field
    /// `spansField + 1` when `whole`, else as packed absolute `double`s in `spansField + 2`.
    /// Nothing for a sign without buckets.
    /// - Returns: how many spans were written.
    @discardableResult
    mutating func nativeBuckets(_ window: BucketWindow, spansField: UInt32, whole: Bool) -> Int {
        guard window.populated > 0 else { return 0 }
        let (spans, counts) = window.spans()
        for span in spans {
            let offset = Self.zigzag(Int64(span.offset))
            key(spansField, 2)
            varint(UInt64(1 + Self.varintSize(offset) + 1 + Self.varintSize(UInt64(span.length))))
            varintField(1, offset)
            varintField(2, UInt64(span.length))
        }
        if whole {
            var previous: Int64 = 0
            packedSints(
                spansField + 1,
                counts.map { count in
                    defer { previous = Int64(count) }
                    return Int64(count) &- previous
                })
        } else {
            packedDoubles(spansField + 2, counts)
        }
        return spans.count
    }

    /// A packed `repeated sint64` (nothing when empty).
    mutating func packedSints(_ field: UInt32, _ values: some Collection<Int64>) {
        guard !values.isEmpty else { return }
        var size = 0
        for v in values { size += Self.varintSize(Self.zigzag(v)) }
        key(field, 2)
        varint(UInt64(size))
        for v in values { varint(Self.zigzag(v)) }
    }

    mutating func fixed64Field(_ field: UInt32, _ value: UInt64) {
        key(field, 1)
        fixed64(value)
    }

    mutating func doubleField(_ field: UInt32, _ value: Double) { fixed64Field(field, value.bitPattern) }

    mutating func fixed64(_ value: UInt64) {
        var v = value.littleEndian
        withUnsafeBytes(of: &v) { bytes.append(contentsOf: $0) }
    }

    mutating func bytesField(_ field: UInt32, _ value: UnsafeRawBufferPointer) {
        key(field, 2)
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    mutating func bytesField(_ field: UInt32, _ value: [UInt8]) { value.withUnsafeBytes { bytesField(field, $0) } }

    mutating func stringField(_ field: UInt32, _ value: String) { bytesField(field, Array(value.utf8)) }

    /// A nested message: `body` writes it into `scratch` (kept by the caller between calls, so
    /// that nesting does not allocate per message), then it is appended with its length.
    mutating func message(_ field: UInt32, scratch: inout ProtobufWriter, _ body: (inout ProtobufWriter) -> Void) {
        scratch.removeAll()
        body(&scratch)
        key(field, 2)
        varint(UInt64(scratch.bytes.count))
        bytes.append(contentsOf: scratch.bytes)
    }

    /// Appends an already encoded message as field `field`.
    mutating func message(_ field: UInt32, _ encoded: ProtobufWriter) { bytesField(field, encoded.bytes) }
}

/// Reads the fields of one protobuf message: enough to pick fields out of a small answer.
struct ProtobufReader {
    enum Value {
        case varint(UInt64)
        case fixed64(UInt64)
        case bytes(ArraySlice<UInt8>)
        case fixed32(UInt32)
    }

    private let bytes: ArraySlice<UInt8>
    private var position: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        position = bytes.startIndex
    }

    private mutating func varint() -> UInt64? { Varint.read(bytes, at: &position) }

    /// A little-endian fixed-width field of `count` bytes (8 or 4), or nil past the end.
    private mutating func fixed(_ count: Int) -> UInt64? {
        guard bytes.endIndex - position >= count else { return nil }
        var v: UInt64 = 0
        for k in 0..<count { v |= UInt64(bytes[position + k]) << (8 * UInt64(k)) }
        position += count
        return v
    }

    /// The next field, or nil at the end or at malformed input.
    mutating func next() -> (field: UInt64, value: Value)? {
        guard position < bytes.endIndex, let key = varint() else { return nil }
        switch key & 7 {
        case 0:
            guard let v = varint() else { return nil }
            return (key >> 3, .varint(v))
        case 1:
            guard let v = fixed(8) else { return nil }
            return (key >> 3, .fixed64(v))
        case 2:
            guard let n = varint(), n <= UInt64(bytes.endIndex - position) else { return nil }
            let start = position
            position += Int(n)
            return (key >> 3, .bytes(bytes[start..<position]))
        case 5:
            guard let v = fixed(4) else { return nil }
            return (key >> 3, .fixed32(UInt32(v)))
        default:
            return nil
        }
    }
}
