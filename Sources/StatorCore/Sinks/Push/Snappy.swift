/// Snappy block compression (the format remote write uses), written from the
/// format description: a varint of the uncompressed length, then literals and
/// back-references (copies with a 2-byte offset) found with a hash of 4-byte runs.
public enum Snappy {
    /// Compresses `input` into one snappy block.
    public static func compress(_ input: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(input.count / 2 + 16)
        Varint.append(UInt64(input.count), to: &out)
        input.withUnsafeBufferPointer { src in
            var fragment = 0
            // Fragments of 64 KiB keep every offset within a 2-byte copy.
            while fragment < src.count {
                let end = min(fragment + 65_536, src.count)
                compressFragment(src, fragment, end, &out)
                fragment = end
            }
        }
        return out
    }

    private static func compressFragment(_ src: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, _ out: inout [UInt8]) {
        let tableBits = 14
        var table = [Int32](repeating: -1, count: 1 << tableBits)
        var literalStart = start
        var i = start
        @inline(__always) func load32(_ p: Int) -> UInt32 {
            UInt32(src[p]) | UInt32(src[p + 1]) << 8 | UInt32(src[p + 2]) << 16 | UInt32(src[p + 3]) << 24
        }
        while i + 4 <= end {
            let word = load32(i)
            let h = Int((word &* 0x1E35_A7BD) >> UInt32(32 - tableBits))
            let candidate = Int(table[h])
            table[h] = Int32(i)
            if candidate >= start, candidate < i, load32(candidate) == word {
                var length = 4
                while i + length < end, src[candidate + length] == src[i + length] { length += 1 }
                appendLiteral(src, literalStart, i, &out)
                appendCopy(offset: i - candidate, length: length, &out)
                i += length
                literalStart = i
            } else {
                i += 1
            }
        }
        appendLiteral(src, literalStart, end, &out)
    }

    private static func appendLiteral(_ src: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, _ out: inout [UInt8]) {
        let n = end - start
        guard n > 0 else { return }
        let code = n - 1
        if code < 60 {
            out.append(UInt8(code << 2))
        } else {
            var bytes: [UInt8] = []
            var v = code
            while v > 0 {
                bytes.append(UInt8(v & 0xFF))
                v >>= 8
            }
            out.append(UInt8((59 + bytes.count) << 2))
            out.append(contentsOf: bytes)
        }
        out.append(contentsOf: UnsafeBufferPointer(rebasing: src[start..<end]))
    }

    /// Copies with a 2-byte offset carry 1...64 bytes; longer matches are split so
    /// that no piece is shorter than 4.
    private static func appendCopy(offset: Int, length: Int, _ out: inout [UInt8]) {
        var left = length
        while left > 0 {
            var n = min(left, 64)
            if left - n > 0 && left - n < 4 { n = left - 4 }
            out.append(UInt8(((n - 1) << 2) | 2))
            out.append(UInt8(offset & 0xFF))
            out.append(UInt8(offset >> 8))
            left -= n
        }
    }
}
