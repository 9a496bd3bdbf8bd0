// The records of the cumulative state: families, series, histograms, the routes from statsd
// series, and the state that holds them (flat arrays linked in first-seen order, free lists).
extension CumulativeState {
    /// The Prometheus type of a family.
    public enum FamilyType: UInt8, Sendable {
        /// `summary`: a mapped timer, histogram or distribution whose rule says
        /// `observer_type: summary`.
        case counter, gauge, histogram, summary

        init(_ type: MetricType) {
            switch type {
            case .counter: self = .counter
            case .gauge, .set: self = .gauge
            case .timer, .histogram, .distribution: self = .histogram
            }
        }

        /// The family type of a statsd key: a mapped sampled series is a summary when its
        /// rule says so.
        static func of(_ key: MetricKey, _ options: [MappingOptions]) -> FamilyType {
            let type = FamilyType(key.type)
            guard type == .histogram, let id = key.mappingOptions, Int(id) < options.count else { return type }
            return options[Int(id)].observerType == .summary ? .summary : .histogram
        }

        var text: String {
            switch self {
            case .counter: "counter"
            case .gauge: "gauge"
            case .histogram: "histogram"
            case .summary: "summary"
            }
        }
    }

    struct Family {
        /// The key bytes of the statsd series that registered the family: give its name and HELP.
        var sourceBytes: [UInt8]
        var type: FamilyType
        /// The family's series in first-seen order; a family lives while it has one.
        var firstSeries: Int32 = -1
        var lastSeries: Int32 = -1
        var next: Int32 = -1
        var previous: Int32 = -1
        /// The family's series without labels, if any (such series are not in `seriesIndex`).
        var bareSeries: Int32 = -1
        /// Next family whose first exposed name (its name) shares a bucket with one of this
        /// family's (see `nameHeads`). A histogram's other three names link through
        /// `State.histogramNameLinks`.
        var nextSameName: Int32 = -1

        init(source: MetricKey, type: FamilyType) {
            sourceBytes = source.bytes
            self.type = type
        }

        /// The statsd series that registered the family.
        var source: MetricKey { MetricKey(bytes: sourceBytes, series: .none) }
    }

    struct Series {
        // (Fields in this order leave no padding: 40 bytes.)
        var labels: PrometheusNaming.Labels
        /// Counter total or gauge value.
        var value: Double = 0
        var family: Int32
        /// Index into `histograms`; -1 for other series, and -2 for those fed by statsd sets
        /// (one field for both keeps the record at 40 bytes).
        private var histogramOrSet: Int32 = -1
        /// For sets: the flush (its low 32 bits) that last set `value` (a set reads 0 after an empty interval).
        var setAt: UInt32 = 0
        /// Statsd series feeding this one; it is removed when the last of them expires.
        var contributors: Int32 = 0
        var next: Int32 = -1
        var previous: Int32 = -1

        init(family: Int32, labels: PrometheusNaming.Labels) {
            self.family = family
            self.labels = labels
        }

        /// Index into `histograms`, or -1. Only a histogram series is given one (a set never
        /// is), so setting it can never clear `isSet`, which shares the field.
        var histogram: Int32 {
            get { max(histogramOrSet, -1) }
            set {
                precondition(newValue >= 0, "a histogram index")
                histogramOrSet = newValue
            }
        }

        /// Whether statsd sets feed the series (it reads 0 after an interval without members).
        var isSet: Bool {
            get { histogramOrSet == -2 }
            set { histogramOrSet = newValue ? -2 : -1 }
        }

        /// What the series reads at flush `flushNumber`: `value`, or 0 for a set without members that interval.
        func reads(at flushNumber: UInt64) -> Double {
            isSet && setAt != UInt32(truncatingIfNeeded: flushNumber) ? 0 : value
        }
    }

    /// A histogram series' cumulative state, or a summary series'.
    struct Histogram {
        /// The family's buckets (every series of a histogram family has the same).
        var bounds: BucketBounds?
        /// Rate-weighted count per bucket (not cumulative); the last is `+Inf`. For a summary:
        /// the last interval's value at each of `quantiles` (shown while the series' `setAt`
        /// is the last flush).
        var buckets: [Double]
        var sum: Double = 0
        var count: Double = 0
        /// A summary's quantiles, ascending (empty for a histogram).
        var quantiles: [Double] = []
        /// The mapping rule slot of the statsd series that made it (`MetricKey.mappingOptions`):
        /// a reload's new buckets are followed only by a family one rule made.
        var slot: UInt16? = nil
        /// The native histograms since the series appeared (SPEC section 13), when its
        /// bounds ask for them: a reference, so that a series without pays one word.
        var native: CumulativeNative? = nil

        /// Adds an interval's native histograms (copied first when another holds the same).
        mutating func addNative(_ t: SampleSummary) {
            guard let bucketed = t.native else { return }
            guard var mine = native else {
                native = CumulativeNative(bucketed: bucketed, asSent: t.nativeInStatsdUnit)
                return
            }
            native = nil  // `mine` is then the only reference, unless a reader holds one
            if !isKnownUniquelyReferenced(&mine) { mine = CumulativeNative(mine) }
            mine.bucketed.merge(bucketed)
            if let asSent = t.nativeInStatsdUnit {
                if mine.asSent == nil { mine.asSent = asSent } else { mine.asSent?.merge(asSent) }
            }
            self.native = mine
        }
    }

