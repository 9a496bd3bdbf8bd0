/// The options of every mapping rule loaded since start, by slot. A mapped series' key
/// carries its rule's slot (`MetricKey.mappingOptions`), so the shards (buckets, ttl), the
/// flusher (ttl) and the Prometheus sink (type, buckets, quantiles, scale, help) find the
/// options in force for it.
///
/// A slot stands for a rule's identity: everything but its options (`MappingRule.identity`).
/// A reload that edits only a rule's options keeps its slot, so its series keep their keys
/// and take the new options: a gauge keeps its value, a counter's total carries on, the page
/// never shows a family twice. Slots are append-only: at most 65,536 rule identities since
/// start (a reload that would pass that is refused, and the old rules stay).
public final class MappingOptionsRegistry: Sendable {
    private struct State {
        var slots: [String: UInt16] = [:]
        var list: [MappingOptions] = []
        var bounds: [BucketBounds?] = []
    }

    private let state = PthreadLock(State())
    /// `sinks.prometheus.buckets`: the bounds of a rule that sets a `scale` and no buckets.
    private let defaultBuckets: [Double]
    /// `histograms.*` in force: the native histograms of a rule that sets no option of its own.
    private let native: NativeHistogramOptions?
    /// `histograms.*` as configured, on or off: what a rule's factor or bucket cap starts from.
    private let nativeBase: NativeHistogramOptions

    public init(
        defaultBuckets: [Double] = HistogramBuckets.defaultBuckets, native: NativeHistogramOptions? = nil,
        nativeBase: NativeHistogramOptions? = nil
    ) {
        self.defaultBuckets = defaultBuckets
        self.native = native
        self.nativeBase = nativeBase ?? native ?? NativeHistogramOptions()
    }

    /// The slots of `rules` (a file's, in order), taken now for identities not seen before.
    /// A new slot holds its rule's options at once (no series refers to it yet); a known one
    /// keeps the options in force until `putInForce`.
    /// - Returns: `nil` when the rules would take more than 65,536 slots since start.
    func slots(for rules: [MappingRule]) -> [UInt16]? {
        state.withLock { s in
            // Refused whole, before taking any: a refused reload leaves no slots behind.
            let new = Set(rules.map(\.identity)).filter { s.slots[$0] == nil }.count
            guard s.list.count + new <= Int(UInt16.max) + 1 else { return nil }
            var numbers: [UInt16] = []
            for rule in rules {
                let identity = rule.identity
                if let slot = s.slots[identity] {
                    numbers.append(slot)
                    continue
                }
                let slot = UInt16(s.list.count)
                s.slots[identity] = slot
                s.list.append(rule.options)
                s.bounds.append(bounds(of: rule.options, replacing: nil))
                numbers.append(slot)
            }
            return numbers
        }
    }

    /// Puts the options of `rules` in force in their `slots` (from `slots(for:)`): a reload
    /// that succeeded. When a file holds one identity twice, the first rule's options win,
    /// as only the first can match.
    func putInForce(_ rules: [MappingRule], slots: [UInt16]) {
        state.withLock { s in
            var done = Set<UInt16>()
            for (rule, slot) in zip(rules, slots) where done.insert(slot).inserted {
                s.list[Int(slot)] = rule.options
                s.bounds[Int(slot)] = bounds(of: rule.options, replacing: s.bounds[Int(slot)])
            }
        }
    }

    /// Own bounds when the options set buckets, a scale (a scaled value is bucketed after
    /// scaling, as statsd_exporter observes it) or native histogram options; the same object
    /// as `current` when they are equal, so that nothing downstream sees a change.
    private func bounds(of options: MappingOptions, replacing current: BucketBounds?) -> BucketBounds? {
        let scale = options.scale ?? 1
        let ownNative = options.nativeBucketFactor != nil || options.nativeMaxBuckets != nil
        guard options.buckets != nil || scale != 1 || ownNative else { return nil }
        let bounds = BucketBounds(options.buckets ?? defaultBuckets, valueScale: scale, native: native(of: options))
        if let current, current == bounds { return current }
        return bounds
    }

    /// The native histograms of a rule's series (statsd_exporter's `histogram_options`): its
    /// factor picks the schema and turns them on (or off, at 1 or less), its cap replaces
    /// `histograms.native_max_buckets`; unset, `histograms.*` decides.
    private func native(of options: MappingOptions) -> NativeHistogramOptions? {
        var result: NativeHistogramOptions
        if let factor = options.nativeBucketFactor {
            guard let schema = ExponentialHistogram.schema(forBucketFactor: factor) else { return nil }
            result = native ?? nativeBase
            result.schema = schema
        } else {
            guard let native else { return nil }
            result = native
        }
        if let cap = options.nativeMaxBuckets, cap > 0 { result.maxBuckets = cap }
        return result
    }

    /// The histogram bounds of slot `id`, when its options set buckets or a scale.
    func bounds(_ id: UInt16) -> BucketBounds? {
        state.withLock { s in Int(id) < s.bounds.count ? s.bounds[Int(id)] : nil }
    }

    /// Each slot's `ttl` (`nil`: the default TTL).
    func ttls() -> [Int64?] { state.withLock { $0.list.map(\.ttlMillis) } }

    /// Every slot's options in force (a reader of many series takes this once).
    func snapshot() -> [MappingOptions] { state.withLock { $0.list } }
}
