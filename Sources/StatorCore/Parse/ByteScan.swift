/// Byte searches eight bytes at a time (SWAR), for the short ranges of a line, where a
/// call to `memchr` costs more than the search.
public enum ByteScan {
    private static let ones: UInt64 = 0x0101_0101_0101_0101
    private static let highs: UInt64 = 0x8080_8080_8080_8080

    /// The index of the first `byte` in `bytes[range]`, or `nil`.
    @inline(__always)
    public static func firstIndex(of byte: UInt8, in bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int? {
        let pattern = UInt64(byte) &* ones
        var i = range.lowerBound
        let end = range.upperBound
        while i &+ 8 <= end {
            let x = bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ pattern
            // A zero byte of `x` is a match. The lowest set high bit marks the first one exactly
            // (a borrow can only mark bytes above a true match).
            let found = (x &- ones) & ~x & highs
            if found != 0 { return i &+ found.trailingZeroBitCount &>> 3 }
            i &+= 8
        }
        while i < end {
            if bytes[i] == byte { return i }
            i &+= 1
        }
        return nil
    }
}
