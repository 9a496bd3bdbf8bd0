/// One reader's memory of the mapping decisions it made: from a statsd name and metric kind
/// to what the rules say (`MappingDecision`), so that the rules run once per name and kind,
/// not once per line. (Lines whose whole identity the reader knows do not even get here: their
/// `LineIdentityCache` record holds the mapped key.)
///
/// Bounded: at most `capacity` names; the next one past that empties the cache first, so a
/// stream of new names costs a rules run each and never more memory. Emptied as well when
/// the rules change (`forgetAll`).
struct MappingCache {
    private struct Entry {
        var name: [UInt8]
        var kind: GlobTrie.Kind
        var decision: MappingDecision
    }

    /// Entries by a seeded hash of name and kind (collisions chain in the array).
    private var entries: [UInt64: [Entry]] = [:]
    private(set) var count = 0
    let capacity: Int
    private let seed: UInt64

    init(seed: UInt64, capacity: Int = 65_536) {
        self.seed = seed
        self.capacity = capacity
    }

    /// The decision for `name` and `type`, asking `rules` when it is new.
    mutating func decision(
        _ name: UnsafeRawBufferPointer, type: MetricType, rules: LoadedMapping
    ) -> (decision: MappingDecision, new: Bool) {
        let kind = GlobTrie.Kind(type)
        let hash = SeriesKeyBuilder.hash(name, seed: seed) ^ UInt64(kind.rawValue)
        if let chain = entries[hash] {
            for e in chain where e.kind == kind && e.name.elementsEqual(name) { return (e.decision, false) }
        }
        // The rules decide by kind (match_metric_type), so one decision serves every type of it.
        let decision = rules.decide(name, type: type)
        if count >= capacity { forgetAll() }
        entries[hash, default: []].append(Entry(name: Array(name), kind: kind, decision: decision))
        count += 1
        return (decision, true)
    }

    mutating func forgetAll() {
        entries.removeAll()
        count = 0
    }
}
