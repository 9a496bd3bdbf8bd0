/// Appends JSON text to a byte buffer without going through `String` for every value.
///
/// Used by the JSON-lines sink (one buffer per flush) and the logger.
public struct JSONWriter {
    /// The bytes written so far.
    public var bytes: [UInt8]

    /// Creates a writer with an empty buffer of the given capacity.
    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    @inline(__always)
    mutating func raw(_ byte: UInt8) { bytes.append(byte) }

    mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    /// Appends a quoted, escaped JSON string from UTF-8 bytes.
    mutating func string(_ utf8: UnsafeRawBufferPointer) {
        bytes.append(UInt8(ascii: "\""))
        for b in utf8 {
            switch b {
            case UInt8(ascii: "\""): bytes.append(UInt8(ascii: "\\")); bytes.append(b)
            case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\")); bytes.append(b)
            case 0x0A: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "n"))
            case 0x0D: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "r"))
            case 0x09: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "t"))
            case 0..<0x20, 0x7F:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                bytes.append(hex[Int(b >> 4)])
                bytes.append(hex[Int(b & 0xF)])
            default: bytes.append(b)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// Appends a quoted, escaped JSON string.
    mutating func string(_ text: String) {
        var copy = text
        copy.withUTF8 { string(UnsafeRawBufferPointer($0)) }
    }

    /// Appends a JSON number: integers without a fraction, shortest round-trip
    /// form otherwise, and `null` for NaN and ±Inf (JSON has no infinities).
    mutating func number(_ value: Double) {
        guard value.isFinite else { raw("null"); return }
        if value == value.rounded(.towardZero), abs(value) < 9_007_199_254_740_992 {
            integer(Int64(value))
            return
        }
        bytes.append(contentsOf: value.description.utf8)
    }

    /// Appends an integer.
    mutating func integer(_ value: Int64) {
        if value == 0 { bytes.append(UInt8(ascii: "0")); return }
        var v = value.magnitude
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        let start = bytes.count
        while v > 0 {
            bytes.append(UInt8(ascii: "0") &+ UInt8(v % 10))
            v /= 10
        }
        bytes[start...].reverse()
    }
}
