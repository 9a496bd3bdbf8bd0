import Glibc

/// A HyperLogLog sketch of precision 14: 16,384 one-byte registers (16 KiB), about 0.8%
/// standard error (1.04 / √16384) at any cardinality. A set switches to it past
/// `max_set_members` (SPEC section 2), so that one series' memory is bounded whatever the
/// member rate.
///
/// Members arrive as seeded, well-mixed 64-bit hashes: the top 14 bits pick the register,
/// the rest give the rank. The estimate is Ertl's improved estimator ("New cardinality
/// estimation algorithms for HyperLogLog sketches", 2017), which needs neither the original's
/// linear-counting switch nor its bias tables, and is unbiased from a handful of members to
/// billions.
struct HyperLogLog {
    static let precision = 14
    static let registerCount = 1 << precision
    /// Bits of a hash left for the rank; a register holds 0 (empty) to `q + 1`.
    static let q = 64 - precision

    private(set) var registers: [UInt8]

    init() { registers = [UInt8](repeating: 0, count: Self.registerCount) }

    /// Adds one member hash.
    @inline(__always)
    mutating func insert(_ hash: UInt64) {
        let index = Int(truncatingIfNeeded: hash >> UInt64(Self.q))
        let rest = hash << UInt64(Self.precision)
        // Leading zeros of the remaining 50 bits, plus one; all zero is the largest rank, q + 1.
        let rank = UInt8(truncatingIfNeeded: rest == 0 ? Self.q + 1 : min(rest.leadingZeroBitCount + 1, Self.q + 1))
        registers.withUnsafeMutableBufferPointer { r in
            if rank > r[index] { r[index] = rank }
        }
    }

    /// Takes in every member `other` saw (register-wise maximum).
    mutating func formUnion(_ other: HyperLogLog) {
        registers.withUnsafeMutableBufferPointer { r in
            other.registers.withUnsafeBufferPointer { o in
                for i in 0..<Self.registerCount where o[i] > r[i] { r[i] = o[i] }
            }
        }
    }

    /// The estimated number of distinct members.
    var estimate: Double {
        let m = Double(Self.registerCount)
        var histogram = [Double](repeating: 0, count: Self.q + 2)
        for value in registers { histogram[Int(value)] += 1 }
        var z = m * Self.tau(1 - histogram[Self.q + 1] / m)
        for k in stride(from: Self.q, through: 1, by: -1) { z = 0.5 * (z + histogram[k]) }
        z += m * Self.sigma(histogram[0] / m)
        return (m * m / (2 * log(2.0)) / z).rounded()
    }

    /// σ(x) = x + Σ_{k≥1} x^(2^k) 2^(k-1); infinite at 1 (every register empty: estimate 0).
    private static func sigma(_ x: Double) -> Double {
        if x == 1 { return .infinity }
        var x = x
        var y = 1.0
        var z = x
        while true {
            x *= x
            let previous = z
            z += x * y
            y += y
            if z == previous { return z }
        }
    }

    /// τ(x) = (1/3)(1 − x − Σ_{k≥1} (1 − x^(2^−k))² 2^−k).
    private static func tau(_ x: Double) -> Double {
        if x == 0 || x == 1 { return 0 }
        var x = x
        var y = 1.0
        var z = 1 - x
        while true {
            x = x.squareRoot()
            let previous = z
            y *= 0.5
            z -= (1 - x) * (1 - x) * y
            if z == previous { return z / 3 }
        }
    }
}
