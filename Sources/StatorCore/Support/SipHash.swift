/// SipHash-2-4 (Aumasson and Bernstein, 2012): a keyed 64-bit pseudorandom function. Stator
/// uses it for `tags.hash` pseudonyms: without the 128-bit key nobody can compute or check
/// the pseudonym of a value, and under one key a value always gets the same one.
struct SipHash24: Sendable {
    /// The key as the reference implementation reads its 16 bytes: two little-endian words.
    let k0: UInt64
    let k1: UInt64

    /// - Parameter key: exactly 16 bytes.
    init(key: [UInt8]) {
        precondition(key.count == 16, "a SipHash key is 16 bytes")
        var k0: UInt64 = 0
        var k1: UInt64 = 0
        for i in 0..<8 {
            k0 |= UInt64(key[i]) << (8 * UInt64(i))
            k1 |= UInt64(key[8 + i]) << (8 * UInt64(i))
        }
        self.k0 = k0
        self.k1 = k1
    }

    /// The 64-bit output of `message`, as a number (the reference writes it little-endian).
    func hash(_ message: UnsafeRawBufferPointer) -> UInt64 {
        var v0: UInt64 = 0x736f_6d65_7073_6575 ^ k0
        var v1: UInt64 = 0x646f_7261_6e64_6f6d ^ k1
        var v2: UInt64 = 0x6c79_6765_6e65_7261 ^ k0
        var v3: UInt64 = 0x7465_6462_7974_6573 ^ k1

        @inline(__always)
        func round() {
            v0 &+= v1
            v1 = v1.rotatedLeft(13)
            v1 ^= v0
            v0 = v0.rotatedLeft(32)
            v2 &+= v3
            v3 = v3.rotatedLeft(16)
            v3 ^= v2
            v0 &+= v3
            v3 = v3.rotatedLeft(21)
            v3 ^= v0
            v2 &+= v1
            v1 = v1.rotatedLeft(17)
            v1 ^= v2
            v2 = v2.rotatedLeft(32)
        }

        let n = message.count
        let whole = n & ~7
        var i = 0
        while i < whole {
            var m: UInt64 = 0
            for b in 0..<8 { m |= UInt64(message[i + b]) << (8 * UInt64(b)) }
            v3 ^= m
            round()
            round()
            v0 ^= m
            i += 8
        }
        // The last block: the remaining bytes, and the length's low byte on top.
        var last = UInt64(truncatingIfNeeded: n) << 56
        for b in 0..<(n - whole) { last |= UInt64(message[whole + b]) << (8 * UInt64(b)) }
        v3 ^= last
        round()
        round()
        v0 ^= last
        v2 ^= 0xff
        round()
        round()
        round()
        round()
        return v0 ^ v1 ^ v2 ^ v3
    }

    /// The pseudonym of `message`: the 8 output bytes in the reference's order, as 16
    /// lowercase hex digits, written to `out` (16 bytes).
    func pseudonym(_ message: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<UInt8>) {
        let h = hash(message)
        for b in 0..<8 {
            let byte = UInt8(truncatingIfNeeded: h >> (8 * UInt64(b)))
            out[2 * b] = Hex.digit(byte >> 4)
            out[2 * b + 1] = Hex.digit(byte & 0x0f)
        }
    }

    /// `pseudonym(_:into:)` as a string (tests, tools).
    func pseudonym(_ text: String) -> String {
        let bytes = Array(text.utf8)
        var out = [UInt8](repeating: 0, count: 16)
        bytes.withUnsafeBytes { m in
            out.withUnsafeMutableBufferPointer { o in o.baseAddress.map { pseudonym(m, into: $0) } }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension UInt64 {
    @inline(__always)
    fileprivate func rotatedLeft(_ n: UInt64) -> UInt64 { (self << n) | (self >> (64 - n)) }
}
