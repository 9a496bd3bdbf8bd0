extension Double {
    /// `self`, or `+Inf` for NaN. Values are finite when they enter (the parser checks them and
    /// their rate-scaled contributions), so a NaN can only come from an aggregate that
    /// overflowed both ways, `+Inf` meeting `-Inf` (two readers' sums, a gauge at `-Inf` given
    /// a delta that overflowed up, a running moment). No NaN may reach a sink (SPEC section 1),
    /// so such an aggregate reads `+Inf`: still an overflow, written `null` in JSON.
    @inline(__always)
    var withoutNaN: Double { isNaN ? .infinity : self }
}
