import Foundation
import Synchronization

/// Pushes every flush to a remote store (SPEC section 5): encodes the batch in
/// the configured format, queues the requests (spooled to disk when configured),
/// and sends them strictly oldest first from its own thread, retrying failures
/// with exponential backoff and jitter. A slow or dead target delays only this sink.
public final class HTTPPushSink: Sink {
    public let name: String
    private let configuration: HTTPPushConfiguration
    private let target: PushTarget
    /// Where requests of another format than the push's go: a `datadog` push's events and
    /// service checks, to the APIs next to its series URL.
    private let targets: [PushFormat: PushTarget]
    /// The headers of a request, by the format it was encoded in: a spooled request keeps
    /// its format's headers after the push's `format` changed.
    private let headers: [PushFormat: [(String, String)]]
    private let queue: PushQueue
    private let client: any PushTransport
    private let state: CumulativeState?
    private let metrics: PushMetrics
    private let logger: Logger
    private let stopping = Atomic<Bool>(false)
    private let stopAt = Atomic<UInt64>(0)  // bit pattern of the monotonic shutdown deadline
    private let lastCumulative = PthreadLock<UInt64>(0)
    private let sender = PthreadLock<WorkerThread?>(nil)
    private let rejectionLog = RateLimiter(period: 10)
    private let failureLog = RateLimiter(period: 10)
    private let partialLog = RateLimiter(period: 10)
    private let queueFullLog = RateLimiter(period: 10)
    private let tooLargeLog = RateLimiter(period: 10)
    /// `external_labels`, sorted by name.
    private let externalLabels: [(name: String, value: String)]
    /// OTLP's resource attributes.
    private let resource: OTLPResource

    /// - Parameters:
    ///   - state: the Prometheus sink's cumulative state (read by `remote_write` and cumulative `otlp`).
    /// - Throws: `ConfigError` for a bad URL, `SystemError` when the spool cannot be opened.
    public init(configuration: HTTPPushConfiguration, state: CumulativeState?, metrics: PushMetrics, logger: Logger) throws {
        let target = try PushTarget(parsing: configuration.url)
        self.target = target
        targets = [
            .datadogEvents: try PushTarget(parsing: Self.sibling(configuration.url, "events")),
            .datadogCheckRun: try PushTarget(parsing: Self.sibling(configuration.url, "check_run")),
        ]
        client = target.scheme == "http" ? PlainHTTPClient() : PushHTTPClient()
        self.configuration = configuration
        name = configuration.name.isEmpty ? HTTPPushConfiguration.defaultName(position: 0) : configuration.name
        externalLabels =
            configuration.resolvedExternalLabels
            ?? configuration.externalLabels.sorted { $0.key < $1.key }
            .map { (name: $0.key, value: $0.value) }
        self.state = state
        self.metrics = metrics
        self.logger = logger
        let extra = configuration.resolvedHeaders ?? configuration.headers
        headers = Dictionary(
            uniqueKeysWithValues: PushFormat.allCases.map {
                ($0, $0.requestHeaders(authorization: target.authorization, configured: extra))
            })
        queue = try PushQueue(
            spoolDirectory: configuration.spoolDirectory.isEmpty ? nil : configuration.spoolDirectory,
            maxBytes: configuration.maxSpoolBytes, target: target.identity, logger: logger)
        if queue.trimmedAtStart > 0 { metrics.dropped(reason: "queue_full", queue.trimmedAtStart) }
        if queue.retargetedAtStart > 0 { metrics.dropped(reason: "target_changed", queue.retargetedAtStart) }
        metrics.queueBytes.store(UInt64(queue.queuedBytes))
        resource = OTLPResource(serviceName: configuration.serviceName)
        logger.info(
            "push configured",
            metadata: [("url", target.redacted), ("format", configuration.format.rawValue)])
        let thread = WorkerThread(name: "push-sender") { [self] in sendLoop() }
        sender.withLock { $0 = thread }
    }

    /// `url` with the last segment of its path replaced by `segment`, its query kept:
    /// `https://api.datadoghq.com/api/v1/series?api_key=k` gives `.../api/v1/events?api_key=k`.
    static func sibling(_ url: String, _ segment: String) -> String {
        let scheme = url.range(of: "://")?.upperBound ?? url.startIndex
        let end = url[scheme...].firstIndex { $0 == "?" || $0 == "#" } ?? url.endIndex
        guard let slash = url[scheme..<end].lastIndex(of: "/") else { return url[..<end] + "/" + segment + url[end...] }
        return url[...slash] + segment + url[end...]
    }

