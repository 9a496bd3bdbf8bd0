import Foundation
import Synchronization

/// Configuration of the HTTP push sink (`sinks.http_push`).
public struct HTTPPushConfiguration: Sendable {
    /// Where to POST; empty disables the sink (`url`).
    public var url: String = ""
    /// Body format (`format`).
    public var format: PushFormat = .json
    /// Series per request at most (`batch_size`).
    public var batchSize: Int = 1000
    /// Extra request headers as configured; `${VAR}` is replaced at start-up (`headers`).
    public var headers: [String: String] = [:]
    /// `headers` with every `${VAR}` replaced (see `resolveHeaders(environment:)`).
    public var resolvedHeaders: [String: String]?
    /// Time allowed per request (`timeout`).
    public var timeoutMillis: Int64 = 5000
    /// Directory for the on-disk spool; empty keeps the queue in memory (`spool_dir`).
    public var spoolDirectory: String = ""
    /// Bound on queued bytes, memory or disk (`max_spool_bytes`).
    public var maxSpoolBytes: Int64 = 256 << 20
    /// First retry delay; doubled up to `maxBackoffMillis`, with jitter.
    public var initialBackoffMillis: Int64 = 250
    public var maxBackoffMillis: Int64 = 30_000
    /// How long the push keeps trying at shutdown.
    public var shutdownGraceMillis: Int64 = 5000

    public init() {}

    /// Replaces each `${VAR}` in header values with the environment variable's value, once.
    /// One trailing newline (`\n` or `\r\n`) of the result is trimmed: secrets mounted from
    /// files end with one. Any other CR, LF or NUL would split or end the header on the wire.
    /// - Throws: `ConfigError` naming the header and variable when a variable is not set, or
    ///   naming the header (never its value, a secret) when the result holds CR, LF or NUL.
    public mutating func resolveHeaders(environment: [String: String]) throws(ConfigError) {
        var resolved: [String: String] = [:]
        for (name, template) in headers {
            var value = ""
            var rest = Substring(template)
            while let open = rest.range(of: "${") {
                value += rest[..<open.lowerBound]
                guard let close = rest[open.upperBound...].firstIndex(of: "}") else {
                    throw ConfigError("sinks.http_push.headers.\(name): unterminated ${ in \"\(template)\"")
                }
                let variable = String(rest[open.upperBound..<close])
                guard let replacement = environment[variable] else {
                    throw ConfigError("sinks.http_push.headers.\(name): environment variable \(variable) is not set")
                }
                value += replacement
                rest = rest[rest.index(after: close)...]
            }
            value += rest
            if value.unicodeScalars.last == "\n" {
                value.unicodeScalars.removeLast()
                if value.unicodeScalars.last == "\r" { value.unicodeScalars.removeLast() }
            }
            guard !value.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" }) else {
                throw ConfigError(
                    "sinks.http_push.headers.\(name): the value holds a CR, LF or NUL byte after ${VAR} expansion")
            }
            resolved[name] = value
        }
        resolvedHeaders = resolved
    }
}

/// Pushes every flush to a remote store (SPEC section 5): encodes the batch in
/// the configured format, queues the requests (spooled to disk when configured),
/// and sends them strictly oldest first from its own thread, retrying failures
/// with exponential backoff and jitter. A slow or dead target delays only this sink.
public final class HTTPPushSink: Sink {
    public let name = "http_push"
    private let configuration: HTTPPushConfiguration
    private let url: URL
    private let headers: [(String, String)]
    private let queue: PushQueue
    private let client = PushHTTPClient()
    private let state: CumulativeState?
    private let metrics: PushMetrics
    private let logger: Logger
    private let stopping = Atomic<Bool>(false)
    private let stopAt = Atomic<UInt64>(0)  // bit pattern of the monotonic shutdown deadline
    private let lastRemoteWrite = PthreadLock<UInt64>(0)
    private let sender = PthreadLock<WorkerThread?>(nil)
    private let rejectionLog = RateLimiter(period: 10)
    private let failureLog = RateLimiter(period: 10)

    /// - Parameters:
    ///   - state: the Prometheus sink's cumulative state (needed by `remote_write`).
    /// - Throws: `ConfigError` for a bad URL, `SystemError` when the spool cannot be opened.
    public init(configuration: HTTPPushConfiguration, state: CumulativeState?, metrics: PushMetrics, logger: Logger) throws {
        guard let url = URL(string: configuration.url), url.scheme == "http" || url.scheme == "https", url.host != nil else {
            throw ConfigError("sinks.http_push.url must be an http:// or https:// URL, got \"\(configuration.url)\"")
        }
        self.url = url
        self.configuration = configuration
        self.state = state
        self.metrics = metrics
        self.logger = logger
        let extra = configuration.resolvedHeaders ?? configuration.headers
        headers = configuration.format.headers + extra.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        queue = try PushQueue(
            spoolDirectory: configuration.spoolDirectory.isEmpty ? nil : configuration.spoolDirectory,
            maxBytes: configuration.maxSpoolBytes, logger: logger)
        if queue.trimmedAtStart > 0 { metrics.dropped(reason: "queue_full", queue.trimmedAtStart) }
        metrics.queueBytes.store(UInt64(queue.queuedBytes))
        let thread = WorkerThread(name: "push-sender") { [self] in sendLoop() }
        sender.withLock { $0 = thread }
    }

