import Glibc

/// Appends JSON text to a byte buffer without going through `String` for every value.
///
/// Used by the JSON-lines sink (one buffer per flush), the push sink's JSON bodies and the
/// logger. The buffer is its own (noncopyable: one owner), written with `memcpy`: through a
/// Swift array, each of the dozens of appends of a series' object goes through generic
/// sequence copying (BENCHMARKS.md has the figures).
public struct JSONWriter: ~Copyable {
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    /// Bytes written so far.
    public private(set) var count = 0

    /// Creates a writer with an empty buffer of the given capacity.
    public init(capacity: Int = 256) {
        self.capacity = max(capacity, 16)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    /// Forgets what was written, keeping the buffer if it is at most `limit` bytes (else
    /// starting again with a small one).
    public mutating func removeAll(keepingCapacityUpTo limit: Int) {
        count = 0
        if capacity > limit {
            base.deallocate()
            capacity = 16
            base = .allocate(capacity: capacity)
        }
    }

    /// Makes room for `n` bytes in all (one allocation instead of several doublings).
    public mutating func reserveCapacity(_ n: Int) {
        if n > capacity { grow(n) }
    }

    /// A copy of the bytes written so far.
    public var bytes: [UInt8] { Array(UnsafeBufferPointer(start: base, count: count)) }

    /// Calls `body` with the bytes written so far, in place (valid only inside `body`).
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// Appends `n` bytes from `p`.
    @inline(__always)
    mutating func append(_ p: UnsafeRawPointer, _ n: Int) {
        if count &+ n > capacity { grow(count &+ n) }
        memcpy(base + count, p, n)
        count &+= n
    }

    /// Appends bytes as they are.
    @inline(__always)
    mutating func raw(_ bytes: UnsafeRawBufferPointer) {
        if let p = bytes.baseAddress { append(p, bytes.count) }
    }

    /// Appends bytes as they are.
    mutating func raw(_ bytes: [UInt8]) { bytes.withUnsafeBytes { raw($0) } }

    @inline(__always)
    mutating func raw(_ byte: UInt8) {
        if count == capacity { grow(count &+ 1) }
        base[count] = byte
        count &+= 1
    }

    @inline(__always)
    mutating func raw(_ text: StaticString) {
        append(text.utf8Start, text.utf8CodeUnitCount)
    }

    private mutating func grow(_ least: Int) {
        let bigger = Swift.max(least, capacity * 2)
        let storage = UnsafeMutablePointer<UInt8>.allocate(capacity: bigger)
        storage.update(from: base, count: count)
        base.deallocate()
        base = storage
        capacity = bigger
    }

    /// Appends a quoted, escaped JSON string from UTF-8 bytes. Runs of bytes that need no
    /// escape (in metric names and tags, all of them) are appended whole.
    mutating func string(_ utf8: UnsafeRawBufferPointer) {
        raw(UInt8(ascii: "\""))
        var run = 0
        for (i, b) in utf8.enumerated() where Self.needsEscape(b) {
            if run < i { raw(UnsafeRawBufferPointer(rebasing: utf8[run..<i])) }
            run = i + 1
            raw(UInt8(ascii: "\\"))
            switch b {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): raw(b)
            case 0x0A: raw(UInt8(ascii: "n"))
            case 0x0D: raw(UInt8(ascii: "r"))
            case 0x09: raw(UInt8(ascii: "t"))
            default:
                raw("u00")
                raw(Hex.digit(b >> 4))
                raw(Hex.digit(b & 0xF))
            }
        }
        if run < utf8.count { raw(UnsafeRawBufferPointer(rebasing: utf8[run...])) }
        raw(UInt8(ascii: "\""))
    }

    /// The bytes `string(_:)` writes for `utf8`, quotes included.
    static func escapedCount(_ utf8: [UInt8]) -> Int {
        var n = utf8.count + 2
        for b in utf8 where needsEscape(b) {
            switch b {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), 0x0A, 0x0D, 0x09: n += 1
            default: n += 5
            }
        }
        return n
    }

    /// `"`, `\`, the control bytes and DEL.
    @inline(__always)
    private static func needsEscape(_ b: UInt8) -> Bool {
        b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") || b == 0x7F
    }

    /// Appends a quoted, escaped JSON string.
    mutating func string(_ text: String) {
        var copy = text
        copy.withUTF8 { string(UnsafeRawBufferPointer($0)) }
    }

    /// Appends a quoted, escaped JSON string from UTF-8 bytes.
    mutating func string(_ bytes: [UInt8]) { bytes.withUnsafeBytes { string($0) } }

    /// Appends text as it is (no quotes, no escapes).
    mutating func text(_ text: String) {
        var copy = text
        copy.withUTF8 { raw(UnsafeRawBufferPointer($0)) }
    }

    /// Appends a JSON number: integers without a fraction, shortest round-trip
    /// form otherwise, and `null` for NaN and ±Inf (JSON has no infinities).
    mutating func number(_ value: Double) {
        guard value.isFinite else { raw("null"); return }
        if value == value.rounded(.towardZero), abs(value) < 9_007_199_254_740_992 {
            integer(Int64(value))
            return
        }
        text(value.description)
    }

    /// Appends an integer (no allocation).
    mutating func integer(_ value: Int64) {
        Self.withDigits(of: value) { raw($0) }
    }

    /// Appends an integer's digits to `out` (no allocation).
    static func appendInteger(_ value: Int64, to out: inout [UInt8]) {
        withDigits(of: value) { out.append(contentsOf: $0) }
    }

    /// Calls `body` with the decimal digits of `value` (and its sign), written backwards into
    /// a buffer on the stack.
    @inline(__always)
    private static func withDigits(of value: Int64, _ body: (UnsafeRawBufferPointer) -> Void) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: a sign and up to 19 digits
        withUnsafeMutableBytes(of: &digits) { buffer in
            var v = value.magnitude
            var start = buffer.count
            repeat {
                start -= 1
                buffer[start] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: v % 10)
                v /= 10
            } while v > 0
            if value < 0 {
                start -= 1
                buffer[start] = UInt8(ascii: "-")
            }
            body(UnsafeRawBufferPointer(rebasing: buffer[start...]))
        }
    }
}
