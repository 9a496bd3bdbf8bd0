import CStatorSys
import Dispatch
import Glibc
import Synchronization

/// Configuration of the HTTP server (`http.*`).
public struct HTTPServerConfiguration: Sendable {
    /// Where to listen (`http.address`).
    public var address: String = "127.0.0.1:9102"
    /// Connections held at once (`http.max_connections`); at the cap the one waiting longest
    /// without a complete request is closed to make room.
    public var maxConnections: Int = 64
    /// Largest request head; larger gets 431 (`http.max_header_bytes`).
    public var maxHeaderBytes: Int = 8192
    /// Time allowed to receive a whole request head once it starts, and to write a response.
    public var readTimeoutMillis: Int64 = 5_000
    /// Time an idle keep-alive connection stays open.
    public var idleTimeoutMillis: Int64 = 30_000

    public init() {}
}

/// Handles one request; runs on the server thread, so it must be quick (or answer with
/// `HTTPResponse.later`, whose work runs on the server's worker thread).
public typealias HTTPHandler = @Sendable (HTTPRequestHead) -> HTTPResponse

/// A small HTTP/1.1 server on one thread with `poll`: keep-alive, pipelining,
/// and hard bounds on what a client can cost (head size, timeouts, connections). A response
/// that may take long (`HTTPResponse.later`) is produced on a worker thread while this one
/// goes on serving the other connections, and written once ready.
public final class HTTPServer: Sendable {
    private final class Connection {
        let fd: Int32
        var input: [UInt8] = []
        /// Parts still to write, and how much of the first is written.
        var output: [[UInt8]] = []
        var written = 0
        /// A body still being produced, the parts that follow it, and how many bytes it still owes.
        var stream: (any HTTPBodyStream)?
        var afterStream: [[UInt8]] = []
        var streamOwed = 0
        var closeAfterWrite = false
        /// When the connection is closed if nothing progresses.
        var deadline: Double
        /// While writing: the bytes the kernel still held to send when the server last stopped
        /// writing (the socket full, or another connection's turn), -1 before.
        var unsentAtDeadline = -1
        /// Since when it has been waiting for a complete request.
        var waitingSince: Double
        /// A response being produced on the worker (`HTTPResponse.later`), and how to send it.
        var pending: PendingResponse?
        var pendingKeepAlive = false
        var pendingIncludeBody = true

        init(fd: Int32, deadline: Double, now: Double) {
            self.fd = fd
            self.deadline = deadline
            waitingSince = now
        }

        /// Whether a response is under way: being written, or produced on the worker.
        var isWriting: Bool { !output.isEmpty || stream != nil || pending != nil }

        /// Notes what the kernel still holds to send, as the server stops writing for now
        /// (see `stillReading`).
        func noteUnsent() { unsentAtDeadline = Int(CStatorSys_unsent_bytes(fd)) }
    }

    /// A deferred response's slot: filled once by the worker, taken by the server's thread.
    private final class PendingResponse: Sendable {
        let response = Mutex<HTTPResponse?>(nil)
    }

    /// Why the server closed a connection (`stator_http_connections_closed_total{reason}`).
    /// A client that closes, or a response sent with `Connection: close`, is not counted.
    enum CloseReason: String, CaseIterable {
        /// A request head not received whole within `http.read_timeout` of its first byte.
        case readTimeout = "read_timeout"
        /// A response its client stopped reading for `http.read_timeout`.
        case writeTimeout = "write_timeout"
        /// A keep-alive connection without a request for `http.idle_timeout`.
        case idleTimeout = "idle_timeout"
        /// The idle connection waiting longest, closed at `http.max_connections` for a newcomer.
        case evicted
        /// A newcomer refused (503) at `http.max_connections`, every connection mid-request.
        case tooManyConnections = "too_many_connections"
        /// A request answered 400 (a head that does not parse, or ambiguous framing).
        case badRequest = "bad_request"
        /// A request head over `http.max_header_bytes`, answered 431.
        case headTooLarge = "head_too_large"

        var series: String { "stator_http_connections_closed_total{reason=\"\(rawValue)\"}" }
        /// Whether a close is logged (rate-limited): what a misbehaving client causes.
        var isLogged: Bool { self != .idleTimeout && self != .evicted }
    }

