import Glibc
import CStatorSys
/// The Prometheus view of everything flushed so far: counters cumulative since
/// the series appeared, gauges and sets as their last value, timers, histograms
/// and distributions as cumulative histograms. Fed by each `FlushBatch`; read by
/// the scrape page and the remote-write sink, so it lives on its own.
///
/// Names and labels follow `PrometheusNaming`. Statsd series whose names and
/// labels coincide are merged; one family has one type, and a series of another
/// type is left out and counted as `type_conflict` once per flush.
///
/// Layout, for a million series: families and series sit in flat arrays, linked
/// in first-seen order and reused through free lists; a family keeps the statsd
/// key that registered it (its name and HELP come from that key), so neither
/// needs an allocation of its own; histogram state sits in a side table.
public final class CumulativeState: Sendable {
    /// The Prometheus type of a family.
    public enum FamilyType: UInt8, Sendable {
        case counter, gauge, histogram

        init(_ type: MetricType) {
            switch type {
            case .counter: self = .counter
            case .gauge, .set: self = .gauge
            case .timer, .histogram, .distribution: self = .histogram
            }
        }

        var text: String {
            switch self {
            case .counter: "counter"
            case .gauge: "gauge"
            case .histogram: "histogram"
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

    struct Histogram {
        /// The family's buckets (every series of a histogram family has the same).
        var bounds: BucketBounds?
        /// Rate-weighted count per bucket (not cumulative); the last is `+Inf`.
        var buckets: [Double]
        var sum: Double = 0
        var count: Double = 0
    }

    /// The bucket of `nameHeads` an exposed sample name is indexed under (its hash folded by
    /// `nameHashMask`). A seeded hash: names come from the network, and crafted collisions
    /// would make each new family walk one long chain.
    func nameBucket(_ bytes: [UInt8], _ s: borrowing State) -> Int {
        var h = Hasher()
        bytes.withUnsafeBytes { h.combine(bytes: $0) }  // in one call, not byte by byte
        return h.finalize() & nameHashMask & (s.nameHeads.count - 1)
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

    /// Normally every bit; tests fold hashes into a few values to force collisions.
    let nameHashMask: Int

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
        /// The last batch folded in (its sequence and flush time).
        var appliedSequence: UInt64 = 0
        var appliedTimestamp: EpochMillis = 0
    }

    private let state = PthreadLock(State())
    let prefix: [UInt8]
    /// Names the agent's own metrics use; statsd families may not take them.
    private let reserved: Set<[UInt8]>
    /// Whether some reserved name starts with the byte: most names are then known free
    /// without hashing them for `reserved`.
    private let reservedFirstBytes: [Bool]
    private let metrics: SelfMetrics?

    /// - Parameters:
    ///   - prefix: `sinks.prometheus.prefix`.
    ///   - reservedNames: family names already exposed by someone else (the agent's own metrics).
    ///   - metrics: where left-out series are counted (`stator_series_dropped_total{sink="prometheus"}`).
    public convenience init(prefix: String = "", reservedNames: [String] = [], metrics: SelfMetrics? = nil) {
        self.init(prefix: prefix, reservedNames: reservedNames, metrics: metrics, nameHashMask: -1)
    }

    init(prefix: String, reservedNames: [String], metrics: SelfMetrics?, nameHashMask: Int) {
        self.nameHashMask = nameHashMask
        self.prefix = Array(prefix.utf8)
        reserved = Set(reservedNames.map { Array($0.utf8) })
        var first = [Bool](repeating: false, count: 256)
        for name in reserved { if let b = name.first { first[Int(b)] = true } }
        reservedFirstBytes = first
        self.metrics = metrics
        metrics?.registerLabeled(SelfMetrics.seriesDropped("prometheus", "type_conflict"))
        metrics?.registerLabeled(SelfMetrics.seriesDropped("prometheus", "bucket_conflict"))
    }

    /// What applying one batch left out.
    public struct Dropped: Sendable, Equatable {
        /// Series whose family has another type.
        public var typeConflicts = 0
        /// Histogram series whose buckets differ from their family's.
        public var bucketConflicts = 0
    }

    /// Folds one flush batch into the cumulative state, once: several sinks share
    /// this state and each calls `apply` with every batch, in order; the first call
    /// for a batch folds it in and later ones return at once.
    /// - Returns: how many series were left out, by reason (`nil` if the batch was already applied).
    @discardableResult
    public func apply(_ batch: FlushBatch) -> Dropped? {
        let dropped = fold(batch)
        if let dropped, let metrics {
            if dropped.typeConflicts > 0 {
                metrics.addLabeled(SelfMetrics.seriesDropped("prometheus", "type_conflict"), UInt64(dropped.typeConflicts))
            }
            if dropped.bucketConflicts > 0 {
                metrics.addLabeled(
                    SelfMetrics.seriesDropped("prometheus", "bucket_conflict"), UInt64(dropped.bucketConflicts))
            }
        }
        return dropped
    }

    private func fold(_ batch: FlushBatch) -> Dropped? {
        state.withLock { s in
            if batch.sequence > 0 {
                guard batch.sequence > s.appliedSequence else { return nil }
                s.appliedSequence = batch.sequence
            }
            s.appliedTimestamp = batch.timestamp
            s.flushNumber &+= 1
            var dropped = Dropped()
            var scratch = s.scratch
            s.scratch = NameScratch()
            defer { s.scratch = scratch }
            for key in batch.expired { forget(key, &s, &scratch) }
            if !batch.expired.isEmpty { compactIfSparse(&s, &scratch) }
            // Series new in this batch join the page sorted by name, then type and tags.
            var fresh: [(key: MetricKey, bounds: BucketBounds?)] = []
            for c in batch.counters where Self.knownRoute(c.key, s) == nil { fresh.append((c.key, nil)) }
            for g in batch.gauges where Self.knownRoute(g.key, s) == nil { fresh.append((g.key, nil)) }
            for set in batch.sets where Self.knownRoute(set.key, s) == nil { fresh.append((set.key, nil)) }
            for t in batch.samples where Self.knownRoute(t.key, s) == nil { fresh.append((t.key, t.bounds)) }
            if !fresh.isEmpty {
                fresh.sort { a, b in Self.pageOrder(a.key, b.key) }
                sizeNameHeads(for: fresh, &s, &scratch)
                // (Room for every new series at once: grown by doubling, the index rehashed each
                // series again and again as a large first batch arrived.)
                s.seriesIndex.reserveCapacity(s.seriesIndex.count + fresh.count)
                var ignored = Dropped()  // counted below, once, when the batch is folded in
                // Sorted, the keys of one statsd name and type are neighbours: after the first of
                // them found (or made) its family, the others take it without deriving and
                // looking up its names again.
                var previous: (key: MetricKey, family: Int32)? = nil
                for f in fresh {
                    let known = previous.flatMap { Self.sameNameAndType($0.key, f.key) ? $0.family : nil }
                    let routed = route(f.key, f.bounds, &s, &ignored, &scratch, family: known)
                    previous = routed.map { (f.key, s.series[Int($0)].family) }
                }
            }
            for c in batch.counters {
                guard let i = route(c.key, nil, &s, &dropped, &scratch) else { continue }
                s.series[Int(i)].value += c.value
            }
            for g in batch.gauges {
                guard let i = route(g.key, nil, &s, &dropped, &scratch) else { continue }
                s.series[Int(i)].value = g.value
            }
            let flush = s.flushNumber
            for set in batch.sets {
                guard let i = route(set.key, nil, &s, &dropped, &scratch) else { continue }
                s.series[Int(i)].value = set.value
                s.series[Int(i)].setAt = UInt32(truncatingIfNeeded: flush)
            }
            for t in batch.samples {
                guard let i = route(t.key, t.bounds, &s, &dropped, &scratch) else { continue }
                let h = Int(s.series[Int(i)].histogram)
                guard h >= 0 else { continue }
                let scale = t.key.type == .timer ? 1.0 / 1000 : 1
                s.histograms[h].sum = (s.histograms[h].sum + t.weightedSum * scale).withoutNaN
                s.histograms[h].count += t.count
                for (b, n) in t.bucketCounts.enumerated() where b < s.histograms[h].buckets.count {
                    s.histograms[h].buckets[b] += n
                }
            }
            return dropped
        }
    }

    /// The order new series join the page in: by name bytes (after the type byte and the
    /// length), then by the whole key. (Compared in place: through array slices and the
    /// generic sequence comparisons, sorting 60,000 new series took seconds in a debug build
    /// and a minute under AddressSanitizer.)
    static func pageOrder(_ a: MetricKey, _ b: MetricKey) -> Bool {
        a.bytes.withUnsafeBytes { ka in
            b.bytes.withUnsafeBytes { kb in
                guard let pa = ka.baseAddress, let pb = kb.baseAddress, ka.count >= 3, kb.count >= 3 else {
                    return ka.count < kb.count
                }
                let na = Int(ka[1]) | Int(ka[2]) << 8
                let nb = Int(kb[1]) | Int(kb[2]) << 8
                let names = memcmp(pa + 3, pb + 3, min(na, nb))
                if names != 0 { return names < 0 }
                if na != nb { return na < nb }
                let whole = memcmp(pa, pb, min(ka.count, kb.count))
                if whole != 0 { return whole < 0 }
                return ka.count < kb.count
            }
        }
    }

    /// The family name a statsd key registers.
    func familyName(of key: MetricKey) -> [UInt8] {
        var name: [UInt8] = []
        writeFamilyName(of: key, into: &name)
        return name
    }

    /// Writes the family name a statsd key registers into `out`, reusing its storage.
    private func writeFamilyName(of key: MetricKey, into out: inout [UInt8]) {
        key.withName { PrometheusNaming.appendFamilyName(prefix: prefix, statsdName: $0, type: key.type, to: &out) }
    }

    /// How many sample names a family of `type` exposes: its name (slot 0), and for a
    /// histogram also `_bucket`, `_sum` and `_count` (slots 1-3).
    private static func exposedCount(_ type: FamilyType) -> Int { type == .histogram ? 4 : 1 }

    /// Writes exposed name `slot` of the family named `name` into `out`.
    private static func writeExposed(_ name: [UInt8], slot: Int, into out: inout [UInt8]) {
        let suffix: StaticString =
            switch slot {
            case 1: "_bucket"
            case 2: "_sum"
            case 3: "_count"
            default: ""
            }
        out.removeAll(keepingCapacity: true)
        out.append(contentsOf: name)
        suffix.withUTF8Buffer { out.append(contentsOf: $0) }
    }

    /// Whether two names are the same bytes (compared in one call).
    private static func same(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in
                guard let x = pa.baseAddress, let y = pb.baseAddress else { return true }  // both empty
                return memcmp(x, y, pa.count) == 0
            }
        }
    }