    public func emit(_ batch: FlushBatch) throws {
        let requests: [PushRequest]
        switch configuration.format {
        case .json:
            requests = batch.seriesCount == 0 ? [] : PushEncoders.json(batch, batchSize: configuration.batchSize)
        case .datadog:
            requests = batch.seriesCount == 0 ? [] : PushEncoders.datadog(batch, batchSize: configuration.batchSize)
        case .remoteWrite:
            requests = remoteWriteRequests(batch)
        }
        for request in requests {
            let dropped = queue.append(request)
            if dropped > 0 {
                metrics.dropped(reason: "queue_full", dropped)
                logger.error(
                    "push queue full (max_spool_bytes): oldest series dropped",
                    metadata: [("series", "\(dropped)")])
            }
        }
        metrics.queueBytes.store(UInt64(queue.queuedBytes))
    }

    /// The shared state as of the newest batch applied, once per applied batch.
    private func remoteWriteRequests(_ batch: FlushBatch) -> [PushRequest] {
        guard let state else { return [] }
        state.apply(batch)  // no-op when the Prometheus sink already folded it in
        let (series, timestamp, sequence) = RemoteWriteEncoder.series(from: state)
        // The Prometheus sink may have applied later batches already; their values are
        // sent once, stamped with their own flush time, and the older batches skipped.
        let fresh = lastRemoteWrite.withLock { last in
            guard sequence == 0 || sequence > last else { return false }
            last = sequence
            return true
        }
        guard fresh, !series.isEmpty else { return [] }
        return PushEncoders.remoteWrite(series, timestamp: timestamp, batchSize: configuration.batchSize)
    }

    /// Keeps sending for at most the shutdown grace, then leaves the rest in the spool.
    public func shutdown() {
        let deadline = WallClock.monotonicSeconds() + Double(configuration.shutdownGraceMillis) / 1000
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
            let outcome = client.post(url, body: request.body, headers: headers, timeout: timeout) { [self] in
                self.stopping.load(ordering: .acquiring) ? deadline : .infinity
            }
            if outcome.isSuccess {
                queue.removeHead(id)
                metrics.request(result: "success")
                metrics.seriesSent.add(UInt64(request.series))
                backoff = Double(configuration.initialBackoffMillis) / 1000
            } else if outcome.isRetryable {
                metrics.request(result: "retry")
                metrics.retries.add(1)
                var wait = Double.random(in: backoff / 2...backoff)  // jitter
                if case .response(_, let retryAfter?, _, _) = outcome { wait = max(wait, min(retryAfter, 300)) }
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

    private func describe(_ outcome: PushOutcome) -> String {
        switch outcome {
        case .failure(let reason): reason
        case .response(let status, _, _, let location?): "HTTP \(status) redirect to \(location) (not followed)"
        case .response(let status, _, let body, nil): "HTTP \(status): \(body)"
        }
    }
}

/// The push sink's own metrics (SPEC section 6), rendered on `/metrics` when push is enabled.
public final class PushMetrics: Sendable {
    let seriesSent = AtomicCounter()
    let retries = AtomicCounter()
    let queueBytes = AtomicCounter()
    private let labeled = PthreadLock<[String: UInt64]>([
        "stator_push_requests_total{result=\"success\"}": 0, "stator_push_requests_total{result=\"retry\"}": 0,
        "stator_push_requests_total{result=\"rejected\"}": 0,
        "stator_push_dropped_series_total{reason=\"rejected\"}": 0,
        "stator_push_dropped_series_total{reason=\"queue_full\"}": 0,
        "stator_push_dropped_series_total{reason=\"shutdown\"}": 0,
    ])

    private let selfMetrics: SelfMetrics?

    /// - Parameter selfMetrics: where a failed request (retried or rejected) also counts as a
    ///   sink error, `stator_sink_errors_total{sink="http_push"}`.
    public init(selfMetrics: SelfMetrics? = nil) {
        self.selfMetrics = selfMetrics
        selfMetrics?.registerLabeled(SelfMetrics.sinkErrors("http_push"))
    }

    func request(result: String) {
        labeled.withLock { $0["stator_push_requests_total{result=\"\(result)\"}", default: 0] += 1 }
        if result != "success" { selfMetrics?.addLabeled(SelfMetrics.sinkErrors("http_push")) }
    }

    func dropped(reason: String, _ series: Int) {
        labeled.withLock { $0["stator_push_dropped_series_total{reason=\"\(reason)\"}", default: 0] += UInt64(series) }
    }

    /// The families in the text format.
    func render() -> String {
        let values = labeled.withLock { $0 }
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) { out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n" }
        family("stator_push_requests_total", "counter", "Push requests by result (success, retry, rejected).")
        for (k, v) in values.sorted(by: { $0.key < $1.key }) where k.hasPrefix("stator_push_requests_total") {
            out += "\(k) \(v)\n"
        }
        family("stator_push_series_total", "counter", "Series delivered by the push sink.")
        out += "stator_push_series_total \(seriesSent.value)\n"
        family("stator_push_retries_total", "counter", "Push attempts that failed and will be retried.")
        out += "stator_push_retries_total \(retries.value)\n"
        family("stator_push_dropped_series_total", "counter", "Series the push sink gave up on, by reason.")
        for (k, v) in values.sorted(by: { $0.key < $1.key }) where k.hasPrefix("stator_push_dropped_series_total") {
            out += "\(k) \(v)\n"
        }
        family("stator_push_queue_bytes", "gauge", "Bytes of push requests waiting (memory or spool).")
        out += "stator_push_queue_bytes \(queueBytes.value)\n"
        return out
    }
}
