import Glibc

/// A sparse exponential ("native") histogram as Prometheus defines it: bucket `i` of schema
/// `s` holds the values in `(base^(i-1), base^i]`, `base = 2^(2^-s)`, mirrored for negative
/// values; values of magnitude at most `zeroThreshold` are counted in the zero bucket.
/// Counts are weights (a sample with rate r counts 1/r), so they are `Double`s.
///
/// A sample costs one bucket index: `frexp` and, for a schema above 0, a binary search of
/// the 2^s bounds of `[0.5, 1)` (no `log`), then a binary search of the populated buckets.
/// Buckets are kept sparse, per sign. Past `maxBuckets` populated buckets the resolution is
/// halved (schema - 1) and neighbouring buckets added together, as Prometheus' client_golang
/// does: never dropping a sample, and bounding a series' memory (16 bytes a bucket) whatever
/// its values.
public struct ExponentialHistogram: Equatable, Sendable {
    static let minSchema: Int8 = -4
    static let maxSchema: Int8 = 8

    public private(set) var schema: Int8
    public let zeroThreshold: Double
    public let maxBuckets: Int
    public private(set) var zeroCount: Double = 0
    public private(set) var count: Double = 0
    public private(set) var sum: Double = 0
    public private(set) var positive = BucketWindow()
    public private(set) var negative = BucketWindow()

    /// - Parameters:
    ///   - schema: from -4 (a factor of 65,536 between bucket bounds) to 8 (about 0.27%).
    ///   - zeroThreshold: the zero bucket's bound (Prometheus: 2^-128).
    ///   - maxBuckets: populated buckets (both signs) before the resolution is halved.
    init(schema: Int8, zeroThreshold: Double = 0x1p-128, maxBuckets: Int = 160) {
        precondition((Self.minSchema...Self.maxSchema).contains(schema), "schema \(schema) outside -4...8")
        self.schema = schema
        self.zeroThreshold = zeroThreshold
        self.maxBuckets = max(1, maxBuckets)
    }

    /// The schema of the largest bucket growth factor, 2^(2^-schema), that is no more than
    /// `factor` (statsd_exporter's `native_histogram_bucket_factor`, chosen as client_golang's
    /// `pickSchema` does: the coarsest resolution that meets the factor), within -4...8;
    /// `nil` for a factor of 1 or less, which asks for no native histogram.
    static func schema(forBucketFactor factor: Double) -> Int8? {
        guard factor > 1, !factor.isNaN else { return nil }
        let floor = log2(log2(factor)).rounded(.down)
        if floor <= -Double(maxSchema) { return maxSchema }
        if floor >= -Double(minSchema) { return minSchema }
        return Int8(-floor)
    }

    /// Counts `value` `weight` times (1 / sample rate). Not-finite values are not counted.
    mutating func observe(_ value: Double, weight: Double = 1) {
        guard value.isFinite, weight.isFinite, weight > 0 else { return }
        count += weight
        // Two overflows of opposite signs make NaN, which no sink may write: +Inf stays.
        sum = (sum + value * weight).withoutNaN
        let magnitude = abs(value)
        guard magnitude > zeroThreshold else {
            zeroCount += weight
            return
        }
        let key = Self.bucketIndex(magnitude, schema: schema)
        if value > 0 { positive.add(weight, at: key) } else { negative.add(weight, at: key) }
        shrinkIfNeeded()
    }

    /// Adds every bucket of `other`, at the coarser of the two schemas (exactly: a bucket of a
    /// finer schema lies whole inside one bucket of a coarser one). The zero thresholds must
    /// agree (one configuration makes both).
    mutating func merge(_ other: ExponentialHistogram) {
        precondition(other.zeroThreshold == zeroThreshold, "merging histograms of different zero buckets")
        var other = other
        if other.schema > schema { other.reduce(to: schema) }
        if schema > other.schema { reduce(to: other.schema) }
        count += other.count
        sum = (sum + other.sum).withoutNaN
        zeroCount += other.zeroCount
        other.positive.forEach { key, weight in positive.add(weight, at: key) }
        other.negative.forEach { key, weight in negative.add(weight, at: key) }
        shrinkIfNeeded()
    }

