import Synchronization

/// Configuration of the Prometheus sink (`sinks.prometheus`).
public struct PrometheusConfiguration: Sendable {
    /// Prepended to every statsd family name (`prefix`).
    public var prefix: String = ""
    /// Histogram buckets (`buckets`, `bucket_overrides`); also used by the aggregation stage.
    public var buckets = HistogramBuckets()

    public init(prefix: String = "", buckets: HistogramBuckets = HistogramBuckets()) {
        self.prefix = prefix
        self.buckets = buckets
    }
}

/// The statsd series rendered once per flush: immutable, shared by every scrape.
public final class PrometheusPage: Sendable {
    /// The exposition text.
    public let body: [UInt8]
    private let compressed = Mutex<[UInt8]?>(nil)

    init(body: [UInt8]) { self.body = body }

    /// The body gzipped, compressed at most once per page.
    public var gzipped: [UInt8] {
        compressed.withLock { cached in
            if let cached { return cached }
            let bytes = Gzip.compress(body)
            cached = bytes
            return bytes
        }
    }
}

/// Folds each batch into the cumulative state and publishes a new page.
/// A scrape reads the last published page: it takes no shard lock and never waits for a flush.
public final class PrometheusSink: Sink {
    public let name = "prometheus"
    /// The cumulative state (shared with the remote-write sink).
    public let state: CumulativeState
    private let current = Mutex(PrometheusPage(body: []))

    /// - Parameters:
    ///   - reservedNames: family names the agent's own metrics use.
    public init(configuration: PrometheusConfiguration, metrics: SelfMetrics, reservedNames: [String]) {
        state = CumulativeState(prefix: configuration.prefix, reservedNames: reservedNames, metrics: metrics)
    }

    public func emit(_ batch: FlushBatch) throws {
        // Folds the batch in unless another sink sharing the state already did; then renders.
        state.apply(batch)
        let page = PrometheusPage(body: PrometheusTextEncoder.render(state))
        current.withLock { $0 = page }
    }

    /// The last published page.
    public var page: PrometheusPage { current.withLock { $0 } }
}
