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
        let whole =
            ProtobufWriter.isWholeCount(h.count) && ProtobufWriter.isWholeCount(h.zeroCount)
            && h.positive.weights.allSatisfy(ProtobufWriter.isWholeCount)
            && h.negative.weights.allSatisfy(ProtobufWriter.isWholeCount)
        if whole { out.varintField(1, UInt64(h.count)) } else { out.doubleField(2, h.count) }
        out.doubleField(3, h.sum)
        out.sintField(4, Int64(h.schema))
        out.doubleField(5, h.zeroThreshold)
        if whole { out.varintField(6, UInt64(h.zeroCount)) } else { out.doubleField(7, h.zeroCount) }
        out.nativeBuckets(h.negative, spansField: 8, whole: whole)  // deltas 9, counts 10
        out.nativeBuckets(h.positive, spansField: 11, whole: whole)  // deltas 12, counts 13
        out.varintField(15, UInt64(bitPattern: timestamp))
    }
}