    /// Reusable buffers for the names that folding a batch derives, compares and hashes (kept
    /// in `State` between folds: once grown, finding and linking names allocates nothing).
    struct NameScratch {
        /// The name of the family being routed to or removed.
        var name: [UInt8] = []
        /// One exposed name being looked up.
        var query: [UInt8] = []
        /// The name of another family, met in a bucket chain.
        var other: [UInt8] = []
        /// One exposed name of that family, as hashed and compared.
        var exposed: [UInt8] = []
    }

    /// Where one statsd series goes.
    struct Route {
        /// Index into `series`, or -1.
        var series: Int32 = -1
        /// The `SeriesID.incarnation` of the statsd series that set it.
        var incarnation: UInt32 = 0
    }

    struct SeriesIdentity: Hashable {
        var family: Int32
        var labels: PrometheusNaming.Labels
    }

    struct State {
        var families: [Family] = []
        var freeFamilies: [Int32] = []
        var firstFamily: Int32 = -1
        var lastFamily: Int32 = -1
        var series: [Series] = []
        var freeSeries: [Int32] = []
        var histograms: [Histogram] = []
        var freeHistograms: [Int32] = []
        /// Every exposed sample name (`x`, and `x_bucket`/`x_sum`/`x_count` of a histogram `x`)
        /// hashes to a bucket here, which holds the first family exposing a name in that bucket;
        /// others follow through `Family.nextSameName`. Names are not stored: they are derived
        /// from each family's source key when compared. At most as many names as buckets.
        var nameHeads = [Int32](repeating: -1, count: 64)
        /// Exposed names indexed in `nameHeads`.
        var nameCount = 0
        /// The chain links of each histogram family's `_bucket`, `_sum` and `_count` names
        /// (kept aside so that other families' records stay at 40 bytes).
        var histogramNameLinks: [Int32: (Int32, Int32, Int32)] = [:]
        /// Series with labels, by family and labels (label-less ones hang off their family).
        var seriesIndex: [SeriesIdentity: Int32] = [:]
        /// Statsd series (by `SeriesID.index`) -> the series it feeds: 8 bytes per number the
        /// table gives out, where a dictionary keyed by the statsd key cost about 42.
        var routes: [Route] = []
        var flushNumber: UInt64 = 0
        var liveFamilies = 0
        /// Lent to each fold (see `NameScratch`).
        var scratch = NameScratch()

        /// The buckets of a histogram family (those of its first series), or nil.
        func bounds(of family: Family) -> BucketBounds? {
            guard family.type == .histogram, family.firstSeries >= 0 else { return nil }
            let h = series[Int(family.firstSeries)].histogram
            return h >= 0 ? histograms[Int(h)].bounds : nil
        }
        /// The mapping options by number (`MappingOptionsRegistry`), as of the last fold.
        var mappingOptions: [MappingOptions] = []
        /// The last batch folded in (its sequence and flush time).
        var appliedSequence: UInt64 = 0
        var appliedTimestamp: EpochMillis = 0
        /// When each series (by index) began: the start of the interval it first appeared in,
        /// in seconds since the epoch (the start time of its OTLP cumulative stream). Kept
        /// aside so that `Series` stays at 40 bytes.
        var seriesStarts: [UInt32] = []
        /// The start of the interval of the batch being folded in, in seconds since the epoch.
        var intervalStart: UInt32 = 0
        /// The key bytes of the statsd series that made each series (by index) whose labels
        /// are not its tags as sent (a tag renamed, dropped, or moved aside for `le`): OTLP's
        /// attributes are the tag keys as sent, the same under both temporalities. Only such
        /// series have an entry, so a page of plain tags costs nothing here.
        var tagsAsSent: [Int32: [UInt8]] = [:]
    }

    /// What looking up a family name found.
    enum FamilyLookup {
        /// The family of that name.
        case named(Int32)
        /// Another family exposes the name (as one of a histogram's derived names).
        case taken
        /// No family exposes the name; its bucket in `nameHeads`.
        case free(bucket: Int)
    }
}

/// A series' native histograms since it appeared: in the unit of its classic buckets
/// (seconds for timers), and as sent when the batch carried that too (for OTLP).
/// Copied on write (`Histogram.addNative`): a reader holding a copy of the record never sees it
/// change, so sharing it across threads is safe (hence `@unchecked Sendable`).
final class CumulativeNative: @unchecked Sendable {
    fileprivate(set) var bucketed: ExponentialHistogram
    fileprivate(set) var asSent: ExponentialHistogram?

    init(bucketed: ExponentialHistogram, asSent: ExponentialHistogram?) {
        self.bucketed = bucketed
        self.asSent = asSent
    }

    convenience init(_ other: CumulativeNative) { self.init(bucketed: other.bucketed, asSent: other.asSent) }

    /// An empty one, of a series of `type` whose values `valueScale` scales: with a histogram
    /// as sent where an interval's would have one (`SampleSummary.nativeInStatsdUnit`).
    convenience init(empty options: NativeHistogramOptions, _ type: MetricType, valueScale: Double) {
        let scaled = type == .timer || valueScale != 1
        self.init(
            bucketed: ExponentialHistogram(options),
            asSent: !scaled || options.keepsStatsdUnit ? ExponentialHistogram(options) : nil)
    }
}