    /// Bytes of a streamed body produced per turn before the other connections are served.
    static let streamBudget = 1 << 20
    private let listener: Int32
    private let configuration: HTTPServerConfiguration
    /// `http.read_timeout` and `http.idle_timeout`, in seconds.
    private let readTimeout: Double
    private let idleTimeout: Double
    private let handler: HTTPHandler
    private let logger: Logger
    private let metrics: SelfMetrics?
    private let closeLog = RateLimiter(period: 60)
    private let stopping = Atomic<Bool>(false)
    private let thread = PthreadLock<WorkerThread?>(nil)
    /// Runs the work of deferred responses (`HTTPResponse.later`) one at a time, off the
    /// server's thread, which meanwhile serves every other connection. Each work bounds its
    /// own time.
    private let worker = DispatchQueue(label: "stator.http.worker")
    /// A pipe that wakes `poll` when the worker has finished a response: the worker writes a
    /// byte to `wake.write`, the server drains `wake.read`.
    private let wake: (read: Int32, write: Int32)
    /// The address the server is bound to.
    public let boundAddress: String

    /// Binds and listens (so a port in use fails here, before serving).
    /// - Throws: `ConfigError` for a bad address, `SystemError` when binding fails.
    public init(
        configuration: HTTPServerConfiguration, logger: Logger, metrics: SelfMetrics? = nil,
        handler: @escaping HTTPHandler
    ) throws {
        self.configuration = configuration
        self.metrics = metrics
        for reason in CloseReason.allCases { metrics?.registerLabeled(reason.series) }
        AcceptLoop.register("http", in: metrics)
        readTimeout = Double(configuration.readTimeoutMillis) / 1000
        idleTimeout = Double(configuration.idleTimeoutMillis) / 1000
        self.handler = handler
        self.logger = logger
        let (fd, bound) = try SocketAddress(parsing: configuration.address).listen(backlog: 128, purpose: "http")
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else {
            let error = SystemError(errno: errno, call: "pipe")
            close(fd)
            throw error
        }
        for end in ends {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        wake = (ends[0], ends[1])
        listener = fd
        boundAddress = bound.description
    }

    // The worker's closures hold the server, so the pipe outlives every write to it.
    deinit {
        close(listener)
        close(wake.read)
        close(wake.write)
    }

    /// Starts serving on a dedicated thread.
    public func start() {
        thread.withLock { $0 = WorkerThread(name: "http") { [self] in serve() } }
    }

    /// Stops serving and closes every connection.
    public func stop() {
        stopping.store(true, ordering: .releasing)
        thread.withLock { t in
            t?.join()
            t = nil
        }
    }

    private func serve() {
        var connections: [Connection] = []
        var fds: [pollfd] = []
        let acceptor = AcceptLoop(fd: listener, name: "http", logger: logger, metrics: metrics)
        while !stopping.load(ordering: .acquiring) {
            fds.removeAll(keepingCapacity: true)
            let accepting = !acceptor.isPaused(now: WallClock.monotonicSeconds())
            fds.append(pollfd(fd: listener, events: accepting ? Int16(POLLIN) : 0, revents: 0))
            var nextDeadline = WallClock.monotonicSeconds() + 0.1
            for c in connections {
                let events = c.pending != nil ? 0 : c.isWriting ? POLLOUT : POLLIN  // pending: only a hang-up
                fds.append(pollfd(fd: c.fd, events: Int16(events), revents: 0))
                nextDeadline = min(nextDeadline, c.deadline)
            }
            fds.append(pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0))
            let wait = max(0, Int32((nextDeadline - WallClock.monotonicSeconds()) * 1000) + 1)
            let ready = poll(&fds, nfds_t(fds.count), wait)
            if ready < 0 && errno != EINTR {
                logger.error("poll failed", metadata: [("error", String(cString: strerror(errno)))])
            }
            let now = WallClock.monotonicSeconds()
            if fds[fds.count - 1].revents & Int16(POLLIN) != 0 { drainWake() }
            var keep: [Connection] = []
            keep.reserveCapacity(connections.count + 1)
            for (n, c) in connections.enumerated() {
                let events = fds[n + 1].revents
                var open = true
                if let pending = c.pending {
                    if let response = pending.response.withLock({ $0.take() }) {
                        c.pending = nil
                        open = respond(c, response, keepAlive: c.pendingKeepAlive, includeBody: c.pendingIncludeBody, now: now)
                    } else if events & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 {
                        open = false  // its client is gone: the response is dropped when done
                    }
                } else if events & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 && events & Int16(POLLIN) == 0 {
                    open = false
                } else if events & Int16(POLLOUT) != 0 {
                    open = flushOutput(c, now: now)
                } else if events & Int16(POLLIN) != 0 {
                    open = readInput(c, now: now)
                } else if now >= c.deadline {
                    open = stillReading(c, now: now)  // idle, slow, or not reading its response
                    if !open { closing(c.isWriting ? .writeTimeout : c.input.isEmpty ? .idleTimeout : .readTimeout) }
                }
                if open {
                    keep.append(c)
                } else {
                    Self.closeDiscardingInput(c.fd)
                    acceptor.descriptorFreed()
                }
            }
            connections = keep
            if accepting, fds[0].revents & Int16(POLLIN) != 0 {
                acceptor.acceptAll(now: now) { fd in admit(fd, into: &connections, now: now) }
            }
        }
        for c in connections { close(c.fd) }
    }

