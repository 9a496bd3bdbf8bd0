/// Checks that bytes are well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
enum UTF8Validation {
    /// - Returns: whether `bytes[range]` is valid UTF-8; ASCII is checked eight bytes at a time.
    static func isValid(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        var i = range.lowerBound
        let end = range.upperBound
        while i &+ 8 <= end {
            if bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { break }
            i &+= 8
        }
        while i < end {
            let b0 = bytes[i]
            if b0 < 0x80 { i &+= 1; continue }
            func cont(_ k: Int) -> Bool { k < end && bytes[k] & 0xC0 == 0x80 }
            switch b0 {
            case 0xC2...0xDF:
                guard cont(i &+ 1) else { return false }
                i &+= 2
            case 0xE0...0xEF:
                guard cont(i &+ 1), cont(i &+ 2) else { return false }
                let b1 = bytes[i &+ 1]
                if b0 == 0xE0 && b1 < 0xA0 { return false }  // overlong
                if b0 == 0xED && b1 > 0x9F { return false }  // surrogate
                i &+= 3
            case 0xF0...0xF4:
                guard cont(i &+ 1), cont(i &+ 2), cont(i &+ 3) else { return false }
                let b1 = bytes[i &+ 1]
                if b0 == 0xF0 && b1 < 0x90 { return false }  // overlong
                if b0 == 0xF4 && b1 > 0x8F { return false }  // > U+10FFFF
                i &+= 4
            default:
                return false
            }
        }
        return true
    }
}
