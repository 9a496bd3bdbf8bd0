import CStatorSys
import Glibc

/// The sinks' own outgoing TCP connections (Graphite, `http://` pushes): a connect and
/// whole writes on non-blocking sockets, each bounded in time, from the sink's own thread.
enum StreamSocket {
    /// Why a connect or a write stopped.
    enum Failure: Error, Equatable {
        /// The time allowed ran out.
        case timedOut
        /// The call failed with this `errno`, or (0) the name did not resolve: `reason` says.
        case failed(errno: Int32, reason: String)
    }

    /// Connects to `address` (`host:port` or `[v6]:port`, resolved now), waiting until
    /// `deadline` (monotonic seconds) at most.
    /// - Returns: the connected, non-blocking socket (TCP_NODELAY: each write goes out whole).
    static func connect(_ address: String, deadline: Double) -> Result<Int32, Failure> {
        let parsed: SocketAddress
        do {
            parsed = try SocketAddress(parsing: address)
        } catch {
            return .failure(.failed(errno: 0, reason: "cannot resolve \(address): \(error.message)"))
        }
        let fd = socket(
            Int32(parsed.storage.ss_family),
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return .failure(.failed(errno: errno, reason: "socket: \(String(cString: strerror(errno)))")) }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, 4)
        var storage = parsed.storage
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, parsed.length) }
        }
        if rc != 0 && errno != EINPROGRESS {
            let e = errno
            close(fd)
            return .failure(.failed(errno: e, reason: "connect to \(address): \(String(cString: strerror(e)))"))
        }
        if rc != 0 {
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            var error: Int32 = 0
            var length = socklen_t(4)
            guard poll(&p, 1, millis(until: deadline)) == 1 else {
                close(fd)
                return .failure(.timedOut)
            }
            if getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 || error != 0 {
                close(fd)
                return .failure(.failed(errno: error, reason: "connect to \(address): \(String(cString: strerror(error)))"))
            }
        }
        return .success(fd)
    }

    /// Writes `bytes[sent...]`, advancing `sent`, waiting for room in slices of at most 50 ms.
    /// - Parameters:
    ///   - idleTimeout: seconds allowed without a byte taken.
    ///   - deadline: the end of all waiting (monotonic seconds), read at every slice: it may move
    ///     closer (shutdown begins).
    /// - Returns: nil once everything is written, else why it stopped.
    static func send(_ fd: Int32, _ bytes: [UInt8], from sent: inout Int, idleTimeout: Double, deadline: () -> Double)
        -> Failure?
    {
        var progressAt = WallClock.monotonicSeconds()
        while sent < bytes.count {
            let offset = sent
            let n = bytes.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress.map { $0 + offset }, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if n > 0 {
                sent += n
                progressAt = WallClock.monotonicSeconds()
                continue
            }
            if n < 0 && errno == EINTR { continue }
            guard n < 0, errno == EAGAIN || errno == EWOULDBLOCK else {
                return .failed(errno: errno, reason: "send: \(String(cString: strerror(errno)))")
            }
            let limit = min(deadline(), progressAt + idleTimeout)
            if WallClock.monotonicSeconds() >= limit { return .timedOut }
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = poll(&p, 1, millis(until: min(limit, WallClock.monotonicSeconds() + 0.05)))
        }
        return nil
    }

    /// Milliseconds from now until `deadline` (monotonic seconds), for `poll`: 0 when past.
    static func millis(until deadline: Double) -> Int32 {
        Int32(max(0, min(Double(Int32.max), ((deadline - WallClock.monotonicSeconds()) * 1000).rounded(.up))))
    }
}
