/// Upper bounds of one histogram's buckets (ascending, finite; `+Inf` is implicit).
/// Shared by reference between every series that uses the same list.
public final class BucketBounds: Sendable, Equatable {
    /// The configured upper bounds, in the Prometheus unit (seconds for timers).
    public let upperBounds: [Double]
    /// `le="0.005"` ... `le="+Inf"`, rendered once for every page.
    let leLabels: [[UInt8]]

    /// What a value is multiplied by before it is bucketed (after a timer's milliseconds become
    /// seconds): a mapping rule's `scale`, else 1.
    public let valueScale: Double

    /// The native histogram each series of these bounds keeps beside its buckets, or `nil`
    /// for none (SPEC section 13).
    public let native: NativeHistogramOptions?

    public init(_ upperBounds: [Double], valueScale: Double = 1, native: NativeHistogramOptions? = nil) {
        self.upperBounds = upperBounds
        self.valueScale = valueScale
        self.native = native
        leLabels = upperBounds.map { Array("le=\"\(PrometheusNumber.format($0))\"".utf8) } + [Array("le=\"+Inf\"".utf8)]
    }

    public static func == (a: BucketBounds, b: BucketBounds) -> Bool {
        a === b || (a.upperBounds == b.upperBounds && a.valueScale == b.valueScale && a.native == b.native)
    }

    /// The same bounds with `native` histograms (itself when they are already those).
    public func with(native: NativeHistogramOptions?) -> BucketBounds {
        native == self.native ? self : BucketBounds(upperBounds, valueScale: valueScale, native: native)
    }

    /// The index of the first bucket whose bound is >= `x` (`upperBounds.count` for the `+Inf` bucket).
    /// (`x` is finite or infinite, never NaN: the parser rejects NaN.)
    ///
    /// Without a branch on the values: the loop runs `log2(count)` times whatever `x` is, and each
    /// step moves `base` by a conditional add. The usual binary search took a branch per step
    /// that timer values (spread over the buckets) mispredicted about every other time.
    @inline(__always)
    func bucket(for x: Double) -> Int {
        upperBounds.withUnsafeBufferPointer { bounds in
            var n = bounds.count
            guard let b = bounds.baseAddress, n > 0 else { return 0 }
            var base = 0
            while n > 1 {
                let half = n >> 1
                // The first bound >= x is past base + half - 1 when that bound is below x.
                base &+= b[base &+ half &- 1] < x ? half : 0
                n &-= half
            }
            return base &+ (b[base] < x ? 1 : 0)
        }
    }

    /// `bucket(for:)` as a plain binary search (tests hold the branchless one to it).
    func bucketBySearch(for x: Double) -> Int {
        var low = 0
        var high = upperBounds.count
        while low < high {
            let mid = (low &+ high) >> 1
            if x <= upperBounds[mid] { high = mid } else { low = mid &+ 1 }
        }
        return low
    }
}

/// Which buckets a histogram series gets: the first `bucket_overrides` glob
/// that matches the statsd name, else the default list.
public struct HistogramBuckets: Sendable {
    /// One `{"match": glob, "buckets": [...]}` entry.
    public struct Override: Sendable {
        /// `*` matches any run of bytes (dots included), `?` one byte.
        public var match: String
        public var bounds: BucketBounds

        public init(match: String, buckets: [Double]) {
            self.match = match
            bounds = BucketBounds(buckets)
        }
    }

    /// SPEC section 4's default buckets.
    public static let defaultBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    public var defaults: BucketBounds
    public var overrides: [Override]

    public init(defaults: [Double] = HistogramBuckets.defaultBuckets, overrides: [Override] = []) {
        self.defaults = BucketBounds(defaults)
        self.overrides = overrides
    }

    /// The same buckets, each list with `native` histograms.
    public func with(native: NativeHistogramOptions?) -> HistogramBuckets {
        var copy = self
        copy.defaults = defaults.with(native: native)
        for k in copy.overrides.indices { copy.overrides[k].bounds = overrides[k].bounds.with(native: native) }
        return copy
    }