    /// Takes an accepted connection, making room at `http.max_connections` (or refusing it).
    private func admit(_ fd: Int32, into connections: inout [Connection], now: Double) {
        if connections.count >= configuration.maxConnections {
            // At the cap, the connection that has waited longest without a byte of a request
            // (idle keep-alive, silent) makes room, so such clients cannot starve a scraper.
            // One with a request under way (partly received, or being answered) is never
            // closed for a newcomer: a flood of connections must not cut off a scraper
            // mid-request. A trickling head is bounded by the read timeout instead. When
            // every slot has a request under way, the newcomer is refused.
            if let oldest = connections.indices.filter({ !connections[$0].isWriting && connections[$0].input.isEmpty })
                .min(by: { connections[$0].waitingSince < connections[$1].waitingSince })
            {
                Self.closeDiscardingInput(connections[oldest].fd)
                connections.remove(at: oldest)
                closing(.evicted)
            } else {
                let parts = HTTPResponse.text(503, "too many connections\n").serialize(keepAlive: false, includeBody: true)
                for part in parts { _ = part.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }
                Self.closeDiscardingInput(fd)
                closing(.tooManyConnections)
                return
            }
        }
        connections.append(Connection(fd: fd, deadline: now + idleTimeout, now: now))
    }

    /// Counts a connection the server closes (or is about to, after its answer), and logs
    /// what a misbehaving client caused, at most once a minute.
    private func closing(_ reason: CloseReason) {
        metrics?.addLabeled(reason.series)
        guard reason.isLogged, let suppressed = closeLog.admit() else { return }
        logger.warning(
            "HTTP connection closed", metadata: [("reason", reason.rawValue), ("suppressed", "\(suppressed)")])
    }

    /// Closes a connection after reading (and dropping) what the client already sent. Closing
    /// a socket with unread input makes the kernel answer with a reset instead of a normal
    /// close, and a reset can destroy the response still on its way (a 503, or a response
    /// written just before): the client then sees its connection reset instead of the answer.
    private static func closeDiscardingInput(_ fd: Int32) {
        var scratch = [UInt8](repeating: 0, count: 4096)
        for _ in 0..<16 {  // bounded: at most 64 KiB of a client that keeps sending
            let n = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n <= 0 { break }
        }
        close(fd)
    }

