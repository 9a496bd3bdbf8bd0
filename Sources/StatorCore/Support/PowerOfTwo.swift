extension Int {
    /// The smallest power of two that is at least `n` and at least `minimum` (a power of two):
    /// the size of a table that masks its indices.
    static func powerOfTwo(atLeast n: Int, minimum: Int) -> Int {
        var p = minimum
        while p < n { p <<= 1 }
        return p
    }
}