    /// The bounds for a statsd name (called once per new series).
    func bounds(for name: UnsafeRawBufferPointer) -> BucketBounds { bounds(at: boundsIndex(for: name)) }

    /// Which bounds a series name takes: 0 for the defaults, `k + 1` for `overrides[k]`
    /// (a series table keeps this small number rather than a reference).
    func boundsIndex(for name: UnsafeRawBufferPointer) -> Int {
        for (k, o) in overrides.enumerated() where Glob.matches(Array(o.match.utf8), name) { return k + 1 }
        return 0
    }

    /// The bounds `boundsIndex(for:)` numbered `index`.
    func bounds(at index: Int) -> BucketBounds { index == 0 ? defaults : overrides[index - 1].bounds }

    /// Checks a bucket list: non-empty, finite, strictly increasing.
    /// - Returns: the problem, or `nil` when the list is valid.
    public static func problem(with buckets: [Double]) -> String? {
        if buckets.isEmpty { return "must not be empty" }
        if buckets.contains(where: { !$0.isFinite }) { return "must be finite numbers (+Inf is implicit)" }
        for (a, b) in zip(buckets, buckets.dropFirst()) where a >= b { return "must be strictly increasing" }
        return nil
    }
}

/// Shell-style globs on characters: `*` any run (including `.`), `?` one character, everything
/// else literal. Every glob of Stator (bucket overrides, the roll-ups' `match` and `limits`, the
/// roll-up API's `name`) goes through this one matcher, so that a name matches the same
/// everywhere. A character is a UTF-8 scalar; a byte that does not start a well-formed one counts
/// as one character on its own.
enum Glob {
    /// Worst case O(pattern x text) steps (one `*` is retried at a time).
    static func matches(_ pattern: [UInt8], _ text: UnsafeRawBufferPointer) -> Bool {
        var p = 0
        var t = 0
        var star = -1
        var mark = 0
        while t < text.count {
            if p < pattern.count, pattern[p] == UInt8(ascii: "*") {
                star = p
                mark = t
                p += 1
            } else if p < pattern.count, pattern[p] == UInt8(ascii: "?") {
                p += 1
                t += characterLength(text, at: t)
            } else if p < pattern.count, pattern[p] == text[t] {
                p += 1
                t += 1
            } else if star >= 0 {
                // The `*` takes one more character; `mark` stays on a character's first byte.
                p = star + 1
                mark += characterLength(text, at: mark)
                t = mark
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == UInt8(ascii: "*") { p += 1 }
        return p == pattern.count
    }

    /// The bytes of the character at `i` (< `text.count`): a well-formed UTF-8 scalar's length,
    /// or 1 for a byte that does not start one.
    static func characterLength(_ text: UnsafeRawBufferPointer, at i: Int) -> Int {
        let lead = text[i]
        let length: Int
        var low: UInt8 = 0x80  // the second byte's range (Unicode's table of well-formed UTF-8)
        var high: UInt8 = 0xBF
        switch lead {
        case 0x00...0x7F: return 1
        case 0xC2...0xDF: length = 2
        case 0xE0...0xEF:
            length = 3
            if lead == 0xE0 { low = 0xA0 } else if lead == 0xED { high = 0x9F }
        case 0xF0...0xF4:
            length = 4
            if lead == 0xF0 { low = 0x90 } else if lead == 0xF4 { high = 0x8F }
        default: return 1
        }
        guard i + length <= text.count, text[i + 1] >= low, text[i + 1] <= high else { return 1 }
        for k in (i + 2)..<(i + length) where text[k] & 0xC0 != 0x80 { return 1 }
        return length
    }

    /// A string's UTF-8 bytes against a pattern (read in place, not copied).
    static func matches(_ pattern: [UInt8], _ text: String) -> Bool {
        var text = text
        return text.withUTF8 { matches(pattern, UnsafeRawBufferPointer($0)) }
    }

    /// Convenience for tests and tools.
    static func matches(_ pattern: String, _ text: String) -> Bool { matches(Array(pattern.utf8), text) }
}
