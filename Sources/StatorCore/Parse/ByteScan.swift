import Glibc

/// Byte searches eight bytes at a time (SWAR), for the short ranges of a line, where a
/// call to `memchr` costs more than the search; `find` calls `memchr` for long ranges.
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

    /// The index of the first `byte` in `bytes[range]`, or `nil`, found with `memchr` (vector
    /// compares): for ranges that may be long, such as the rest of a refused line.
    @inline(__always)
    public static func find(_ byte: UInt8, in bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int? {
        guard !range.isEmpty, let base = bytes.baseAddress, let hit = memchr(base + range.lowerBound, Int32(byte), range.count)
        else { return nil }
        return base.distance(to: UnsafeRawPointer(hit))
    }

    /// Calls `body` with the `count` bytes at `p` as 64-bit words, for hashing: each eight
    /// bytes in turn, the last eight overlapping the one before (never reading past the end);
    /// four to seven bytes as their first and last four; one to three as the first, middle and
    /// last byte; nothing for none.
    @inline(__always)
    public static func forEachWord(_ p: UnsafeRawPointer, count n: Int, _ body: (UInt64) -> Void) {
        if n >= 8 {
            var i = 0
            while i &+ 8 < n {
                body(p.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                i &+= 8
            }
            body(p.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self))
        } else if n >= 4 {
            body(
                UInt64(p.loadUnaligned(as: UInt32.self)) | UInt64(p.loadUnaligned(fromByteOffset: n &- 4, as: UInt32.self)) << 32)
        } else if n > 0 {
            body(
                UInt64(p.load(as: UInt8.self)) | UInt64(p.load(fromByteOffset: n &>> 1, as: UInt8.self)) << 8
                    | UInt64(p.load(fromByteOffset: n &- 1, as: UInt8.self)) << 16)
        }
    }

    /// Whether `count` bytes at `a` and `b` are equal: words compared in place, the last one
    /// overlapping (never reading past either end), where a call to `memcmp` costs more than
    /// the compare for the short names and suffixes of a line.
    @inline(__always)
    public static func equal(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, count n: Int) -> Bool {
        if n >= 8 {
            var i = 0
            while i &+ 8 < n {
                if a.loadUnaligned(fromByteOffset: i, as: UInt64.self) != b.loadUnaligned(fromByteOffset: i, as: UInt64.self) {
                    return false
                }
                i &+= 8
            }
            return a.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self)
                == b.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self)
        }
        if n >= 4 {
            let first = a.loadUnaligned(as: UInt32.self) ^ b.loadUnaligned(as: UInt32.self)
            let last =
                a.loadUnaligned(fromByteOffset: n &- 4, as: UInt32.self)
                ^ b.loadUnaligned(fromByteOffset: n &- 4, as: UInt32.self)
            return first | last == 0
        }
        if n == 0 { return true }
        // 1 to 3 bytes: the first, the middle and the last.
        let first = a.load(as: UInt8.self) ^ b.load(as: UInt8.self)
        let middle = a.load(fromByteOffset: n &>> 1, as: UInt8.self) ^ b.load(fromByteOffset: n &>> 1, as: UInt8.self)
        let last = a.load(fromByteOffset: n &- 1, as: UInt8.self) ^ b.load(fromByteOffset: n &- 1, as: UInt8.self)
        return first | middle | last == 0
    }
}
