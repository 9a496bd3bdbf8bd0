import CStatorSys
import Glibc

/// Sends every flush to Graphite over plaintext TCP (SPEC section 10), as etsy statsd's
/// graphite backend does (`GraphiteEncoder`).
///
/// - One connection is kept and reused; when it fails it is made again, after a delay that
///   doubles from 250 ms to 30 s, with jitter. The host is resolved at every connect.
/// - Encoded flushes wait in a queue bounded by `max_queue_bytes`; past it the oldest are
///   dropped and their series counted in `stator_series_dropped_total{sink="graphite",
///   reason="queue_full"}`. A connection that fails mid-flush is resumed at the start of
///   the line it broke in, so no line reaches Graphite cut.
/// - Plaintext has no acknowledgement: lines the kernel took just before a connection
///   broke may be lost. What is left at shutdown after the grace period is counted
///   (`reason="shutdown"`).
/// - Sending runs on the sink's own thread; a slow or dead receiver never holds back `emit`.
public final class GraphiteSink: Sink, @unchecked Sendable {
    // SAFETY: `pending`, `pendingBytes`, `headSent`, `headBusy`, `closing` and `stopAt` are only touched with `lock`
    // held; `fd` only on the sender thread (and in `shutdown` after it has been joined).
    public let name = "graphite"
    private let configuration: GraphiteConfiguration
    private let metrics: SelfMetrics?
    private let logger: Logger
    private let lock = ConditionLock()
    private var pending: [(bytes: [UInt8], series: Int)] = []
    private var pendingBytes = 0
    /// Bytes of the oldest pending flush already sent (always at a line start between connections).
    private var headSent = 0
    /// Whether the sender is writing the oldest pending flush (it may not be dropped then).
    private var headBusy = false
    private var closing = false
    private var stopAt = Double.infinity
    private var fd: Int32 = -1
    private let failureLog = RateLimiter(period: 10)
    private let dropLog = RateLimiter(period: 10)
    private var sender: WorkerThread?

    public init(configuration: GraphiteConfiguration, metrics: SelfMetrics?, logger: Logger) {
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        metrics?.registerLabeled(SelfMetrics.sinkErrors("graphite"))
        metrics?.registerLabeled(SelfMetrics.seriesDropped("graphite", "queue_full"))
        metrics?.registerLabeled(SelfMetrics.seriesDropped("graphite", "shutdown"))
        sender = WorkerThread(name: "graphite") { [self] in sendLoop() }
    }

    public func emit(_ batch: FlushBatch) throws {
        guard batch.seriesCount > 0 || !batch.points.isEmpty else { return }
        let text = GraphiteEncoder.encode(batch, prefix: configuration.prefix, tags: configuration.tags)
        guard !text.isEmpty else { return }
        var dropped = 0
        lock.withLock {
            pending.append((text, batch.seriesCount + batch.points.count))
            pendingBytes += text.count
            // The oldest go first, but never the one being sent (it is resumed where it stopped).
            while pendingBytes > Int(configuration.maxQueueBytes), pending.count > 1 {
                let victim = headBusy || headSent > 0 ? 1 : 0
                pendingBytes -= pending[victim].bytes.count
                dropped += pending[victim].series
                pending.remove(at: victim)
            }
            metrics?.graphiteQueueBytes.store(UInt64(pendingBytes))
            lock.broadcast()
        }
        if dropped > 0 {
            metrics?.addLabeled(SelfMetrics.seriesDropped("graphite", "queue_full"), UInt64(dropped))
            if let suppressed = dropLog.admit() {
                logger.error(
                    "graphite queue full (max_queue_bytes): oldest flushes dropped",
                    metadata: [("series", "\(dropped)"), ("suppressed", "\(suppressed)")])
            }
        }
    }

    /// Keeps sending for at most the grace period, then counts what is left.
    public func shutdown(until deadline: Double) {
        lock.withLock {
            closing = true
            stopAt = min(deadline, WallClock.monotonicSeconds() + Double(configuration.shutdownGraceMillis) / 1000)
            lock.broadcast()
        }
        sender?.join()
        sender = nil
        if fd >= 0 {
            close(fd)
            fd = -1
        }
        let left = lock.withLock { pending.reduce(0) { $0 + $1.series } }
        if left > 0 {
            metrics?.addLabeled(SelfMetrics.seriesDropped("graphite", "shutdown"), UInt64(left))
            logger.warning("graphite unreachable at shutdown: unsent series lost", metadata: [("series", "\(left)")])
        }
    }

