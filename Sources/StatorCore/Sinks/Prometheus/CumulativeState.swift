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
    private let state = PthreadLock(State())
    let prefix: [UInt8]
    /// Names the agent's own metrics use; statsd families may not take them.
    private let reserved: Set<[UInt8]>
    /// Whether some reserved name starts with the byte: most names are then known free
    /// without hashing them for `reserved`.
    private let reservedFirstBytes: [Bool]
    private let metrics: SelfMetrics?
    /// The options of mapped series (`mapping_config`): summaries, `scale`, `help`.
    let mappingOptions: MappingOptionsRegistry?

    /// - Parameters:
    ///   - prefix: `sinks.prometheus.prefix`.
    ///   - reservedNames: family names already exposed by someone else (the agent's own metrics).
    ///   - metrics: where left-out series are counted (`stator_series_dropped_total{sink="prometheus"}`).
    ///   - mappingOptions: the options of mapped series, when a mapping is configured.
    public init(
        prefix: String = "", reservedNames: [String] = [], metrics: SelfMetrics? = nil,
        mappingOptions: MappingOptionsRegistry? = nil
    ) {
        self.mappingOptions = mappingOptions
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
        /// Not dropped: series started again because a mapping reload changed their rule's
        /// buckets or `observer_type` (`stator_mapping_series_reset_total`).
        public var mappingResets = 0
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
            if dropped.mappingResets > 0 { metrics.mappingSeriesResets.add(UInt64(dropped.mappingResets)) }
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
            s.intervalStart = UInt32(clamping: (batch.timestamp - Int64((batch.interval * 1000).rounded())).floorDiv(1000))
            s.flushNumber &+= 1
            if let mappingOptions { s.mappingOptions = mappingOptions.snapshot() }
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
            for p in batch.points where p.key.type == .counter && Self.knownRoute(p.key, s) == nil {
                fresh.append((p.key, nil))
            }
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
            func addToCounter(_ key: MetricKey, _ value: Double) {
                guard let i = route(key, nil, &s, &dropped, &scratch) else { return }
                s.series[Int(i)].value += key.isMapped ? (value * Self.scale(key, s)).withoutNaN : value
            }
            for c in batch.counters { addToCounter(c.key, c.value) }
            // A timestamped counter sample adds to the total; a timestamped gauge sample is not
            // the gauge's value now (SPEC section 15).
            for p in batch.points where p.key.type == .counter { addToCounter(p.key, p.value) }
            for g in batch.gauges {
                guard let i = route(g.key, nil, &s, &dropped, &scratch) else { continue }
                s.series[Int(i)].value = g.key.isMapped ? (g.value * Self.scale(g.key, s)).withoutNaN : g.value
            }
            let flush = s.flushNumber
            for set in batch.sets {
                guard let i = route(set.key, nil, &s, &dropped, &scratch) else { continue }
                s.series[Int(i)].value = set.key.isMapped ? (set.value * Self.scale(set.key, s)).withoutNaN : set.value
                s.series[Int(i)].setAt = UInt32(truncatingIfNeeded: flush)
            }
            for t in batch.samples {
                if t.key.isMapped, let known = Self.knownRoute(t.key, s) {
                    dropped.mappingResets += followOptions(of: t.key, bounds: t.bounds, series: known, &s, &scratch)
                }
                guard let i = route(t.key, t.bounds, &s, &dropped, &scratch) else { continue }
                let h = Int(s.series[Int(i)].histogram)
                guard h >= 0 else { continue }
                // A histogram's samples must have its buckets: after a reload gave another rule of
                // its family new ones, that rule's series conflict, as they would at a start.
                if s.histograms[h].quantiles.isEmpty, s.histograms[h].bounds != t.bounds {
                    dropped.bucketConflicts += 1
                    continue
                }
                // Timers in seconds, then the mapping's scale (section 4, then section 8).
                let scale = (t.key.type == .timer ? 1.0 / 1000 : 1) * (t.key.isMapped ? Self.scale(t.key, s) : 1)
                s.histograms[h].sum = (s.histograms[h].sum + t.weightedSum * scale).withoutNaN
                s.histograms[h].count += t.count
                if !s.histograms[h].quantiles.isEmpty {
                    // A summary: the interval's exact quantiles, by statsd's rank (section 2).
                    let values = t.sortedValues
                    guard !values.isEmpty else { continue }
                    for (k, q) in s.histograms[h].quantiles.enumerated() {
                        let rank = SampleStatistics.rank(q * 100, values.count)
                        s.histograms[h].buckets[k] = (values[rank - 1] * scale).withoutNaN
                    }
                    s.series[Int(i)].setAt = UInt32(truncatingIfNeeded: flush)
                    continue
                }
                for (b, n) in t.bucketCounts.enumerated() where b < s.histograms[h].buckets.count {
                    s.histograms[h].buckets[b] += n
                }
                s.histograms[h].addNative(t)
            }
            return dropped
        }
    }

    /// The `scale` of a mapped key's rule (1 when it sets none).
    static func scale(_ key: MetricKey, _ s: borrowing State) -> Double {
        guard let id = key.mappingOptions, Int(id) < s.mappingOptions.count else { return 1 }
        return s.mappingOptions[Int(id)].scale ?? 1
    }

    /// The order new series join the page in: by name bytes (after the type byte and the
    /// length), then by the whole key. (Compared in place: array slices and the generic
    /// sequence comparisons make sorting many new series slow in debug and sanitizer builds.)
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

    /// The family that exposes exactly `name`, whose bucket (`nameBucket`) is `h`, if any. (Each family met in the chain has its
    /// names derived into `other` and `exposed`.)
    func family(
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

    /// The series a statsd key feeds, if it has been routed.
    @inline(__always)
    static func knownRoute(_ key: MetricKey, _ s: borrowing State) -> Int32? {
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
        let type = FamilyType.of(key, s.mappingOptions)
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
        // (As `PrometheusNaming.labels(of:reserving:)`, knowing whether the tags kept their names.)
        let reserved: [UInt8]? = type == .histogram ? Self.le : type == .summary ? Self.quantile : nil
        let plain = PrometheusNaming.plainLabels(of: key, reserving: reserved)
        let labels = plain ?? PrometheusNaming.sortedLabels(of: key, reserving: reserved)
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
                    bounds: bounds, buckets: Array(repeating: 0, count: (bounds?.upperBounds.count ?? 0) + 1),
                    slot: key.mappingOptions)
                series.histogram = Self.store(histogram, in: &s.histograms, reusing: &s.freeHistograms)
            } else if type == .summary {
                let quantiles = key.mappingOptions.map {
                    Int($0) < s.mappingOptions.count ? s.mappingOptions[Int($0)].quantiles : []
                }
                let q = quantiles ?? MappingOptions.defaultQuantiles
                let summary = Histogram(
                    bounds: nil, buckets: Array(repeating: 0, count: q.count), quantiles: q, slot: key.mappingOptions)
                series.histogram = Self.store(summary, in: &s.histograms, reusing: &s.freeHistograms)
            }
            seriesIndex = addSeries(series, &s)
            if plain == nil { s.tagsAsSent[seriesIndex] = key.bytes }
            if bare { s.families[Int(familyIndex)].bareSeries = seriesIndex } else { s.seriesIndex[identity] = seriesIndex }
        }
        s.series[Int(seriesIndex)].contributors += 1
        if number >= s.routes.count {
            s.routes.append(contentsOf: repeatElement(Route(), count: number + 1 - s.routes.count))
        }
        s.routes[number] = Route(series: seriesIndex, incarnation: key.series.incarnation)
        return seriesIndex
    }

    private static let le = Array("le".utf8)
    private static let quantile = Array("quantile".utf8)

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
        if Int(index) >= s.seriesStarts.count {
            s.seriesStarts.append(contentsOf: repeatElement(0, count: Int(index) + 1 - s.seriesStarts.count))
        }
        s.seriesStarts[Int(index)] = s.intervalStart
        if s.families[f].lastSeries >= 0 {
            s.series[Int(s.families[f].lastSeries)].next = index
        } else {
            s.families[f].firstSeries = index
        }
        s.families[f].lastSeries = index
        return index
    }

    /// Calls `body` with the state, holding the state's own lock (never a shard lock).
    func withState<R>(_ body: (borrowing State) -> R) -> R {
        state.withLock { body($0) }
    }

    /// Number of live families (for tests and self metrics).
    public var familyCount: Int { state.withLock { $0.liveFamilies } }
}