    /// The family that exposes exactly `name`, whose bucket (`nameBucket`) is `h`, if any. (Each family met in the chain has its
    /// names derived into `other` and `exposed`.)
    private func family(
        exposing name: [UInt8], bucket h: Int, _ s: borrowing State, _ other: inout [UInt8], _ exposed: inout [UInt8]
    ) -> Int32? {
        var f = s.nameHeads[h]
        while f >= 0 {
            let family = s.families[Int(f)]
            writeFamilyName(of: family.source, into: &other)
            // Follow the link of the first exposed name that shares this hash.
            var next: Int32? = nil
            for slot in 0..<Self.exposedCount(family.type) {
                Self.writeExposed(other, slot: slot, into: &exposed)
                if Self.same(exposed, name) { return f }
                if next == nil, nameBucket(exposed, s) == h { next = Self.link(f, slot, s) }
            }
            guard let next else { return nil }
            f = next
        }
        return nil
    }

    /// The next family in the bucket chain of exposed name `slot` of family `f`.
    private static func link(_ f: Int32, _ slot: Int, _ s: borrowing State) -> Int32 {
        if slot == 0 { return s.families[Int(f)].nextSameName }
        guard let links = s.histogramNameLinks[f] else { return -1 }
        switch slot {
        case 1: return links.0
        case 2: return links.1
        default: return links.2
        }
    }