    private func sendLoop() {
        var backoff = Double(configuration.initialBackoffMillis) / 1000
        while true {
            // The oldest flush, from where the last attempt left it.
            let next: (bytes: [UInt8], offset: Int)? = lock.withLock {
                while pending.isEmpty && !closing { lock.wait() }
                if pending.isEmpty || (closing && WallClock.monotonicSeconds() >= stopAt) { return nil }
                headBusy = true
                return (pending[0].bytes, headSent)
            }
            guard let (bytes, offset) = next else { return }
            let deadline = lock.withLock { closing ? stopAt : Double.infinity }
            var failure: String?
            if fd < 0 {
                failure = connect(deadline: deadline)
            }
            var sent = offset
            if failure == nil {
                failure = write(bytes, from: &sent, deadline: deadline)
            }
            if let failure {
                // Resume at the start of the line the failure cut: Graphite drops a partial line.
                let lineStart = sent == 0 ? 0 : (bytes[..<sent].lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0)
                lock.withLock {
                    headSent = lineStart
                    headBusy = false
                }
                if fd >= 0 {
                    close(fd)
                    fd = -1
                }
                metrics?.addLabeled(SelfMetrics.sinkErrors("graphite"))
                let wait = Double.random(in: backoff / 2...backoff)
                backoff = min(backoff * 2, Double(configuration.maxBackoffMillis) / 1000)
                if let suppressed = failureLog.admit() {
                    logger.warning(
                        "graphite send failed; will reconnect",
                        metadata: [
                            ("address", configuration.address), ("error", failure), ("retry_in_s", "\(wait)"),
                            ("suppressed", "\(suppressed)"),
                        ])
                }
                lock.withLock {
                    let until = WallClock.monotonicSeconds() + wait
                    while true {
                        let limit = closing ? min(until, stopAt) : until  // shutdown shortens the wait
                        if WallClock.monotonicSeconds() >= limit { break }
                        lock.wait(until: limit)
                    }
                }
                continue
            }
            backoff = Double(configuration.initialBackoffMillis) / 1000
            lock.withLock {
                pendingBytes -= pending[0].bytes.count
                pending.removeFirst()
                headSent = 0
                headBusy = false
                metrics?.graphiteQueueBytes.store(UInt64(pendingBytes))
            }
        }
    }

    /// Opens the connection.
    /// - Returns: why it failed, or nil.
    private func connect(deadline: Double) -> String? {
        let limit = min(deadline, WallClock.monotonicSeconds() + Double(configuration.timeoutMillis) / 1000)
        switch StreamSocket.connect(configuration.address, deadline: limit) {
        case .success(let socketFD):
            fd = socketFD
            return nil
        case .failure(.timedOut): return "connect timed out"
        case .failure(.failed(_, let reason)): return reason
        }
    }

    /// Writes `bytes[sent...]`, advancing `sent`.
    /// - Returns: why it stopped short, or nil.
    private func write(_ bytes: [UInt8], from sent: inout Int, deadline: Double) -> String? {
        // A receiver that closed shows as readable with nothing to read: find out before
        // writing into a connection that is gone (the first write would still succeed).
        var probe = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        if poll(&probe, 1, 0) == 1 {
            var scratch = [UInt8](repeating: 0, count: 512)
            let n = recv(fd, &scratch, scratch.count, Int32(MSG_DONTWAIT))
            if n == 0 { return "the receiver closed the connection" }
        }
        let timeout = Double(configuration.timeoutMillis) / 1000
        switch StreamSocket.send(fd, bytes, from: &sent, idleTimeout: timeout, deadline: { deadline }) {
        case nil: return nil
        case .timedOut: return "the receiver took nothing for \(configuration.timeoutMillis) ms"
        case .failed(_, let reason): return reason
        }
    }
}
