import CStatorSys
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

/// Handles one request; runs on the server thread, so it must be quick.
public typealias HTTPHandler = @Sendable (HTTPRequestHead) -> HTTPResponse

/// A small HTTP/1.1 server on one thread with `poll`: keep-alive, pipelining,
/// and hard bounds on what a client can cost (head size, timeouts, connections).
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
        /// Since when it has been waiting for a complete request.
        var waitingSince: Double

        init(fd: Int32, deadline: Double, now: Double) {
            self.fd = fd
            self.deadline = deadline
            waitingSince = now
        }

        var isWriting: Bool { !output.isEmpty || stream != nil }
    }

    /// Bytes of a streamed body produced per turn before the other connections are served.
    static let streamBudget = 1 << 20

    private let listener: Int32
    private let configuration: HTTPServerConfiguration
    private let handler: HTTPHandler
    private let logger: Logger
    private let stopping = Atomic<Bool>(false)
    private let thread = PthreadLock<WorkerThread?>(nil)
    /// The address the server is bound to.
    public let boundAddress: String

    /// Binds and listens (so a port in use fails here, before serving).
    /// - Throws: `ConfigError` for a bad address, `SystemError` when binding fails.
    public init(configuration: HTTPServerConfiguration, logger: Logger, handler: @escaping HTTPHandler) throws {
        self.configuration = configuration
        self.handler = handler
        self.logger = logger
        let address = try SocketAddress(parsing: configuration.address)
        let fd = socket(
            address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SystemError(errno: errno, call: "socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, 4)
        var storage = address.storage
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, address.length) }
        }
        guard rc == 0, listen(fd, 128) == 0 else {
            let e = errno
            close(fd)
            throw SystemError(errno: e, call: "bind \(address)")
        }
        listener = fd
        var bound = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        boundAddress = SocketAddress(storage: bound, length: len).description
    }

    deinit { close(listener) }

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
        while !stopping.load(ordering: .acquiring) {
            fds.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: listener, events: Int16(POLLIN), revents: 0))
            var nextDeadline = WallClock.monotonicSeconds() + 0.1
            for c in connections {
                fds.append(pollfd(fd: c.fd, events: Int16(c.isWriting ? POLLOUT : POLLIN), revents: 0))
                nextDeadline = min(nextDeadline, c.deadline)
            }
            let wait = max(0, Int32((nextDeadline - WallClock.monotonicSeconds()) * 1000) + 1)
            let ready = poll(&fds, nfds_t(fds.count), wait)
            if ready < 0 && errno != EINTR {
                logger.error("poll failed", metadata: [("error", String(cString: strerror(errno)))])
            }
            let now = WallClock.monotonicSeconds()
            var keep: [Connection] = []
            keep.reserveCapacity(connections.count + 1)
            for (n, c) in connections.enumerated() {
                let events = fds[n + 1].revents
                var open = true
                if events & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 && events & Int16(POLLIN) == 0 {
                    open = false
                } else if events & Int16(POLLOUT) != 0 {
                    open = flushOutput(c, now: now)
                } else if events & Int16(POLLIN) != 0 {
                    open = readInput(c, now: now)
                } else if now >= c.deadline {
                    open = false  // idle, slow, or not reading its response
                }
                if open { keep.append(c) } else { close(c.fd) }
            }
            connections = keep
            if fds[0].revents & Int16(POLLIN) != 0 { acceptAll(&connections, now: now) }
        }
        for c in connections { close(c.fd) }
    }

    private func acceptAll(_ connections: inout [Connection], now: Double) {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 { return }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            if connections.count >= configuration.maxConnections {
                // At the cap, the connection that has waited longest without a complete request
                // (idle keep-alive, silent or trickling) makes room, so such clients cannot starve
                // a scraper. Only when every slot is writing a response is the newcomer refused.
                if let oldest = connections.indices.filter({ !connections[$0].isWriting })
                    .min(by: { connections[$0].waitingSince < connections[$1].waitingSince })
                {
                    close(connections[oldest].fd)
                    connections.remove(at: oldest)
                } else {
                    let parts = HTTPResponse.text(503, "too many connections\n").serialize(keepAlive: false, includeBody: true)
                    for part in parts { _ = part.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }
                    close(fd)
                    continue
                }
            }
            connections.append(Connection(fd: fd, deadline: now + Double(configuration.idleTimeoutMillis) / 1000, now: now))
        }
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
            c.deadline = min(c.deadline, now + Double(configuration.readTimeoutMillis) / 1000)
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
        case .invalid:
            response = .text(400, "bad request\n")
        case .complete(let head, let consumed):
            c.input.removeFirst(consumed)
            keepAlive = head.keepAlive && !head.hasBody
            includeBody = head.method != "HEAD"
            response = handler(head)
        }
        c.output = response.serialize(keepAlive: keepAlive, includeBody: includeBody)
        if includeBody, let stream = response.stream {
            c.afterStream = Array(c.output.dropFirst())
            c.output = [c.output[0]]
            c.stream = stream
            c.streamOwed = response.streamLength
        }
        c.written = 0
        c.closeAfterWrite = !keepAlive
        c.deadline = now + Double(configuration.readTimeoutMillis) / 1000
        return flushOutput(c, now: now)
    }

    /// Writes what the socket takes.
    /// - Returns: whether the connection stays open.
    private func flushOutput(_ c: Connection, now: Double) -> Bool {
        var produced = 0
        while true {
            if c.output.isEmpty, let stream = c.stream {
                // Produce a streamed body a slice at a time; after `streamBudget` bytes, give the
                // other connections their turn (poll reports this socket writable again).
                if produced >= Self.streamBudget { return true }
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
                return errno == EAGAIN
            }
            c.written += n
            if c.written == part.count {
                c.output.removeFirst()
                c.written = 0
            }
        }
        if c.closeAfterWrite { return false }
        c.waitingSince = now
        c.deadline = now + Double(configuration.idleTimeoutMillis) / 1000
        if !c.input.isEmpty {
            // Pipelined requests already received.
            c.deadline = now + Double(configuration.readTimeoutMillis) / 1000
            return answerPending(c, now: now)
        }
        return true
    }
}
