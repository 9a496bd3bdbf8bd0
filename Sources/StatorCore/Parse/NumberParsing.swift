import Glibc

/// Parses decimal numbers from bytes: an exact fast path for the common short
/// forms (`12`, `-3.25`) and `strtod` for the rest (exponents, long mantissas).
enum NumberParsing {
    private static let powersOf10: [Double] = (0...22).map { exp in
        var v = 1.0
        for _ in 0..<exp { v *= 10 }
        return v
    }

    /// The longest number text read: `%f` of the largest double is 316 bytes. A longer one is
    /// refused before a byte of it is read, so that a 60 KB value costs no more than finding
    /// its end (`strtod` over it cost 100-230 µs).
    static let maxBytes = 512

    /// Parses `[+-]?(digits[.digits*]|.digits)([eE][+-]?digits)?` of at most `maxBytes` into a
    /// finite Double. Hex, `_` separators, `inf`, `nan` and anything that overflows to ±Inf
    /// are rejected.
    /// - Returns: the value, or `nil` when the text is not such a number.
    @inline(__always)
    static func parseDouble(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Double? {
        guard range.count <= maxBytes else { return nil }
        // The common case inline: up to 15 digits without sign or point, exact as an integer.
        var whole: UInt64 = 0
        var j = range.lowerBound
        let end = range.upperBound
        while j < end {
            let d = bytes[j] &- 48
            if d >= 10 { break }
            whole = whole &* 10 &+ UInt64(d)
            j &+= 1
        }
        if j == end, j > range.lowerBound, j &- range.lowerBound <= 15 { return Double(whole) }
        return parseGeneral(bytes, range)
    }

    /// `parseDouble` for everything but short plain integers.
    @inline(never)
    private static func parseGeneral(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Double? {
        var i = range.lowerBound
        let end = range.upperBound
        guard i < end else { return nil }
        var negative = false
        if bytes[i] == UInt8(ascii: "-") || bytes[i] == UInt8(ascii: "+") {
            negative = bytes[i] == UInt8(ascii: "-")
            i &+= 1
        }
        var mantissa: UInt64 = 0
        var digits = 0
        var fractionDigits = 0
        var exact = true
        while i < end, bytes[i] &- 48 < 10 {
            if mantissa < 1 << 53 / 10 { mantissa = mantissa &* 10 &+ UInt64(bytes[i] &- 48) } else { exact = false }
            digits &+= 1
            i &+= 1
        }
        if i < end, bytes[i] == UInt8(ascii: ".") {
            i &+= 1
            while i < end, bytes[i] &- 48 < 10 {
                if mantissa < 1 << 53 / 10 { mantissa = mantissa &* 10 &+ UInt64(bytes[i] &- 48) } else { exact = false }
                digits &+= 1
                fractionDigits &+= 1
                i &+= 1
            }
        }
        guard digits > 0 else { return nil }
        if i == end, exact, fractionDigits <= 22 {
            // (Integers, the common case, skip the table: reading a global costs a `swift_once` check.)
            let magnitude = fractionDigits == 0 ? Double(mantissa) : Double(mantissa) / powersOf10[fractionDigits]
            return negative ? -magnitude : magnitude
        }
        if i < end {
            guard bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") else { return nil }
            i &+= 1
            if i < end, bytes[i] == UInt8(ascii: "-") || bytes[i] == UInt8(ascii: "+") { i &+= 1 }
            let expStart = i
            while i < end, bytes[i] &- 48 < 10 { i &+= 1 }
            guard i > expStart, i == end else { return nil }
        }
        let value = strtodCopy(bytes, range)
        return value.isFinite ? value : nil
    }

    /// Runs `strtod` on a NUL-terminated stack copy of the already validated text.
    private static func strtodCopy(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Double {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: range.count + 1) { buffer in
            var j = 0
            for k in range {
                buffer[j] = CChar(bitPattern: bytes[k])
                j &+= 1
            }
            buffer[j] = 0
            guard let start = buffer.baseAddress else { return .nan }
            return strtod(start, nil)
        }
    }

    /// Parses an unsigned decimal integer (for `|T` timestamps).
    static func isUnsignedInteger(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        guard !range.isEmpty, range.count <= 19 else { return false }
        for k in range where bytes[k] &- 48 >= 10 { return false }
        return true
    }
}
