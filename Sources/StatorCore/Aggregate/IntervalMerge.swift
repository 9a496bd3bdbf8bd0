/// Merges intervals in which one series may have aggregates in several places (the shards'
/// and the readers' shares), so that each series appears once.
enum IntervalMerge {
    /// Folds every aggregate of `extra` whose series has one in `parts` (or in an earlier
    /// `extra`, or earlier in the same one: two identities, such as tags in another order, can
    /// name one series) into that one; what is left of each `extra` is appended to `parts`.
    /// `parts` must hold each series at most once (the shards' intervals do). Series are told
    /// apart by their `SeriesID` (dense), so the lookup is an array indexed by it, made for the
    /// merge and dropped after.
    static func merge(
        _ parts: inout [IntervalAggregates], _ extra: [IntervalAggregates], maxSamples: Int, rng: inout SplitMix64
    ) {
        let extra = extra.filter { !$0.isEmpty }
        guard !extra.isEmpty else { return }
        let firstExtra = parts.count
        parts.append(contentsOf: extra)
        var highest = 0
        func see(_ key: MetricKey) {
            if key.series != .none { highest = Swift.max(highest, Int(key.series.index) + 1) }
        }
        for part in parts {
            for c in part.counters { see(c.key) }
            for g in part.gauges { see(g.key) }
            for s in part.sets { see(s.key) }
            for t in part.samples { see(t.key) }
        }
        var place = [UInt64](repeating: .max, count: highest)
        fold(&parts, firstExtra: firstExtra, \.counters, place: &place, key: \.key) { into, c, _ in
            into.sum += c.sum
            into.lines &+= c.lines
        }
        // Gauges compose in order: the shards' part of the interval first, then the shares'
        // (between two readers there is no order to keep).
        fold(&parts, firstExtra: firstExtra, \.gauges, place: &place, key: \.key) { into, g, _ in
            into.then(g)
            into.lines &+= g.lines
        }
        fold(&parts, firstExtra: firstExtra, \.sets, place: &place, key: \.key) { into, s, _ in
            into.members.formUnion(s.members)
            into.lines &+= s.lines
        }
        fold(&parts, firstExtra: firstExtra, \.samples, place: &place, key: \.key) { into, t, arena in
            into.merge(t, maxSamples: maxSamples, arena: arena.unsafelyUnwrapped, rng: &rng)
        }
    }

    /// One type's pass of `merge`. `place[series]` is (part << 32) | position, or `.max`.
    /// (A series number names one series throughout the drained interval: numbers are given
    /// back only by expiry, which runs after the drain, and a route to an expired series is
    /// refused by `Shard.touch`.)
    private static func fold<A>(
        _ parts: inout [IntervalAggregates], firstExtra: Int, _ path: WritableKeyPath<IntervalAggregates, [A]>,
        place: inout [UInt64], key: (A) -> MetricKey, combine: (inout A, A, SampleArena?) -> Void
    ) {
        for i in place.indices { place[i] = .max }
        for p in 0..<firstExtra {
            for (i, a) in parts[p][keyPath: path].enumerated() {
                let series = key(a).series
                if series != .none { place[Int(series.index)] = UInt64(p) << 32 | UInt64(i) }
            }
        }
        for p in firstExtra..<parts.count {
            let items = parts[p][keyPath: path]
            parts[p][keyPath: path] = []
            var kept: [A] = []
            kept.reserveCapacity(items.count)
            for a in items {
                let series = key(a).series
                guard series != .none else {
                    kept.append(a)
                    continue
                }
                let w = place[Int(series.index)]
                if w != .max {
                    let (q, i) = (Int(w >> 32), Int(w & 0xFFFF_FFFF))
                    let arena = parts[q].arena
                    if q == p { combine(&kept[i], a, arena) } else { combine(&parts[q][keyPath: path][i], a, arena) }
                    continue
                }
                place[Int(series.index)] = UInt64(p) << 32 | UInt64(kept.count)
                kept.append(a)
            }
            parts[p][keyPath: path] = kept
        }
    }
}
