import Synchronization

/// The Prometheus view of everything flushed so far: counters cumulative since
/// the series appeared, gauges and sets as their last value, timers, histograms
/// and distributions as cumulative histograms. Fed by each `FlushBatch`; read by
/// the scrape page and (later) the remote-write sink, so it lives on its own.
///
/// Names and labels follow `PrometheusNaming`. Statsd series whose names and
/// labels coincide are merged; one family has one type, and a series of another
/// type is left out and counted as `type_conflict` once per flush.
public final class CumulativeState: Sendable {
    /// The Prometheus type of a family.
    public enum FamilyType: Sendable {
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

    /// One exposed series.
    struct Series {
        var labels: PrometheusNaming.Labels
        /// Counter total or gauge value.
        var value: Double = 0
        /// For sets: the flush that last set `value` (a set reads 0 after an empty interval).
        var setAt: UInt64 = 0
        var isSet = false
        /// Histogram state: cumulative per-bucket counts (not cumulative across buckets), sum, count.
        var buckets: [Double] = []
        var sum: Double = 0
        var count: Double = 0
        /// Statsd series feeding this one; it is removed when the last of them expires.
        var contributors = 0
    }

    /// One metric family.
    struct Family {
        var name: [UInt8]
        var type: FamilyType
        var help: [UInt8]
        var bounds: BucketBounds?
        var series: [Series?] = []
        var index: [PrometheusNaming.Labels: Int] = [:]
        var live = 0
    }

    struct State {
        var families: [Family?] = []
        /// Every exposed sample name (including `_bucket`/`_sum`/`_count`) -> family.
        var names: [[UInt8]: Int] = [:]
        /// Statsd series -> (family, series).
        var routes: [MetricKey: (family: Int, series: Int)] = [:]
        var flushNumber: UInt64 = 0
        var liveFamilies = 0
        /// The last batch folded in (its sequence and flush time).
        var appliedSequence: UInt64 = 0
        var appliedTimestamp: EpochMillis = 0
    }

    private let state = Mutex(State())
    private let prefix: [UInt8]
    /// Names the agent's own metrics use; statsd families may not take them.
    private let reserved: Set<[UInt8]>

    private let metrics: SelfMetrics?

    /// - Parameters:
    ///   - prefix: `sinks.prometheus.prefix`.
    ///   - reservedNames: family names already exposed by someone else (the agent's own metrics).
    ///   - metrics: where left-out series are counted (`stator_series_dropped_total{sink="prometheus"}`).
    public init(prefix: String = "", reservedNames: [String] = [], metrics: SelfMetrics? = nil) {
        self.prefix = Array(prefix.utf8)
        reserved = Set(reservedNames.map { Array($0.utf8) })
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
            for key in batch.expired { forget(key, &s) }
            // Series new in this batch join the page sorted by name, then type and tags.
            var fresh: [(key: MetricKey, bounds: BucketBounds?)] = []
            for c in batch.counters where s.routes[c.key] == nil { fresh.append((c.key, nil)) }
            for g in batch.gauges where s.routes[g.key] == nil { fresh.append((g.key, nil)) }
            for set in batch.sets where s.routes[set.key] == nil { fresh.append((set.key, nil)) }
            for t in batch.samples where s.routes[t.key] == nil { fresh.append((t.key, t.bounds)) }
            if !fresh.isEmpty {
                fresh.sort { a, b in
                    // By name bytes (after the type byte and length), then the whole key.
                    let (ka, kb) = (a.key.bytes, b.key.bytes)
                    let na = ka[3..<(3 + (Int(ka[1]) | Int(ka[2]) << 8))]
                    let nb = kb[3..<(3 + (Int(kb[1]) | Int(kb[2]) << 8))]
                    if na.elementsEqual(nb) { return ka.lexicographicallyPrecedes(kb) }
                    return na.lexicographicallyPrecedes(nb)
                }
                var ignored = Dropped()  // counted below, once, when the batch is folded in
                for f in fresh { _ = route(f.key, f.bounds, &s, &ignored) }
            }
            for c in batch.counters {
                guard let r = route(c.key, nil, &s, &dropped) else { continue }
                s.families[r.family]?.series[r.series]?.value += c.value
            }
            for g in batch.gauges {
                guard let r = route(g.key, nil, &s, &dropped) else { continue }
                s.families[r.family]?.series[r.series]?.value = g.value
            }
            let flush = s.flushNumber
            for set in batch.sets {
                guard let r = route(set.key, nil, &s, &dropped) else { continue }
                s.families[r.family]?.series[r.series]?.value = set.value
                s.families[r.family]?.series[r.series]?.setAt = flush
            }
            for t in batch.samples {
                guard let r = route(t.key, t.bounds, &s, &dropped) else { continue }
                let scale = t.key.type == .timer ? 1.0 / 1000 : 1
                s.families[r.family]?.series[r.series]?.sum += t.weightedSum * scale
                s.families[r.family]?.series[r.series]?.count += t.count
                for (i, n) in t.bucketCounts.enumerated() { s.families[r.family]?.series[r.series]?.buckets[i] += n }
            }
            return dropped
        }
    }

