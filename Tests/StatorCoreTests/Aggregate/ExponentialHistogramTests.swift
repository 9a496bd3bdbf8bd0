import Foundation
import Testing
@testable import StatorCore

/// Known bucket indexes: bucket i of schema s is (base^(i-1), base^i], base = 2^(2^-s), so a
/// power of the base closes the bucket it names.
private let knownIndexes: [(Double, Int8, Int)] = [
    (0.5, 0, -1), (0.75, 0, 0), (1.0, 0, 0), (1.5, 0, 1), (2.0, 0, 1), (3.0, 0, 2),
    (1.0, 3, 0), (2.0, 3, 8), (0.5, 3, -8),     (1.0, -1, 0), (2.0, -1, 1), (4.0, -1, 1), (5.0, -1, 2), (0.25, -1, -1), (0.26, -1, 0),
    (16.0, -2, 1), (17.0, -2, 2), (1.0, -4, 0), (65_536.0, -4, 1), (65_537.0, -4, 2),
    (1.0, 8, 0), (2.0, 8, 256), (1e-300, 0, -996), (1e300, 0, 997),
    (5e-324, 0, -1074), (5e-324, 3, -8592), (Double.greatestFiniteMagnitude, 0, 1024),
]

@Test(arguments: knownIndexes)
func bucketIndexesFollowPrometheus(_ value: Double, _ schema: Int8, _ expected: Int) {
    #expect(ExponentialHistogram.bucketIndex(value, schema: schema) == expected)
}

/// The bit-level frexp agrees with the C library's on normal and subnormal values.
@Test func fractionAndExponentIsFrexp() {
    var rng = SplitMix64(state: 11)
    for k in 0..<20_000 {
        // Positive finite doubles of every exponent, a quarter of them subnormal.
        let bits = k % 4 == 0 ? rng.next() & 0x000F_FFFF_FFFF_FFFF | 1 : rng.next() % 0x7FEF_FFFF_FFFF_FFFF + 1
        let value = Double(bitPattern: bits)
        let (fraction, exponent) = ExponentialHistogram.fractionAndExponent(value)
        let expected = frexp(value)
        #expect(fraction == expected.0 && exponent == expected.1, "\(value)")
    }
}

/// Every value lands in the bucket whose bounds hold it, at every schema (checked with `log2`,
/// away from the bounds, where rounding could tell either way).
@Test func bucketIndexesHoldTheirValuesAtEverySchema() {
    var rng = SplitMix64(state: 7)
    for schema in ExponentialHistogram.minSchema...ExponentialHistogram.maxSchema {
        let perOctave = exp2(Double(schema))
        for _ in 0..<5_000 {
            let value = exp2(Double(rng.next() % 2_000) / 10 - 100) * (1 + Double(rng.next() % 1_000) / 1_000)
            let exact = log2(value) * perOctave  // value = base^exact
            guard abs(exact - exact.rounded()) > 1e-6 else { continue }
            #expect(ExponentialHistogram.bucketIndex(value, schema: schema) == Int(exact.rounded(.up)), "\(value) at \(schema)")
        }
    }
}

@Test func weightsZeroBucketAndSignsAreCounted() {
    var h = ExponentialHistogram(schema: 0, zeroThreshold: 0.001)
    h.observe(2, weight: 10)  // a sample at rate 0.1
    h.observe(-2)
    h.observe(0.0005)
    h.observe(0)
    h.observe(.nan)
    h.observe(.infinity)
    #expect(h.count == 13)
    #expect(h.sum == 20 - 2 + 0.0005)
    #expect(h.zeroCount == 2)
    var positive: [Int: Double] = [:]
    h.positive.forEach { positive[$0] = $1 }
    var negative: [Int: Double] = [:]
    h.negative.forEach { negative[$0] = $1 }
    #expect(positive == [1: 10])
    #expect(negative == [1: 1])
}

/// Buckets of `h` by index, both signs (negative ones as negative indexes' mirror: keyed by sign).
private func buckets(_ h: ExponentialHistogram) -> [String: Double] {
    var out: [String: Double] = [:]
    h.positive.forEach { out["+\($0)"] = $1 }
    h.negative.forEach { out["-\($0)"] = $1 }
    return out
}

/// Past `maxBuckets` the schema drops until the buckets fit; no sample is lost, and the
/// buckets are those of the same values observed at the final schema from the start.
@Test func resolutionHalvesPastMaxBucketsAndLosesNoSample() {
    let values = (1...1_000).map { Double($0) * 0.37 } + (1...50).map { -Double($0) }
    var h = ExponentialHistogram(schema: 8, maxBuckets: 20)
    for v in values { h.observe(v) }
    #expect(h.schema < 8)
    #expect(h.count == Double(values.count))
    #expect(buckets(h).count <= 20)
    var reference = ExponentialHistogram(schema: h.schema, maxBuckets: 100_000)
    for v in values { reference.observe(v) }
    #expect(reference.schema == h.schema)
    #expect(buckets(h) == buckets(reference))
    #expect(abs(h.sum - values.reduce(0, +)) < 1e-6)
}

