/// Every distinct `MappingOptions` the loaded mapping files have used, numbered for good: a
/// mapped series' key carries its rule's number (`MetricKey.mappingOptions`), so the shards
/// (buckets, ttl) and the Prometheus sink (name, summary, scale, help) find its options, also
/// after a reload replaced the rule. Append-only and deduplicated, so reloading one file again
/// and again adds nothing; at most 65,536 distinct option sets (a reload that would pass that
/// is refused, and the old rules stay).
public final class MappingOptionsRegistry: Sendable {
    private struct State {
        var ids: [MappingOptions: UInt16] = [:]
        var list: [MappingOptions] = []
        var bounds: [BucketBounds?] = []
    }

    private let state = PthreadLock(State())
    /// `sinks.prometheus.buckets`: the bounds of a rule that sets a `scale` and no buckets.
    private let defaultBuckets: [Double]

    public init(defaultBuckets: [Double] = HistogramBuckets.defaultBuckets) { self.defaultBuckets = defaultBuckets }

    /// The number of `options`, given now if they are new.
    /// - Returns: `nil` when 65,536 option sets are registered already.
    func number(of options: MappingOptions) -> UInt16? {
        state.withLock { s in
            if let id = s.ids[options] { return id }
            guard s.list.count <= Int(UInt16.max) else { return nil }
            let id = UInt16(s.list.count)
            s.ids[options] = id
            s.list.append(options)
            // Own bounds when the rule sets buckets or a scale: a scaled value is bucketed after
            // scaling, as statsd_exporter observes it.
            let scale = options.scale ?? 1
            s.bounds.append(
                options.buckets != nil || scale != 1 ? BucketBounds(options.buckets ?? defaultBuckets, valueScale: scale) : nil)
            return id
        }
    }

    /// The histogram bounds of options `id`, when they set buckets or a scale.
    func bounds(_ id: UInt16) -> BucketBounds? {
        state.withLock { s in Int(id) < s.bounds.count ? s.bounds[Int(id)] : nil }
    }

    /// Each option set's `ttl`, by number (`nil`: the default TTL).
    func ttls() -> [Int64?] { state.withLock { $0.list.map(\.ttlMillis) } }

    /// Every option set so far, by number (a reader of many series takes this once).
    func snapshot() -> [MappingOptions] { state.withLock { $0.list } }
}
