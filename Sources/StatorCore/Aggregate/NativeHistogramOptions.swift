/// How a series' native histogram is made (SPEC section 13): one list for the whole agent
/// (`histograms.*`), which a mapping rule's `native_histogram_bucket_factor` and
/// `native_histogram_max_buckets` may change for its series.
public struct NativeHistogramOptions: Sendable, Equatable {
    /// -4...8: bucket bounds grow by 2^(2^-schema).
    public var schema: Int8 = 3
    /// Values of magnitude up to this count in the zero bucket.
    public var zeroThreshold: Double = 0x1p-128
    /// Populated buckets past which the resolution is halved.
    public var maxBuckets = 160
    /// Whether a series whose values are scaled before bucketing (a timer's milliseconds made
    /// seconds, a mapping's `scale`) also keeps a histogram of the values as sent: an OTLP push
    /// writes timers in milliseconds, and 1,000 is no power of a bucket's growth factor, so
    /// one histogram cannot be converted into the other exactly.
    public var keepsStatsdUnit = false

    public init() {}
}

/// `histograms.*`: whether native histograms are kept, and how.
public struct NativeHistogramConfiguration: Sendable {
    /// `histograms.native`.
    public var native = false
    public var options = NativeHistogramOptions()

    public init() {}

    /// The options every series starts from, or `nil` when native histograms are off.
    public var inForce: NativeHistogramOptions? { native ? options : nil }
}

/// One series' native histograms of one interval: in the unit of its classic buckets
/// (seconds for timers, after a mapping's `scale`), and as sent when the options ask for
/// both and the two differ. A reference, so that a series without native histograms pays
/// one word for it.
final class NativeHistogramCell {
    // Only the interval's writer touches a cell (under the lock of its shard or share), as it
    // does the rest of the aggregate: the runtime's exclusivity checks would cost every sample.
    @exclusivity(unchecked) var bucketed: ExponentialHistogram
    @exclusivity(unchecked) var asSent: ExponentialHistogram?

    init(_ options: NativeHistogramOptions, scaled: Bool) {
        bucketed = ExponentialHistogram(options)
        asSent = options.keepsStatsdUnit && scaled ? ExponentialHistogram(options) : nil
    }

    /// An empty cell of the options `other` was made with.
    init(empty other: NativeHistogramCell) {
        bucketed = other.bucketed.emptied()
        asSent = other.asSent?.emptied()
    }

    /// Counts one sample: `x` as sent and `bucketValue` as bucketed.
    @inline(__always)
    func observe(_ x: Double, bucketed bucketValue: Double, weight: Double) {
        bucketed.observe(bucketValue, weight: weight)
        asSent?.observe(x, weight: weight)
    }

    /// Adds another share of the same series' interval.
    func merge(_ other: NativeHistogramCell) {
        bucketed.merge(other.bucketed)
        if let theirs = other.asSent { asSent?.merge(theirs) }
    }
}

extension ExponentialHistogram {
    init(_ options: NativeHistogramOptions) {
        self.init(schema: options.schema, zeroThreshold: options.zeroThreshold, maxBuckets: options.maxBuckets)
    }
}