    /// Finds or creates the series a statsd key feeds.
    private func route(
        _ key: MetricKey, _ bounds: BucketBounds?, _ s: inout State, _ dropped: inout Dropped
    ) -> (family: Int, series: Int)? {
        if let known = s.routes[key] { return known }
        let type = FamilyType(key.type)
        let name = key.withName { PrometheusNaming.familyName(prefix: prefix, statsdName: $0, type: key.type) }
        let familyIndex: Int
        if let existing = s.names[name], let family = s.families[existing], family.name == name {
            guard family.type == type else {
                dropped.typeConflicts += 1
                return nil
            }
            if type == .histogram, family.bounds != bounds {
                dropped.bucketConflicts += 1
                return nil
            }
            familyIndex = existing
        } else {
            let exposed = Self.exposedNames(name, type)
            guard exposed.allSatisfy({ s.names[$0] == nil && !reserved.contains($0) }) else {
                dropped.typeConflicts += 1
                return nil
            }
            var help = Array("statsd \(key.type) ".utf8)
            key.withName { help.append(contentsOf: $0) }
            familyIndex = s.families.count
            s.families.append(Family(name: name, type: type, help: help, bounds: type == .histogram ? bounds : nil))
            for n in exposed { s.names[n] = familyIndex }
            s.liveFamilies += 1
        }
        let labels = PrometheusNaming.labels(of: key, histogram: type == .histogram)
        guard var family = s.families[familyIndex] else { return nil }
        s.families[familyIndex] = nil  // edit in place without a copy
        let seriesIndex: Int
        if let existing = family.index[labels] {
            seriesIndex = existing
        } else {
            seriesIndex = family.series.count
            var series = Series(labels: labels)
            series.isSet = key.type == .set
            if type == .histogram { series.buckets = Array(repeating: 0, count: (bounds?.upperBounds.count ?? 0) + 1) }
            family.series.append(series)
            family.index[labels] = seriesIndex
            family.live += 1
        }
        family.series[seriesIndex]?.contributors += 1
        s.families[familyIndex] = family
        s.routes[key] = (familyIndex, seriesIndex)
        return (familyIndex, seriesIndex)
    }

    /// The sample names a family exposes.
    private static func exposedNames(_ name: [UInt8], _ type: FamilyType) -> [[UInt8]] {
        guard type == .histogram else { return [name] }
        return [name] + ["_bucket", "_sum", "_count"].map { name + Array($0.utf8) }
    }

    /// A statsd series expired: drop its share, and the series and family once nothing feeds them.
    private func forget(_ key: MetricKey, _ s: inout State) {
        guard let r = s.routes.removeValue(forKey: key), var family = s.families[r.family],
            var series = family.series[r.series]
        else { return }
        series.contributors -= 1
        if series.contributors > 0 {
            s.families[r.family]?.series[r.series] = series
            return
        }
        family.series[r.series] = nil
        family.index[series.labels] = nil
        family.live -= 1
        if family.live > 0 {
            s.families[r.family] = family
            return
        }
        s.families[r.family] = nil
        for n in Self.exposedNames(family.name, family.type) { s.names[n] = nil }
        s.liveFamilies -= 1
    }

    /// Calls `body` with every live family and its live series, in a stable order
    /// (first appearance), holding the state's own lock (never a shard lock).
    func withFamilies<R>(_ body: (_ families: [Family?], _ flushNumber: UInt64) -> R) -> R {
        state.withLock { s in
            compactIfSparse(&s)
            return body(s.families, s.flushNumber)
        }
    }

    /// Like `withFamilies`, also passing the sequence and flush time of the last batch applied.
    func withFamilies<R>(
        _ body: (_ families: [Family?], _ flushNumber: UInt64, _ sequence: UInt64, _ timestamp: EpochMillis) -> R
    ) -> R {
        state.withLock { s in
            compactIfSparse(&s)
            return body(s.families, s.flushNumber, s.appliedSequence, s.appliedTimestamp)
        }
    }

    /// Drops removed families and series once they outnumber the live ones, keeping order.
    private func compactIfSparse(_ s: inout State) {
        var familyMap: [Int: Int]? = nil
        if s.families.count > 64, s.liveFamilies * 2 < s.families.count {
            var map: [Int: Int] = [:]
            var kept: [Family?] = []
            for (old, family) in s.families.enumerated() {
                guard let family else { continue }
                map[old] = kept.count
                kept.append(family)
            }
            s.families = kept
            for (name, old) in s.names { s.names[name] = map[old] }
            familyMap = map
        }
        var seriesMaps: [Int: [Int: Int]] = [:]
        for f in s.families.indices {
            guard var family = s.families[f], family.series.count > 64, family.live * 2 < family.series.count else {
                continue
            }
            var map: [Int: Int] = [:]
            var kept: [Series?] = []
            for (old, series) in family.series.enumerated() {
                guard let series else { continue }
                map[old] = kept.count
                family.index[series.labels] = kept.count
                kept.append(series)
            }
            family.series = kept
            s.families[f] = family
            seriesMaps[f] = map
        }
        guard familyMap != nil || !seriesMaps.isEmpty else { return }
        for (key, r) in s.routes {
            let f = familyMap.map { $0[r.family] ?? r.family } ?? r.family
            let i = seriesMaps[f]?[r.series] ?? r.series
            s.routes[key] = (f, i)
        }
    }

    /// Number of live families (for tests and self metrics).
    public var familyCount: Int { state.withLock { $0.liveFamilies } }
}