    public func emit(_ batch: FlushBatch) throws {
        let extra = PushEncoders.ExternalLabels(externalLabels)
        let size = configuration.batchSize
        let requests: [PushRequest]
        switch configuration.format {
        case .json:
            requests = batch.isEmpty ? [] : PushEncoders.json(batch, batchSize: size, labels: extra)
        case .datadog:
            requests = batch.isEmpty ? [] : PushEncoders.datadog(batch, batchSize: size, labels: extra)
        case .datadogEvents, .datadogCheckRun:
            requests = []  // not configurable
        case .influx:
            requests = batch.isEmpty ? [] : InfluxEncoder.requests(batch, batchSize: size, labels: extra)
        case .remoteWrite:
            requests =
                cumulativeRequests(batch) { state in
                    let (requests, _, sequence) = RemoteWriteEncoder.requests(from: state, labels: extra, batchSize: size)
                    return (requests, sequence)
                } + gaugePointRequests(batch, labels: extra, batchSize: size)
        case .otlp:
            if configuration.temporality == .delta {
                requests =
                    batch.isEmpty
                    ? [] : OTLPDeltaEncoder.requests(batch, resource: resource, batchSize: size, labels: extra)
            } else {
                requests =
                    cumulativeRequests(batch) { [resource] state in
                        OTLPCumulativeEncoder.requests(state, resource: resource, batchSize: size, labels: extra)
                    } + OTLPDeltaEncoder.gaugePointRequests(batch, resource: resource, batchSize: size, labels: extra)
            }
        }
        for request in requests {
            let dropped = queue.append(request)
            if dropped.queueFull > 0 { noteQueueFull(dropped.queueFull) }
            if dropped.tooLarge > 0 {
                metrics.dropped(reason: "too_large", dropped.tooLarge)
                if let suppressed = tooLargeLog.admit() {
                    logger.error(
                        "push request larger than max_spool_bytes dropped; the queue is kept (lower batch_size)",
                        metadata: [
                            ("bytes", "\(request.body.count)"), ("max_spool_bytes", "\(configuration.maxSpoolBytes)"),
                            ("series", "\(dropped.tooLarge)"), ("suppressed", "\(suppressed)"),
                        ])
                }
            }
        }
        metrics.queueBytes.store(UInt64(queue.queuedBytes))
    }

    private func noteQueueFull(_ series: Int) {
        metrics.dropped(reason: "queue_full", series)
        if let suppressed = queueFullLog.admit() {
            logger.error(
                "push queue full (max_spool_bytes): oldest series dropped",
                metadata: [("series", "\(series)"), ("suppressed", "\(suppressed)")])
        }
    }

    /// Remote write's timestamped gauge samples, each at its own time (a counter's are in its total).
    private func gaugePointRequests(
        _ batch: FlushBatch, labels: PushEncoders.ExternalLabels, batchSize: Int
    ) -> [PushRequest] {
        guard let state, batch.points.contains(where: { $0.key.type == .gauge }) else { return [] }
        let (requests, future) = RemoteWriteEncoder.gaugePointRequests(
            batch.points, naming: state, labels: labels, batchSize: batchSize, notAfter: batch.timestamp)
        if future > 0 { metrics.dropped(reason: "future_point", future) }
        return requests
    }

    /// The shared state as of the newest batch applied, once per applied batch.
    private func cumulativeRequests(
        _ batch: FlushBatch, _ encode: (CumulativeState) -> (requests: [PushRequest], sequence: UInt64)
    ) -> [PushRequest] {
        guard let state else { return [] }
        state.apply(batch)  // no-op when the Prometheus sink already folded it in
        let (requests, sequence) = encode(state)
        // The Prometheus sink may have applied later batches already; their values are
        // sent once, stamped with their own flush time, and the older batches skipped.
        let fresh = lastCumulative.withLock { last in
            guard sequence == 0 || sequence > last else { return false }
            last = sequence
            return true
        }
        return fresh ? requests : []
    }

