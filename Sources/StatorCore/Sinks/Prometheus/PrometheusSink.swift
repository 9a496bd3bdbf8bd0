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

/// One rendering of the statsd series in one format: immutable, shared by every scrape.
/// A small body keeps its bytes and is gzipped on the first request that asks for gzip
/// (once per page); a large one is rendered straight into gzip and inflated for the rare
/// client that does not take gzip.
public final class PageBody: Sendable {
    private let plain: [UInt8]?
    private let compressed: PthreadLock<[UInt8]?>
    /// Length of the uncompressed bytes.
    let length: Int
    /// Bytes above this size are not kept plain (a million series is over 100 MB of text).
    static let keepPlainUpTo = 8 << 20

    init(gzipped: [UInt8]?, plain: [UInt8]?, length: Int) {
        self.plain = plain
        self.length = length
        compressed = PthreadLock(gzipped)
    }

    /// The bytes gzipped (one member).
    public var gzipped: [UInt8] {
        compressed.withLock { cached in
            if let cached { return cached }
            let bytes = Gzip.compress(plain ?? [])
            cached = bytes
            return bytes
        }
    }

    /// The bytes.
    public var body: [UInt8] { plain ?? Gzip.decompress(gzipped) ?? [] }

    /// The bytes of a large body (kept gzipped only), inflated as they are written; `nil`
    /// when they are kept (use `body`).
    func plainStream() -> (any HTTPBodyStream)? {
        guard plain == nil else { return nil }
        return GzipInflatingStream(gzipped)
    }

    /// Whether there are no bytes.
    public var isEmpty: Bool { plain?.isEmpty ?? false }

    /// Renders with `render`, which hands its output in chunks; once the bytes outgrow what
    /// is kept plain, the rest goes straight into gzip, so a large page is never held whole.
    static func rendering(_ render: ((_ chunk: [UInt8]) -> Void) -> Void) -> PageBody {
        var length = 0
        var writer: GzipWriter?
        var plain: [UInt8]? = []
        render { chunk in
            length += chunk.count
            if let writer {
                writer.write(chunk)
                return
            }
            plain?.append(contentsOf: chunk)
            if (plain?.count ?? 0) > keepPlainUpTo, let bytes = plain {
                let w = GzipWriter(level: 1)
                w.write(bytes)
                writer = w
                plain = nil
            }
        }
        return PageBody(gzipped: writer?.finish(), plain: plain, length: length)
    }
}

/// The statsd series rendered once per flush: the text page, and the protobuf page when
/// scrapers ask for it (SPEC section 13).
public final class PrometheusPage: Sendable {
    /// The text exposition format.
    public let text: PageBody
    /// Delimited `MetricFamily` messages; nil when nobody asked for them lately (see
    /// `PrometheusSink.page(_:)`).
    public let protobuf: PageBody?

    init(text: PageBody, protobuf: PageBody? = nil) {
        self.text = text
        self.protobuf = protobuf
    }

    /// An empty page.
    static let empty = PrometheusPage(text: PageBody(gzipped: nil, plain: [], length: 0), protobuf: nil)

    /// Plain text above this size is not kept.
    static var keepPlainUpTo: Int { PageBody.keepPlainUpTo }
    /// Length of the exposition text.
    var textLength: Int { text.length }
    /// The exposition text gzipped (one member).
    public var gzipped: [UInt8] { text.gzipped }
    /// The exposition text.
    public var body: [UInt8] { text.body }
    /// See `PageBody.plainStream()`.
    func plainStream() -> (any HTTPBodyStream)? { text.plainStream() }
    /// Whether the page holds no series.
    public var isEmpty: Bool { text.isEmpty }
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
    /// When the protobuf page was last asked for (the same clock).
    private let lastAskedProtobuf = Atomic<UInt64>(0)
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

    /// Renders the state and publishes the page (`rendering` held): the text page, and the
    /// protobuf page too while scrapers ask for it (within `eagerWindowSeconds`) or when
    /// `protobuf` says so.
    private func publish(protobuf: Bool = false) {
        let started = WallClock.monotonicSeconds()
        let text = PageBody.rendering { PrometheusTextEncoder.render(state, $0) }
        let asked = Double(bitPattern: lastAskedProtobuf.load(ordering: .relaxed))
        let wanted = protobuf || (asked > 0 && WallClock.monotonicSeconds() - asked < Self.eagerWindowSeconds)
        let encoded = wanted ? PageBody.rendering { PrometheusProtobufEncoder.render(state, $0) } : nil
        let page = PrometheusPage(text: text, protobuf: encoded)
        current.withLock { $0 = (page, false) }
        renderCount.wrappingAdd(1, ordering: .relaxed)
        logger?.debug(
            "page rendered",
            metadata: [
                ("text_bytes", "\(text.length)"), ("gzip_bytes", "\(page.gzipped.count)"),
                ("protobuf_bytes", "\(encoded?.length ?? 0)"), ("duration_s", "\(WallClock.monotonicSeconds() - started)"),
            ])
    }

    /// The page as of the last flush, rendered now if no flush rendered it (this counts as
    /// a request: the flushes of the next `eagerWindowSeconds` render ahead again).
    public var page: PrometheusPage { page(.text) }

    /// The page as of the last flush, with `format` rendered: a request for the protobuf page
    /// makes the flushes of the next `eagerWindowSeconds` render it too, and renders it now
    /// if the last flush did not.
    public func page(_ format: ExpositionFormat) -> PrometheusPage {
        let now = WallClock.monotonicSeconds().bitPattern
        lastAsked.store(now, ordering: .relaxed)
        let protobuf = format == .protobuf
        if protobuf { lastAskedProtobuf.store(now, ordering: .relaxed) }
        let ready = { (current: (page: PrometheusPage, stale: Bool)) in
            !current.stale && (!protobuf || current.page.protobuf != nil)
        }
        if let fresh = current.withLock({ ready($0) ? $0.page : nil }) { return fresh }
        rendering.withLock { _ in
            if !current.withLock({ ready($0) }) { publish(protobuf: protobuf) }
        }
        return current.withLock { $0.page }
    }

    /// Pages rendered so far (for tests of when rendering happens).
    var renders: Int { renderCount.load(ordering: .relaxed) }
}
