import Glibc

/// The accepting side of a listening stream socket, shared by every listener (the HTTP
/// server, the TCP input), so that each backs off the same way when `accept` fails for want
/// of descriptors or memory (SPEC section 12).
///
/// Such a failure leaves the pending connection in the backlog and the listener readable:
/// retrying at once would make `poll` wake at once, forever, and spin the thread. So the
/// listener pauses for `backoff` (the owner polls it with `pollEvents`, which asks for
/// nothing meanwhile), each failure is counted in
/// `stator_accept_failures_total{listener,reason}`, and one line a minute is logged. A
/// descriptor the owner closes ends the pause at once (`descriptorFreed`), so it serves again
/// as soon as it can. Owned by the one thread that serves the listener; not shared.
final class AcceptLoop {
    /// Why `accept` failed in a way that calls for a pause: the `reason` label.
    enum Failure: String, CaseIterable {
        case emfile, enfile, enomem, enobufs

        init?(errno e: Int32) {
            switch e {
            case EMFILE: self = .emfile
            case ENFILE: self = .enfile
            case ENOMEM: self = .enomem
            case ENOBUFS: self = .enobufs
            default: return nil
            }
        }

        func series(_ listener: String) -> String {
            "stator_accept_failures_total{listener=\"\(listener)\",reason=\"\(rawValue)\"}"
        }
    }

    /// How long accepting rests after such a failure (unless a descriptor is freed first).
    static let backoff = 0.25

    let fd: Int32
    private let name: String
    private let logger: Logger
    private let metrics: SelfMetrics?
    private let failureLog = RateLimiter(period: 60)
    private var pausedUntil = 0.0

    /// - Parameters:
    ///   - fd: the listening socket (owned by the caller).
    ///   - name: the `listener` label (`http`, `tcp`).
    init(fd: Int32, name: String, logger: Logger, metrics: SelfMetrics?) {
        self.fd = fd
        self.name = name
        self.logger = logger
        self.metrics = metrics
        Self.register(name, in: metrics)
    }

    /// Shows the listener's counters at 0 from the start (the owner calls it when it binds).
    static func register(_ name: String, in metrics: SelfMetrics?) {
        for failure in Failure.allCases { metrics?.registerLabeled(failure.series(name)) }
    }

    /// Whether accepting is paused at `now`.
    func isPaused(now: Double) -> Bool { now < pausedUntil }

    /// What to `poll` the listener for at `now`: `POLLIN`, or nothing while paused.
    func pollEvents(now: Double) -> Int16 { isPaused(now: now) ? 0 : Int16(POLLIN) }

    /// A descriptor was closed: the next turn may accept again.
    func descriptorFreed() { pausedUntil = 0 }

    /// Accepts every pending connection (non-blocking, close-on-exec), calling `body` with
    /// each, which then owns it. Does nothing while paused unless `force` (at shutdown).
    /// - Returns: whether a connection was accepted.
    @discardableResult
    func acceptAll(now: Double, force: Bool = false, _ body: (Int32) -> Void) -> Bool {
        guard force || !isPaused(now: now) else { return false }
        var accepted = false
        while true {
            let client = accept(fd, nil, nil)
            if client >= 0 {
                _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                accepted = true
                body(client)
                continue
            }
            let e = errno
            if e == EINTR || e == ECONNABORTED || e == EPROTO { continue }
            if let failure = Failure(errno: e) { pause(failure, errno: e, now: now) }
            return accepted  // the backlog is empty, or the pause above
        }
    }

    private func pause(_ failure: Failure, errno e: Int32, now: Double) {
        pausedUntil = now + Self.backoff
        metrics?.addLabeled(failure.series(name))
        guard let suppressed = failureLog.admit(now: now) else { return }
        logger.error(
            "accept failed; new connections wait while the open ones are served",
            metadata: [
                ("listener", name), ("error", String(cString: strerror(e))), ("retry_in_s", "\(Self.backoff)"),
                ("suppressed", "\(suppressed)"),
            ])
    }
}