    /// Keeps sending for at most the shutdown grace, then leaves the rest in the spool.
    public func shutdown(until agentDeadline: Double) {
        let deadline = min(agentDeadline, WallClock.monotonicSeconds() + Double(configuration.shutdownGraceMillis) / 1000)
        stopAt.store(deadline.bitPattern, ordering: .releasing)
        stopping.store(true, ordering: .releasing)
        queue.close()
        sender.withLock { thread in
            thread?.join()
            thread = nil
        }
        let left = queue.count
        if left > 0 {
            let lost = queue.unspooledSeries
            if lost > 0 { metrics.dropped(reason: "shutdown", lost) }
            logger.warning(
                lost > 0
                    ? "push target unreachable at shutdown: unsent series held in memory are lost (no spool_dir, or it could not be written)"
                    : "push target unreachable at shutdown: unsent requests stay in the spool",
                metadata: [("requests", "\(left)"), ("series_lost", "\(lost)")])
        }
    }

    private var deadline: Double { Double(bitPattern: stopAt.load(ordering: .acquiring)) }

    private func sendLoop() {
        var backoff = Double(configuration.initialBackoffMillis) / 1000
        while true {
            let stopping = self.stopping.load(ordering: .acquiring)
            if stopping && WallClock.monotonicSeconds() >= deadline { return }
            guard
                let (id, request) = queue.waitForHead(
                    until: stopping ? deadline : WallClock.monotonicSeconds() + 1,
                    unreadable: { [metrics] in metrics.dropped(reason: "spool_unreadable", $0) })
            else {
                if stopping && queue.count == 0 { return }
                continue
            }
            var timeout = Double(configuration.timeoutMillis) / 1000
            if stopping { timeout = max(0.05, min(timeout, deadline - WallClock.monotonicSeconds())) }
            // Its own format's headers: a spooled request keeps the format it was encoded in.
            let requestHeaders = headers[request.format] ?? []
            let outcome = client.post(
                targets[request.format] ?? target, body: request.body, headers: requestHeaders, timeout: timeout
            ) { [self] in
                self.stopping.load(ordering: .acquiring) ? deadline : .infinity
            }
            if outcome.isSuccess {
                if request.format == .otlp, case .response(_, _, _, _, let body) = outcome {
                    notePartialSuccess(body)
                }
                queue.removeHead(id)
                metrics.request(result: "success")
                metrics.seriesSent.add(UInt64(request.series))
                backoff = Double(configuration.initialBackoffMillis) / 1000
            } else if outcome.isRetryable {
                metrics.request(result: "retry")
                metrics.retries.add(1)
                let trimmed = queue.release(id)
                if trimmed > 0 { noteQueueFull(trimmed) }
                var wait = Double.random(in: backoff / 2...backoff)  // jitter
                if case .response(_, let retryAfter?, _, _, _) = outcome { wait = max(wait, min(retryAfter, 300)) }
                backoff = min(backoff * 2, Double(configuration.maxBackoffMillis) / 1000)
                if let suppressed = failureLog.admit() {
                    logger.warning(
                        "push failed; will retry",
                        metadata: [
                            ("outcome", describe(outcome)), ("retry_in_s", "\(wait)"),
                            ("suppressed", "\(suppressed)"),
                        ])
                }
                let until = WallClock.monotonicSeconds() + wait
                queue.sleep(until: stopping ? min(until, deadline) : until, wakeOnClose: !stopping)
                if !stopping, self.stopping.load(ordering: .acquiring) {
                    // Shutdown began during the backoff: keep the backoff, but not past the grace period.
                    queue.sleep(until: min(until, deadline), wakeOnClose: false)
                }
            } else {
                queue.removeHead(id)
                metrics.request(result: "rejected")
                metrics.dropped(reason: "rejected", request.series)
                if let suppressed = rejectionLog.admit() {
                    logger.error(
                        "push rejected by the target; request dropped",
                        metadata: [
                            ("outcome", describe(outcome)), ("series", "\(request.series)"),
                            ("suppressed", "\(suppressed)"),
                        ])
                }
            }
            metrics.queueBytes.store(UInt64(queue.queuedBytes))
        }
    }

