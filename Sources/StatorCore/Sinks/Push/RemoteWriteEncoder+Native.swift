/// Native histograms in remote write (SPEC section 13): the `Histogram` of prompb's types.
///
/// ```
/// message Histogram {
///   oneof count { uint64 count_int = 1; double count_float = 2; }
///   double sum = 3;
///   sint32 schema = 4;
///   double zero_threshold = 5;
///   oneof zero_count { uint64 zero_count_int = 6; double zero_count_float = 7; }
///   repeated BucketSpan negative_spans = 8;
///   repeated sint64 negative_deltas = 9;   repeated double negative_counts = 10;
///   repeated BucketSpan positive_spans = 11;
///   repeated sint64 positive_deltas = 12;  repeated double positive_counts = 13;
///   ResetHint reset_hint = 14;
///   int64 timestamp = 15;
/// }
/// message BucketSpan { sint32 offset = 1; uint32 length = 2; }
/// ```
extension RemoteWriteEncoder {
    /// Appends the fields of a cumulative `Histogram` of `h` taken at `timestamp`.
    ///
    /// Counts are weights (a sample at rate r counts 1/r). When every one is whole, the
    /// integer form is written (`count_int`, `zero_count_int`, and each bucket as the
    /// difference from the bucket before, across spans), which every receiver of native
    /// histograms takes; otherwise the float form (`count_float`, `zero_count_float`, each
    /// bucket's absolute count), which keeps the fractions. Both `oneof`s are always set, even
    /// to zero: the one set tells the receiver which form the histogram is. `reset_hint` is
    /// left unknown: the receiver finds resets itself, as it does for counters.
    static func appendNativeHistogram(_ h: ExponentialHistogram, timestamp: EpochMillis, to out: inout ProtobufWriter) {
        let positive = h.positive.spans()
        let negative = h.negative.spans()
        let whole =
            isWholeCount(h.count) && isWholeCount(h.zeroCount)
            && positive.counts.allSatisfy(isWholeCount) && negative.counts.allSatisfy(isWholeCount)
        if whole { out.varintField(1, UInt64(h.count)) } else { out.doubleField(2, h.count) }
        out.doubleField(3, h.sum)
        out.sintField(4, Int64(h.schema))
        out.doubleField(5, h.zeroThreshold)
        if whole { out.varintField(6, UInt64(h.zeroCount)) } else { out.doubleField(7, h.zeroCount) }
        appendBuckets(negative, spansField: 8, deltasField: whole ? 9 : nil, countsField: 10, to: &out)
        appendBuckets(positive, spansField: 11, deltasField: whole ? 12 : nil, countsField: 13, to: &out)
        out.varintField(15, UInt64(bitPattern: timestamp))
    }

    /// A count the integer form can carry: whole, not negative, below 2^63 (a delta between
    /// two of them is then an `Int64`).
    private static func isWholeCount(_ c: Double) -> Bool { c >= 0 && c < 0x1p63 && c == c.rounded() }

    /// One sign's spans, then its counts: as deltas when `deltasField` is given, else absolute.
    private static func appendBuckets(
        _ buckets: (spans: [(offset: Int32, length: UInt32)], counts: [Double]),
        spansField: UInt32, deltasField: UInt32?, countsField: UInt32, to out: inout ProtobufWriter
    ) {
        guard !buckets.counts.isEmpty else { return }
        for span in buckets.spans {
            let size =
                1 + ProtobufWriter.varintSize(ProtobufWriter.zigzag(Int64(span.offset))) + 1
                + ProtobufWriter.varintSize(UInt64(span.length))
            out.key(spansField, 2)
            out.varint(UInt64(size))
            out.sintField(1, Int64(span.offset))
            out.varintField(2, UInt64(span.length))
        }
        if let deltasField {
            var previous: Int64 = 0
            var size = 0
            for c in buckets.counts {
                size += ProtobufWriter.varintSize(ProtobufWriter.zigzag(Int64(c) &- previous))
                previous = Int64(c)
            }
            out.key(deltasField, 2)
            out.varint(UInt64(size))
            previous = 0
            for c in buckets.counts {
                out.varint(ProtobufWriter.zigzag(Int64(c) &- previous))
                previous = Int64(c)
            }
        } else {
            out.key(countsField, 2)
            out.varint(UInt64(buckets.counts.count * 8))
            for c in buckets.counts { out.fixed64(c.bitPattern) }
        }
    }
}