    /// The bucket index of a positive finite `magnitude` at `schema` (Prometheus' rule: the
    /// upper bound is inclusive, so powers of the base land in the bucket they close).
    @inline(__always)
    static func bucketIndex(_ magnitude: Double, schema: Int8) -> Int {
        let (fraction, exponent) = fractionAndExponent(magnitude)
        if schema > 0 {
            // The first bound at or above the fraction, by a search without a branch on the
            // value (as `BucketBounds.bucket`): fraction == 0.5 (a power of two) is index 0 of
            // its octave, the upper end of the octave before.
            let n = 1 << Int(schema)
            let bounds = NativeBucketBounds.bounds(schema: schema)
            var base = 0
            var count = n
            while count > 1 {
                let half = count >> 1
                base &+= bounds[base &+ half &- 1] < fraction ? half : 0
                count &-= half
            }
            return base &+ (bounds[base] < fraction ? 1 : 0) &+ (exponent &- 1) &* n
        }
        var key = exponent
        if fraction == 0.5 { key -= 1 }  // an exact power of two closes the bucket below
        let shift = Int(-schema)
        let offset = (1 << shift) - 1
        return (key + offset) >> shift
    }

    /// `frexp` of a positive finite value: `value = fraction × 2^exponent`, fraction in
    /// [0.5, 1). A normal value's is read off its bits (the C call is not inlined); a
    /// subnormal one's comes from `frexp`.
    @inline(__always)
    static func fractionAndExponent(_ value: Double) -> (fraction: Double, exponent: Int) {
        let bits = value.bitPattern
        let biased = Int((bits >> 52) & 0x7FF)
        guard biased != 0 else { return frexp(value) }
        return (Double(bitPattern: (bits & 0x000F_FFFF_FFFF_FFFF) | 0x3FE0_0000_0000_0000), biased - 1022)
    }

    /// The bucket at `schema - steps` holding bucket `index` of `schema`.
    @inline(__always)
    static func coarserIndex(_ index: Int, by steps: Int) -> Int { ((index - 1) >> steps) + 1 }

    /// Halves the resolution until the buckets fit.
    private mutating func shrinkIfNeeded() {
        while schema > Self.minSchema && positive.populated + negative.populated > maxBuckets {
            reduce(to: schema - 1)
        }
    }

    /// An empty histogram of the same schema, zero threshold and bucket cap.
    func emptied() -> ExponentialHistogram {
        ExponentialHistogram(schema: schema, zeroThreshold: zeroThreshold, maxBuckets: maxBuckets)
    }

    /// A copy whose buckets of each sign span at most `width` indices (`width` ≥ 1), coarser
    /// as needed: for formats whose buckets are dense (OTLP), where one outlier would
    /// otherwise mean thousands of empty buckets.
    public func reduced(toWidthAtMost width: Int) -> ExponentialHistogram {
        var copy = self
        while copy.schema > Self.minSchema && max(copy.positive.width, copy.negative.width) > max(1, width) {
            copy.reduce(to: copy.schema - 1)
        }
        return copy
    }

    private mutating func reduce(to target: Int8) {
        guard target < schema else { return }
        let steps = Int(schema - target)
        positive.reduce(by: steps)
        negative.reduce(by: steps)
        schema = target
    }
}

/// The populated buckets of one sign: their indices, ascending, and their weights. Sparse,
/// so that one outlier costs one bucket, not the empty ones between it and the others (a
/// dense window reaching 1e300 from milliseconds would hold thousands).
public struct BucketWindow: Equatable, Sendable {
    /// Indices of the populated buckets, ascending.
    public private(set) var keys: [Int] = []
    /// Weight of each bucket of `keys`.
    public private(set) var weights: [Double] = []