    /// Reads what is available and answers every complete request.
    /// - Returns: whether the connection stays open.
    private func readInput(_ c: Connection, now: Double) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        let n = chunk.withUnsafeMutableBytes { recv(c.fd, $0.baseAddress, $0.count, 0) }
        if n == 0 { return false }
        if n < 0 { return errno == EAGAIN || errno == EINTR }
        if c.input.isEmpty {
            // A request has started: it must arrive whole within the read timeout.
            c.deadline = min(c.deadline, now + readTimeout)
        }
        c.input.append(contentsOf: chunk[0..<n])
        return answerPending(c, now: now)
    }

    /// Answers the first complete request in the input buffer, if any.
    private func answerPending(_ c: Connection, now: Double) -> Bool {
        let response: HTTPResponse
        var keepAlive = false
        var includeBody = true
        switch HTTPRequestHead.parse(c.input[...], limit: configuration.maxHeaderBytes) {
        case .incomplete:
            return true
        case .tooLarge:
            response = .text(431, "request head too large\n")
            closing(.headTooLarge)
        case .invalid:
            response = .text(400, "bad request\n")
            closing(.badRequest)
        case .complete(let head, let consumed):
            c.input.removeFirst(consumed)
            keepAlive = head.keepAlive && !head.hasBody
            includeBody = head.method != "HEAD"
            response = handler(head)
            if let work = response.deferred {
                hand(work, for: c, keepAlive: keepAlive, includeBody: includeBody)
                return true
            }
        }
        return respond(c, response, keepAlive: keepAlive, includeBody: includeBody, now: now)
    }

    /// Runs a deferred response's work on the worker; the connection waits (reading nothing
    /// more, without a deadline) until `serve` finds the response ready.
    private func hand(_ work: @escaping @Sendable () -> HTTPResponse, for c: Connection, keepAlive: Bool, includeBody: Bool) {
        let pending = PendingResponse()
        c.pending = pending
        c.pendingKeepAlive = keepAlive
        c.pendingIncludeBody = includeBody
        c.deadline = .infinity
        worker.async { [self] in
            var response = work()
            response.deferred = nil
            pending.response.withLock { $0 = response }
            var byte: UInt8 = 1
            _ = write(wake.write, &byte, 1)  // a full pipe already holds a wake-up
        }
    }

    /// Empties the wake-up pipe (every ready response is found by `serve`'s pass).
    private func drainWake() {
        var scratch = [UInt8](repeating: 0, count: 64)
        while scratch.withUnsafeMutableBytes({ read(wake.read, $0.baseAddress, $0.count) }) > 0 {}
    }

    /// Starts writing a response.
    /// - Returns: whether the connection stays open.
    private func respond(_ c: Connection, _ response: HTTPResponse, keepAlive: Bool, includeBody: Bool, now: Double)
        -> Bool
    {
        c.output = response.serialize(keepAlive: keepAlive, includeBody: includeBody)
        if includeBody, let stream = response.stream {
            c.afterStream = Array(c.output.dropFirst())
            c.output = [c.output[0]]
            c.stream = stream
            c.streamOwed = response.streamLength
        }
        c.written = 0
        c.closeAfterWrite = !keepAlive
        c.deadline = now + readTimeout
        return flushOutput(c, now: now)
    }

    /// At the deadline of a connection writing a response: whether its client is still taking
    /// the bytes. The kernel's send buffer (up to 4 MiB) can hold a slow reader's share for
    /// longer than the timeout without `poll` reporting room to write, so progress is also
    /// the send queue shrinking since the deadline was set; then the deadline moves on.
    private func stillReading(_ c: Connection, now: Double) -> Bool {
        guard c.isWriting, c.unsentAtDeadline >= 0 else { return false }
        let unsent = Int(CStatorSys_unsent_bytes(c.fd))
        guard unsent >= 0, unsent < c.unsentAtDeadline else { return false }
        c.unsentAtDeadline = unsent
        c.deadline = now + readTimeout
        return true
    }

    /// Writes what the socket takes.
    /// - Returns: whether the connection stays open.
    private func flushOutput(_ c: Connection, now: Double) -> Bool {
        var produced = 0
        while true {
            if c.output.isEmpty, let stream = c.stream {
                // Produce a streamed body a slice at a time; after `streamBudget` bytes, give the
                // other connections their turn (poll reports this socket writable again).
                if produced >= Self.streamBudget {
                    c.noteUnsent()
                    return true
                }
                if let chunk = stream.next() {
                    produced += chunk.count
                    c.streamOwed -= chunk.count
                    c.output.append(chunk)
                } else {
                    c.stream = nil
                    c.output = c.afterStream
                    c.afterStream = []
                    if c.streamOwed != 0 { return false }  // it ended short (or long): Content-Length is wrong
                }
                continue
            }
            guard let part = c.output.first else { break }
            let written = c.written
            let n = part.withUnsafeBytes { buf in
                send(c.fd, buf.baseAddress.map { $0 + written }, buf.count - written, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EINTR { continue }
                guard errno == EAGAIN else { return false }
                c.noteUnsent()  // the socket is full
                return true
            }
            // The write deadline runs from the last progress, not from the response's start:
            // a slow reader of a big page keeps its connection while bytes still flow.
            if n > 0 { c.deadline = now + readTimeout }
            c.written += n
            if c.written == part.count {
                c.output.removeFirst()
                c.written = 0
            }
        }
        if c.closeAfterWrite { return false }
        c.waitingSince = now
        c.deadline = now + idleTimeout
        if !c.input.isEmpty {
            // Pipelined requests already received.
            c.deadline = now + readTimeout
            return answerPending(c, now: now)
        }
        return true
    }
}
