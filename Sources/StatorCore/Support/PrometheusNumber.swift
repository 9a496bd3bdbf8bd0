/// Formats sample values the way the text exposition format expects.
public enum PrometheusNumber {
    /// `+Inf`, `-Inf`, `NaN`, integers without a fraction, else the shortest round-trip form.
    public static func format(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(.towardZero), abs(v) < 9_007_199_254_740_992 { return String(Int64(v)) }
        return v.description
    }

    /// Appends `format(v)`, writing integers digit by digit (no String).
    @inline(__always)
    static func append(_ v: Double, to out: inout [UInt8]) {
        if v == v.rounded(.towardZero), abs(v) < 9_007_199_254_740_992 {
            JSONWriter.appendInteger(Int64(v), to: &out)
            return
        }
        out.append(contentsOf: format(v).utf8)
    }
}