    private static func setLink(_ f: Int32, _ slot: Int, _ value: Int32, _ s: inout State) {
        if slot == 0 {
            s.families[Int(f)].nextSameName = value
            return
        }
        var links = s.histogramNameLinks[f] ?? (-1, -1, -1)
        switch slot {
        case 1: links.0 = value
        case 2: links.1 = value
        default: links.2 = value
        }
        s.histogramNameLinks[f] = links
    }

    /// The series a statsd key feeds, if it has been routed.
    @inline(__always)
    private static func knownRoute(_ key: MetricKey, _ s: borrowing State) -> Int32? {
        let i = Int(key.series.index)
        guard i < s.routes.count else { return nil }
        let route = s.routes[i]
        return route.series >= 0 && route.incarnation == key.series.incarnation ? route.series : nil
    }

    /// Finds or creates the series a statsd key feeds.
    /// - Parameter known: the family of a key with the same name and type, when the caller has
    ///   one (the lookup by name would find it).
    private func route(
        _ key: MetricKey, _ bounds: BucketBounds?, _ s: inout State, _ dropped: inout Dropped, _ scratch: inout NameScratch,
        family known: Int32? = nil
    ) -> Int32? {
        precondition(key.series != .none, "CumulativeState takes keys numbered by a ShardedTable")
        if let known = Self.knownRoute(key, s) { return known }
        let number = Int(key.series.index)
        if number < s.routes.count, s.routes[number].series >= 0 {
            // The number's earlier holder expired in a batch this state never saw: let it go now.
            forget(number, &s, &scratch)
        }
        let type = FamilyType(key.type)
        let familyIndex: Int32
        let lookup = known.map { FamilyLookup.named($0) } ?? findFamily(named: key, &s, &scratch)
        if case .named(let existing) = lookup {
            let family = s.families[Int(existing)]
            guard family.type == type else {
                dropped.typeConflicts += 1
                return nil
            }
            if type == .histogram, s.bounds(of: family) != bounds {
                dropped.bucketConflicts += 1
                return nil
            }
            familyIndex = existing
        } else {
            // A new family, if none exposes its names and none is reserved. (`findFamily` left the
            // name in `scratch.name`, and its bucket; each name is hashed once, here or there.)
            guard case .free(let nameBucket) = lookup else {
                dropped.typeConflicts += 1
                return nil
            }
            var buckets = (nameBucket, 0, 0, 0)
            for slot in 0..<Self.exposedCount(type) {
                Self.writeExposed(scratch.name, slot: slot, into: &scratch.query)
                if slot > 0 {
                    let h = self.nameBucket(scratch.query, s)
                    switch slot {
                    case 1: buckets.1 = h
                    case 2: buckets.2 = h
                    default: buckets.3 = h
                    }
                    guard family(exposing: scratch.query, bucket: h, s, &scratch.other, &scratch.exposed) == nil else {
                        dropped.typeConflicts += 1
                        return nil
                    }
                }
                if reservedFirstBytes[Int(scratch.query.first ?? 0)], reserved.contains(scratch.query) {
                    dropped.typeConflicts += 1
                    return nil
                }
            }
            familyIndex = addFamily(Family(source: key, type: type), &s)
            s.nameCount += Self.exposedCount(type)
            if s.nameCount > s.nameHeads.count {
                rebuildNameHeads(&s, &scratch)
            } else {
                linkNames(familyIndex, type, buckets: buckets, &s)
            }
        }
        let labels = PrometheusNaming.labels(of: key, histogram: type == .histogram)
        let bare = labels.isEmpty
        let identity = SeriesIdentity(family: familyIndex, labels: labels)
        let seriesIndex: Int32
        if bare, s.families[Int(familyIndex)].bareSeries >= 0 {
            seriesIndex = s.families[Int(familyIndex)].bareSeries
        } else if !bare, let existing = s.seriesIndex[identity] {
            seriesIndex = existing
        } else {
            var series = Series(family: familyIndex, labels: labels)
            series.isSet = key.type == .set
            if type == .histogram {
                let histogram = Histogram(
                    bounds: bounds, buckets: Array(repeating: 0, count: (bounds?.upperBounds.count ?? 0) + 1))
                series.histogram = Self.store(histogram, in: &s.histograms, reusing: &s.freeHistograms)
            }
            seriesIndex = addSeries(series, &s)
            if bare { s.families[Int(familyIndex)].bareSeries = seriesIndex } else { s.seriesIndex[identity] = seriesIndex }
        }
        s.series[Int(seriesIndex)].contributors += 1
        if number >= s.routes.count {
            s.routes.append(contentsOf: repeatElement(Route(), count: number + 1 - s.routes.count))
        }
        s.routes[number] = Route(series: seriesIndex, incarnation: key.series.incarnation)
        return seriesIndex
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

    /// The family named as `key` registers, or what else holds the name; the name is left in
    /// `scratch.name`.
    private func findFamily(named key: MetricKey, _ s: inout State, _ scratch: inout NameScratch) -> FamilyLookup {
        writeFamilyName(of: key, into: &scratch.name)
        let h = nameBucket(scratch.name, s)
        guard let existing = family(exposing: scratch.name, bucket: h, s, &scratch.other, &scratch.exposed) else {
            return .free(bucket: h)
        }
        return isNamed(scratch.name, s.families[Int(existing)], &scratch.other) ? .named(existing) : .taken
    }

    /// Grows `nameHeads` once for the names that `fresh` (sorted by `pageOrder`) can add: one
    /// set per statsd name and type among them (the most new families they can make), instead
    /// of doubling it again and again as the first flush routes a large page.
    private func sizeNameHeads(
        for fresh: [(key: MetricKey, bounds: BucketBounds?)], _ s: inout State, _ scratch: inout NameScratch
    ) {
        var names = s.nameCount
        for k in fresh.indices where k == 0 || !Self.sameNameAndType(fresh[k - 1].key, fresh[k].key) {
            names += Self.exposedCount(FamilyType(fresh[k].key.type))
        }
        guard names > s.nameHeads.count else { return }
        let saved = s.nameCount
        s.nameCount = names
        rebuildNameHeads(&s, &scratch)
        s.nameCount = saved
    }

    /// Whether two keys have the same type and name.
    private static func sameNameAndType(_ a: MetricKey, _ b: MetricKey) -> Bool {
        a.type == b.type
            && a.withName { na in
                b.withName { nb in
                    guard na.count == nb.count else { return false }
                    guard let x = na.baseAddress, let y = nb.baseAddress else { return true }  // both empty
                    return memcmp(x, y, na.count) == 0
                }
            }
    }

    /// Whether `family` is named `name` (its name derived into `other`).
    private func isNamed(_ name: [UInt8], _ family: Family, _ other: inout [UInt8]) -> Bool {
        writeFamilyName(of: family.source, into: &other)
        return Self.same(other, name)
    }

    /// Pushes family `f` on the front of the bucket chain of each name it exposes, whose buckets
    /// (`nameBucket`) are known: its name's, then a histogram's `_bucket`, `_sum` and `_count`.
    private func linkNames(_ f: Int32, _ type: FamilyType, buckets: (Int, Int, Int, Int), _ s: inout State) {
        for slot in 0..<Self.exposedCount(type) {
            let h =
                switch slot {
                case 0: buckets.0
                case 1: buckets.1
                case 2: buckets.2
                default: buckets.3
                }
            Self.setLink(f, slot, s.nameHeads[h], &s)
            s.nameHeads[h] = f
        }
    }

    /// Pushes family `f`, named `name`, on the front of the bucket chain of each name it exposes.
    private func linkNames(_ f: Int32, _ name: [UInt8], _ type: FamilyType, _ s: inout State, _ exposed: inout [UInt8]) {
        for slot in 0..<Self.exposedCount(type) {
            Self.writeExposed(name, slot: slot, into: &exposed)
            let h = nameBucket(exposed, s)
            Self.setLink(f, slot, s.nameHeads[h], &s)
            s.nameHeads[h] = f
        }
    }

    /// Sizes `nameHeads` for `nameCount` names (a bucket per name, rounded up to a power of
    /// two: 4 bytes per name; at least twice as many as before, so that a growing page
    /// rebuilds it O(log n) times) and links every live family into it again.
    private func rebuildNameHeads(_ s: inout State, _ scratch: inout NameScratch) {
        s.nameHeads = [Int32](repeating: -1, count: Int.powerOfTwo(atLeast: s.nameCount, minimum: 64))
        s.histogramNameLinks = [:]
        var f = s.firstFamily
        while f >= 0 {
            let family = s.families[Int(f)]
            writeFamilyName(of: family.source, into: &scratch.other)
            linkNames(f, scratch.other, family.type, &s, &scratch.exposed)
            f = family.next
        }
    }

    /// Puts `value` in a slot freed earlier, or at the end.
    /// - Returns: its index.
    private static func store<T>(_ value: T, in array: inout [T], reusing free: inout [Int32]) -> Int32 {
        if let slot = free.popLast() {
            array[Int(slot)] = value
            return slot
        }
        array.append(value)
        return Int32(array.count - 1)
    }

    private func addFamily(_ family: Family, _ s: inout State) -> Int32 {
        var family = family
        family.previous = s.lastFamily
        let index = Self.store(family, in: &s.families, reusing: &s.freeFamilies)
        if s.lastFamily >= 0 { s.families[Int(s.lastFamily)].next = index } else { s.firstFamily = index }
        s.lastFamily = index
        s.liveFamilies += 1
        return index
    }

    private func addSeries(_ series: Series, _ s: inout State) -> Int32 {
        var series = series
        let f = Int(series.family)
        series.previous = s.families[f].lastSeries
        let index = Self.store(series, in: &s.series, reusing: &s.freeSeries)
        if s.families[f].lastSeries >= 0 {
            s.series[Int(s.families[f].lastSeries)].next = index
        } else {
            s.families[f].firstSeries = index
        }
        s.families[f].lastSeries = index
        return index
    }

    /// A statsd series expired: drop its share, and the series and family once nothing feeds them.
    private func forget(_ key: MetricKey, _ s: inout State, _ scratch: inout NameScratch) {
        guard Self.knownRoute(key, s) != nil else { return }
        forget(Int(key.series.index), &s, &scratch)
    }

    /// Drops the route of statsd series number `number` (it has one).
    private func forget(_ number: Int, _ s: inout State, _ scratch: inout NameScratch) {
        let i = s.routes[number].series
        s.routes[number] = Route()
        let index = Int(i)
        s.series[index].contributors -= 1
        guard s.series[index].contributors == 0 else { return }
        let series = s.series[index]
        let f = Int(series.family)
        if series.previous >= 0 {
            s.series[Int(series.previous)].next = series.next
        } else {
            s.families[f].firstSeries = series.next
        }
        if series.next >= 0 {
            s.series[Int(series.next)].previous = series.previous
        } else {
            s.families[f].lastSeries = series.previous
        }
        if series.labels.isEmpty {
            s.families[f].bareSeries = -1
        } else {
            s.seriesIndex[SeriesIdentity(family: series.family, labels: series.labels)] = nil
        }
        if series.histogram >= 0 {
            s.histograms[Int(series.histogram)] = Histogram(bounds: nil, buckets: [])
            s.freeHistograms.append(series.histogram)
        }
        s.series[index] = Series(family: -1, labels: .init())
        s.freeSeries.append(i)
        guard s.families[f].firstSeries < 0 else { return }
        let family = s.families[f]
        if family.previous >= 0 { s.families[Int(family.previous)].next = family.next } else { s.firstFamily = family.next }
        if family.next >= 0 { s.families[Int(family.next)].previous = family.previous } else { s.lastFamily = family.previous }
        // Unlink the family from each of its names' bucket chains.
        writeFamilyName(of: family.source, into: &scratch.name)
        s.nameCount -= Self.exposedCount(family.type)
        for slot in 0..<Self.exposedCount(family.type) {
            Self.writeExposed(scratch.name, slot: slot, into: &scratch.query)
            let h = nameBucket(scratch.query, s)
            let after = Self.link(Int32(f), slot, s)
            if s.nameHeads[h] == Int32(f) {
                s.nameHeads[h] = after
                continue
            }
            var p = s.nameHeads[h]
            while p >= 0 {
                let pf = s.families[Int(p)]
                writeFamilyName(of: pf.source, into: &scratch.other)
                var found: Int? = nil
                for pSlot in 0..<Self.exposedCount(pf.type) {
                    Self.writeExposed(scratch.other, slot: pSlot, into: &scratch.exposed)
                    if nameBucket(scratch.exposed, s) == h {
                        found = pSlot
                        break
                    }
                }
                guard let pSlot = found else { break }
                let next = Self.link(p, pSlot, s)
                if next == Int32(f) {
                    Self.setLink(p, pSlot, after, &s)
                    break
                }
                p = next
            }
        }
        s.histogramNameLinks[Int32(f)] = nil
        s.families[f] = Family(source: MetricKey(bytes: [], series: .none), type: .gauge)
        s.freeFamilies.append(Int32(f))
        s.liveFamilies -= 1
    }

    /// Rebuilds the arrays and indexes without their free entries once most entries are
    /// free (after a mass expiry): Swift arrays and dictionaries never shrink by themselves,
    /// so a cardinality bomb would otherwise keep its peak memory after `series_ttl`.
    /// Families keep their order, and their series theirs.
    private func compactIfSparse(_ s: inout State, _ scratch: inout NameScratch) {
        let liveSeries = s.series.count - s.freeSeries.count
        guard s.series.count >= 4096, liveSeries * 4 < s.series.count else { return }
        var familyMap = [Int32](repeating: -1, count: s.families.count)
        var seriesMap = [Int32](repeating: -1, count: s.series.count)
        var histogramMap = [Int32](repeating: -1, count: s.histograms.count)
        var families: [Family] = []
        var series: [Series] = []
        var histograms: [Histogram] = []
        families.reserveCapacity(s.liveFamilies)
        series.reserveCapacity(liveSeries)
        var f = s.firstFamily
        while f >= 0 {
            familyMap[Int(f)] = Int32(families.count)
            families.append(s.families[Int(f)])
            var i = s.families[Int(f)].firstSeries
            while i >= 0 {
                seriesMap[Int(i)] = Int32(series.count)
                series.append(s.series[Int(i)])
                let h = s.series[Int(i)].histogram
                if h >= 0 {
                    histogramMap[Int(h)] = Int32(histograms.count)
                    histograms.append(s.histograms[Int(h)])
                }
                i = s.series[Int(i)].next
            }
            f = s.families[Int(f)].next
        }
        func map(_ table: [Int32], _ old: Int32) -> Int32 { old >= 0 ? table[Int(old)] : -1 }
        for k in families.indices {
            families[k].firstSeries = map(seriesMap, families[k].firstSeries)
            families[k].lastSeries = map(seriesMap, families[k].lastSeries)
            families[k].bareSeries = map(seriesMap, families[k].bareSeries)
            families[k].next = map(familyMap, families[k].next)
            families[k].previous = map(familyMap, families[k].previous)
        }
        for k in series.indices {
            series[k].family = map(familyMap, series[k].family)
            // (Only series with a histogram: the field also marks sets, which must stay sets.)
            if series[k].histogram >= 0 { series[k].histogram = histogramMap[Int(series[k].histogram)] }
            series[k].next = map(seriesMap, series[k].next)
            series[k].previous = map(seriesMap, series[k].previous)
        }
        s.seriesIndex = Dictionary(
            uniqueKeysWithValues: s.seriesIndex.map {
                (SeriesIdentity(family: map(familyMap, $0.key.family), labels: $0.key.labels), map(seriesMap, $0.value))
            })
        for k in s.routes.indices { s.routes[k].series = map(seriesMap, s.routes[k].series) }
        s.firstFamily = map(familyMap, s.firstFamily)
        s.lastFamily = map(familyMap, s.lastFamily)
        s.families = families
        s.series = series
        s.histograms = histograms
        s.freeFamilies = []
        s.freeSeries = []
        s.freeHistograms = []
        rebuildNameHeads(&s, &scratch)
        // The old arrays are gone now; hand their pages back to the kernel.
        _ = CStatorSys_release_free_memory()
    }

    /// Calls `body` with the state, holding the state's own lock (never a shard lock).
    func withState<R>(_ body: (borrowing State) -> R) -> R {
        state.withLock { body($0) }
    }

    /// Number of live families (for tests and self metrics).
    public var familyCount: Int { state.withLock { $0.liveFamilies } }
}