/// Two values far apart cost two buckets and keep the resolution (the buckets are sparse); a
/// dense copy for OTLP is made coarser until it spans at most the bucket cap.
@Test func anOutlierCostsOneBucketAndKeepsTheResolution() {
    var h = ExponentialHistogram(schema: 8, maxBuckets: 160)
    h.observe(1e-30)  // 1e-300 would be in the zero bucket (below 2^-128)
    h.observe(1e30)
    #expect(h.schema == 8)
    #expect(h.positive.populated == 2)
    #expect(h.count == 2)
    let dense = h.reduced(toWidthAtMost: 160)
    #expect(dense.positive.width <= 160)
    #expect(dense.schema == -1)  // 199 octaves in 100 buckets of 2 octaves; schema 0 would span 200
    #expect(dense.count == 2)
    #expect(buckets(dense).count == 2)
}

/// Two overflows of opposite signs leave the sum at +Inf, never NaN (no sink may write NaN).
@Test func overflowsOfBothSignsLeaveTheSumInfinite() {
    var h = ExponentialHistogram(schema: 3)
    h.observe(1e300, weight: 1e300)
    h.observe(-1e300, weight: 1e300)
    #expect(h.sum == .infinity)
    #expect(h.count == 2e300)
}

/// The bound of bucket 1 at schema 3, 2^(1/8), closes bucket 1; the next double is in bucket 2.
@Test func aBucketBoundClosesItsBucket() {
    let bound = exp2(1.0 / 8)
    #expect(ExponentialHistogram.bucketIndex(bound, schema: 3) == 1)
    #expect(ExponentialHistogram.bucketIndex(bound.nextUp, schema: 3) == 2)
}

/// Readers' histograms of one interval merge bucket by bucket, at the coarser schema: the
/// same as one histogram that saw every value.
@Test func mergingEqualsObservingEverything() {
    var rng = SplitMix64(state: 11)
    let values = (0..<4_000).map { _ in exp(Double(rng.next() % 10_000) / 1_000) * (rng.next() % 7 == 0 ? -1 : 1) }
    var a = ExponentialHistogram(schema: 5, maxBuckets: 100_000)
    var b = ExponentialHistogram(schema: 3, maxBuckets: 100_000)
    for (n, v) in values.enumerated() {
        if n % 2 == 0 { a.observe(v) } else { b.observe(v) }
    }
    a.merge(b)
    var all = ExponentialHistogram(schema: 3, maxBuckets: 100_000)
    for v in values { all.observe(v) }
    #expect(a.schema == 3)
    #expect(a.count == all.count)
    #expect(buckets(a) == buckets(all))
}

/// Spans as Prometheus writes them: the first offset absolute, then gaps; gaps of up to two
/// empty buckets inside a span as zeros.
@Test func bucketsBecomePrometheusSpans() {
    var h = ExponentialHistogram(schema: 0, maxBuckets: 100)
    for v in [0.3, 1, 1, 2, 3, 64, 100, 1e6] { h.observe(v) }  // buckets -1, 0, 0, 1, 2, 6, 7, 20
    let (spans, counts) = h.positive.spans()
    #expect(spans.map(\.offset) == [-1, 3, 12])
    #expect(spans.map(\.length) == [4, 2, 1])
    #expect(counts == [1, 2, 1, 1, 1, 1, 1])
    var gap = ExponentialHistogram(schema: 0, maxBuckets: 100)
    for v in [1.0, 16] { gap.observe(v) }  // buckets 0 and 4: a gap of three, two spans
    #expect(gap.positive.spans().spans.map(\.offset) == [0, 3])
    for v in [1.0, 8] { gap.observe(v) }  // buckets 0, 3, 4: a gap of two, one span
    #expect(gap.positive.spans().spans.map(\.length) == [5])
    #expect(gap.positive.spans().counts == [2, 0, 0, 1, 1])
    #expect(ExponentialHistogram(schema: 3).positive.spans().spans.isEmpty)
}

/// A bucket factor picks the finest schema whose growth factor does not pass it, as
/// client_golang's and statsd_exporter's `native_histogram_bucket_factor` do.
@Test(arguments: [
    (1.1, Int8?(3)), (2.0, 0), (4.0, -1), (1.0905077326652577, 3), (1.0905, 4), (1.0001, 8), (65_536.0, -4),
    (1e10, -4), (1.0, nil), (0.5, nil), (Double.nan, nil),
] as [(Double, Int8?)])
func aBucketFactorPicksASchema(_ factor: Double, _ expected: Int8?) {
    #expect(ExponentialHistogram.schema(forBucketFactor: factor) == expected)
}