    /// OTLP: a 2xx answer may still say that the receiver refused some data points.
    private func notePartialSuccess(_ body: [UInt8]) {
        guard let partial = OTLPPartialSuccess(decoding: body), partial.rejectedDataPoints > 0 || !partial.message.isEmpty
        else { return }
        if partial.rejectedDataPoints > 0 { metrics.dropped(reason: "partial_success", Int(partial.rejectedDataPoints)) }
        if let suppressed = partialLog.admit() {
            logger.warning(
                "OTLP receiver accepted the request partly",
                metadata: [
                    ("rejected_data_points", "\(partial.rejectedDataPoints)"), ("message", partial.message),
                    ("suppressed", "\(suppressed)"),
                ])
        }
    }

    private func describe(_ outcome: PushOutcome) -> String {
        switch outcome {
        case .failure(let reason): reason
        case .response(let status, _, _, let location?, _): "HTTP \(status) redirect to \(location) (not followed)"
        case .response(let status, _, let body, nil, _): "HTTP \(status): \(body)"
        }
    }
}

/// One push's own metrics (SPEC section 6), each labelled with its `sink` name; rendered on
/// `/metrics` for every push together.
public final class PushMetrics: Sendable {
    let sink: String
    let seriesSent = AtomicCounter()
    let retries = AtomicCounter()
    let queueBytes = AtomicCounter()
    /// The reasons a series is dropped, each shown from the start (at 0).
    static let dropReasons = [
        "future_point", "partial_success", "queue_full", "rejected", "shutdown", "spool_unreadable", "target_changed",
        "too_large",
    ]
    private let requests: PthreadLock<[String: UInt64]>
    private let drops: PthreadLock<[String: UInt64]>
    private let selfMetrics: SelfMetrics?

    /// - Parameters:
    ///   - sink: the push's name, its `sink` label.
    ///   - selfMetrics: where a failed request (retried or rejected) also counts as a sink
    ///     error, `stator_sink_errors_total{sink=...}`.
    public init(sink: String = "http_push", selfMetrics: SelfMetrics? = nil) {
        self.sink = sink
        self.selfMetrics = selfMetrics
        requests = PthreadLock(["rejected": 0, "retry": 0, "success": 0])
        drops = PthreadLock(Dictionary(uniqueKeysWithValues: Self.dropReasons.map { ($0, 0) }))
        selfMetrics?.registerLabeled(SelfMetrics.sinkErrors(sink))
    }

    func request(result: String) {
        requests.withLock { $0[result, default: 0] += 1 }
        if result != "success" { selfMetrics?.addLabeled(SelfMetrics.sinkErrors(sink)) }
    }

    func dropped(reason: String, _ series: Int) {
        drops.withLock { $0[reason, default: 0] += UInt64(series) }
    }

    /// Series dropped for `reason` so far.
    func droppedSeries(reason: String) -> UInt64 { drops.withLock { $0[reason] ?? 0 } }

    /// The families of every push, in the text format.
    static func render(_ pushes: [PushMetrics]) -> String {
        guard !pushes.isEmpty else { return "" }
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ samples: (PushMetrics) -> [(String, UInt64)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for push in pushes {
                for (labels, value) in samples(push) { out += "\(name){\(labels)} \(value)\n" }
            }
        }
        func sink(_ p: PushMetrics) -> String { "sink=\"\(p.sink)\"" }
        family("stator_push_requests_total", "counter", "Push requests by result (success, retry, rejected) and push.") { p in
            p.requests.withLock { $0 }.sorted { $0.key < $1.key }.map { ("result=\"\($0.key)\",\(sink(p))", $0.value) }
        }
        family("stator_push_series_total", "counter", "Series delivered, by push.") { [(sink($0), $0.seriesSent.value)] }
        family("stator_push_retries_total", "counter", "Push attempts that failed and will be retried, by push.") {
            [(sink($0), $0.retries.value)]
        }
        family("stator_push_dropped_series_total", "counter", "Series a push gave up on, by reason and push.") { p in
            p.drops.withLock { $0 }.sorted { $0.key < $1.key }.map { ("reason=\"\($0.key)\",\(sink(p))", $0.value) }
        }
        family("stator_push_queue_bytes", "gauge", "Bytes of push requests waiting (memory or spool), by push.") {
            [(sink($0), $0.queueBytes.value)]
        }
        return out
    }
}
