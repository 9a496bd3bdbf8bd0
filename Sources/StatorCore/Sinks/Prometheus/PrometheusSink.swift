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
/// A small page keeps its text and is gzipped on the first request that asks for
/// gzip (once per page); a large one is rendered straight into gzip and inflated for
/// the rare plain-text client.
public final class PrometheusPage: Sendable {
    private let plain: [UInt8]?
    private let compressed: PthreadLock<[UInt8]?>
    /// Length of the exposition text.
    let textLength: Int
    /// Plain text above this size is not kept (a million series is over 100 MB of text).
    static let keepPlainUpTo = 8 << 20

    init(gzipped: [UInt8]?, plain: [UInt8]?, textLength: Int) {
        self.plain = plain
        self.textLength = textLength
        compressed = PthreadLock(gzipped)
    }

    /// An empty page.
    static let empty = PrometheusPage(gzipped: nil, plain: [], textLength: 0)

    /// The exposition text gzipped (one member).
    public var gzipped: [UInt8] {
        compressed.withLock { cached in
            if let cached { return cached }
            let bytes = Gzip.compress(plain ?? [])
            cached = bytes
            return bytes
        }
    }

    /// The exposition text.
    public var body: [UInt8] { plain ?? Gzip.decompress(gzipped) ?? [] }

    /// The exposition text of a large page (kept gzipped only), inflated as it is written;
    /// `nil` when the text is kept (use `body`).
    func plainStream() -> (any HTTPBodyStream)? {
        guard plain == nil else { return nil }
        return GzipInflatingStream(gzipped)
    }

    /// Whether the page holds no series.
    public var isEmpty: Bool { plain?.isEmpty ?? false }
}

/// Folds each batch into the cumulative state and publishes a new page.
/// A scrape reads the last published page: it takes no shard lock and never waits for a flush.
///
/// The page is rendered after a flush only while someone reads it: when nobody has asked
/// for `/metrics` in the last `eagerWindowSeconds` (an agent whose only reader is the
/// JSON file, or before the first scrape), a flush only folds its batch in, and the next
/// request renders the page itself, once, from the same state.
public final class PrometheusSink: Sink {
    public let name = "prometheus"
    /// The cumulative state (shared with the remote-write sink).
    public let state: CumulativeState
    /// The last published page, and whether the state has moved on since it was rendered.
    private let current = PthreadLock((page: PrometheusPage.empty, stale: false))
    /// Held while folding in and rendering, so that a page never replaces a newer one.
    private let rendering = PthreadLock(())
    /// When the page was last asked for (`WallClock.monotonicSeconds()` bits; 0: never).
    private let lastAsked = Atomic<UInt64>(0)
    private let renderCount = Atomic<Int>(0)
    /// How long after a request flushes keep rendering the page ahead of the next one.
    static let eagerWindowSeconds = 300.0

    private let logger: Logger?

    /// - Parameters:
    ///   - reservedNames: family names the agent's own metrics use.
    ///   - mappingOptions: the options of mapped series, when `mapping_config` is set.
    public init(
        configuration: PrometheusConfiguration, metrics: SelfMetrics, reservedNames: [String], logger: Logger? = nil,
        mappingOptions: MappingOptionsRegistry? = nil
    ) {
        state = CumulativeState(
            prefix: configuration.prefix, reservedNames: reservedNames, metrics: metrics, mappingOptions: mappingOptions)
        self.logger = logger
    }

    public func emit(_ batch: FlushBatch) throws {
        rendering.withLock { _ in
            // Folds the batch in unless another sink sharing the state already did.
            state.apply(batch)
            let asked = Double(bitPattern: lastAsked.load(ordering: .relaxed))
            if asked > 0, WallClock.monotonicSeconds() - asked < Self.eagerWindowSeconds {
                publish()
            } else {
                current.withLock { $0.stale = true }
            }
        }
    }

    /// Renders the state and publishes the page (`rendering` held).
    private func publish() {
        let started = WallClock.monotonicSeconds()
        // Render in chunks; once the text outgrows what is kept plain, the rest goes straight
        // into gzip, so the full text of a large page is never held.
        var textBytes = 0
        var writer: GzipWriter?
        var plain: [UInt8]? = []
        PrometheusTextEncoder.render(state) { chunk in
            textBytes += chunk.count
            if let writer {
                writer.write(chunk)
                return
            }
            plain?.append(contentsOf: chunk)
            if (plain?.count ?? 0) > PrometheusPage.keepPlainUpTo, let text = plain {
                let w = GzipWriter(level: 1)
                w.write(text)
                writer = w
                plain = nil
            }
        }
        let page = PrometheusPage(gzipped: writer?.finish(), plain: plain, textLength: textBytes)
        current.withLock { $0 = (page, false) }
        renderCount.wrappingAdd(1, ordering: .relaxed)
        logger?.debug(
            "page rendered",
            metadata: [
                ("text_bytes", "\(textBytes)"), ("gzip_bytes", "\(page.gzipped.count)"),
                ("duration_s", "\(WallClock.monotonicSeconds() - started)"),
            ])
    }

    /// The page as of the last flush, rendered now if no flush rendered it (this counts as
    /// a request: the flushes of the next `eagerWindowSeconds` render ahead again).
    public var page: PrometheusPage {
        lastAsked.store(WallClock.monotonicSeconds().bitPattern, ordering: .relaxed)
        if let fresh = current.withLock({ $0.stale ? nil : $0.page }) { return fresh }
        rendering.withLock { _ in
            if current.withLock({ $0.stale }) { publish() }
        }
        return current.withLock { $0.page }
    }

    /// Pages rendered so far (for tests of when rendering happens).
    var renders: Int { renderCount.load(ordering: .relaxed) }
}
