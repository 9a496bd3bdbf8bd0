/// Unsigned LEB128 varints: seven bits a byte, least significant first, the high bit set on
/// every byte but the last. Protobuf, Snappy's length preamble and the roll-up blob use them.
enum Varint {
    static func append(_ value: UInt64, to out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    /// The varint at `position`, which moves past it; nil when the bytes end first or it
    /// runs past 64 bits.
    static func read(_ bytes: ArraySlice<UInt8>, at position: inout Int) -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while position < bytes.endIndex, shift < 64 {
            let byte = bytes[position]
            position += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
            shift += 7
        }
        return nil
    }
}