    /// Buckets whose count is not zero.
    public var populated: Int { keys.count }
    /// The lowest populated index (0 when none).
    public var first: Int { keys.first ?? 0 }
    /// Indices from the lowest populated to the highest (0 when none).
    public var width: Int { keys.last.map { $0 - first + 1 } ?? 0 }

    /// Every bucket from `first` to the last populated one, empty ones as 0.
    public var counts: [Double] {
        var out = [Double](repeating: 0, count: width)
        for (key, weight) in zip(keys, weights) { out[key - first] += weight }
        return out
    }

    /// Adds `weight` (> 0) to bucket `key`: a binary search of the populated buckets, and an
    /// insertion when the bucket is new.
    @inline(__always)
    mutating func add(_ weight: Double, at key: Int) {
        var low = 0
        var high = keys.count
        while low < high {
            let mid = (low + high) >> 1
            if keys[mid] < key { low = mid + 1 } else { high = mid }
        }
        if low < keys.count, keys[low] == key {
            weights[low] += weight
        } else {
            keys.insert(key, at: low)
            weights.insert(weight, at: low)
        }
    }

    /// Each populated bucket, lowest first.
    func forEach(_ body: (_ key: Int, _ weight: Double) -> Void) {
        for (key, weight) in zip(keys, weights) { body(key, weight) }
    }

    /// The populated buckets as Prometheus' spans (the first offset absolute, each later one
    /// the empty buckets since the span before) and their counts, lowest first. Gaps of at
    /// most two empty buckets stay inside a span with zero counts, as client_golang writes
    /// them: a span costs more bytes than two zeros.
    func spans() -> (spans: [(offset: Int32, length: UInt32)], counts: [Double]) {
        var spans: [(offset: Int32, length: UInt32)] = []
        var out: [Double] = []
        var previousEnd: Int? = nil  // one past the last bucket of the span before
        for (key, weight) in zip(keys, weights) {
            if let end = previousEnd, key - end <= 2, !spans.isEmpty {
                for _ in end..<key { out.append(0) }
                spans[spans.count - 1].length += UInt32(key - end + 1)
            } else {
                spans.append((Int32(truncatingIfNeeded: previousEnd.map { key - $0 } ?? key), 1))
            }
            out.append(weight)
            previousEnd = key + 1
        }
        return (spans, out)
    }

    /// Adds the buckets together as the schema drops by `steps`.
    mutating func reduce(by steps: Int) {
        guard !keys.isEmpty else { return }
        let old = self
        self = BucketWindow()
        // Coarser indices of ascending keys ascend too: each lands at the end or on the last.
        for (key, weight) in zip(old.keys, old.weights) {
            let coarse = ExponentialHistogram.coarserIndex(key, by: steps)
            if keys.last == coarse {
                weights[weights.count - 1] += weight
            } else {
                keys.append(coarse)
                weights.append(weight)
            }
        }
    }
}

/// For schemas 1 to 8: the 2^s bucket bounds within `[0.5, 1)`, `0.5 × 2^(i / 2^s)`.
enum NativeBucketBounds {
    static let table: [[Double]] = (0...Int(ExponentialHistogram.maxSchema)).map { schema in
        guard schema > 0 else { return [] }
        let n = 1 << schema
        return (0..<n).map { 0.5 * exp2(Double($0) / Double(n)) }
    }

    /// Every schema's bounds in one allocation made once and never freed, schema `s` from
    /// `2^s - 2` (510 values): read on every sample, without a reference count. Written once
    /// before its first read (a `static let` is initialised once), then only read.
    nonisolated(unsafe) private static let flat: UnsafePointer<Double> = {
        let all = table.joined()
        let p = UnsafeMutablePointer<Double>.allocate(capacity: all.count)
        p.initialize(from: Array(all), count: all.count)
        return UnsafePointer(p)
    }()

    /// The 2^`schema` bounds of schema 1...8.
    @inline(__always)
    static func bounds(schema: Int8) -> UnsafePointer<Double> { flat + ((1 << Int(schema)) - 2) }
}
