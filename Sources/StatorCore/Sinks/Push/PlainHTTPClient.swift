import Foundation
import Glibc

/// How a push sends one request: `PlainHTTPClient` for `http://`, `PushHTTPClient`
/// (URLSession, for its TLS) for `https://`.
protocol PushTransport: Sendable {
    /// Posts `body` and waits for the answer, at most `timeout` seconds, or until `abortAt()`
    /// (monotonic seconds, checked at least every 50 ms) has passed. `headers` are sent as
    /// given (the push has merged its defaults, credentials and configured headers).
    func post(
        _ target: PushTarget, body: [UInt8], headers: [(String, String)], timeout: Double, abortAt: @escaping () -> Double
    ) -> PushOutcome
}

/// A small blocking HTTP/1.1 client for `http://` pushes: one kept-alive connection, one
/// request at a time, on the push's sender thread.
///
/// URLSession costs several thread switches per request on its own dispatch queues (with
/// every sink on, most of the agent's CPU at one flush a second): this client costs a
/// `connect` per connection and a `send` and a few `recv`s per request.
///
/// - Redirects are never followed: a 3xx comes back as the answer, with its `Location`.
/// - A kept connection the server closed while idle is found out when the request is
///   written or its answer starts; the request then goes once more on a new connection
///   (the server did not answer it: at least once, as every retry).
/// - The answer's head may be at most 64 KiB; of its body the first 4 KiB are kept, the
///   rest read and dropped (at most 64 MiB, else the connection is closed).
final class PlainHTTPClient: PushTransport, @unchecked Sendable {
    // SAFETY: `connection` is touched only under `lock`; a push calls `post` from its one
    // sender thread, so the lock is never contended.
    private let lock = PthreadLock<Int32>(-1)
    static let maxHeadBytes = 64 << 10
    static let maxBodyBytes = 64 << 20

    private enum Failure: Error {
        /// Nothing of an answer arrived on a reused connection: try once more on a new one.
        case stale
        case failed(String)
    }

    func post(
        _ target: PushTarget, body: [UInt8], headers: [(String, String)], timeout: Double, abortAt: @escaping () -> Double
    ) -> PushOutcome {
        let deadline = WallClock.monotonicSeconds() + timeout
        let port = UInt16(target.port ?? 80)
        let host = target.host
        // The path and query as written: never decoded (SPEC section 10).
        var head = "POST \(target.requestTarget) HTTP/1.1\r\nHost: \(host.contains(":") ? "[\(host)]" : host)"
        head += target.port.map { ":\($0)" } ?? ""
        head += "\r\nContent-Length: \(body.count)\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "\r\n"
        let request = Array(head.utf8) + body
        var fd = lock.withLock { $0 }
        defer { lock.withLock { $0 = fd } }
        for _ in 0..<2 {
            let reused = fd >= 0
            if fd < 0 {
                let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
                switch StreamSocket.connect(address, deadline: min(deadline, abortAt())) {
                case .success(let opened): fd = opened
                case .failure(.timedOut): return .failure(Self.waitFailure(deadline: deadline, abortAt: abortAt) ?? "timed out")
                case .failure(.failed(_, let reason)): return .failure(reason)
                }
            }
            do throws(Failure) {
                let answer = try exchange(fd, request, reused: reused, deadline: deadline, abortAt: abortAt)
                if answer.close {
                    Glibc.close(fd)
                    fd = -1
                }
                return answer.outcome
            } catch {
                Glibc.close(fd)
                fd = -1
                if case .failed(let reason) = error { return .failure(reason) }
                // stale: once more, on a new connection
            }
        }
        return .failure("the server closed the connection without an answer")
    }

    /// Writes the request and reads the answer.
    private func exchange(
        _ fd: Int32, _ request: [UInt8], reused: Bool, deadline: Double, abortAt: @escaping () -> Double
    ) throws(Failure) -> (outcome: PushOutcome, close: Bool) {
        var sent = 0
        switch StreamSocket.send(fd, request, from: &sent, idleTimeout: .infinity, deadline: { min(deadline, abortAt()) }) {
        case nil: break
        case .timedOut: throw .failed(Self.waitFailure(deadline: deadline, abortAt: abortAt) ?? "timed out")
        case .failed(let e, let reason):
            if reused && (e == EPIPE || e == ECONNRESET) { throw .stale }
            throw .failed(reason)
        }
        var reader = Reader(fd: fd, deadline: deadline, abortAt: abortAt)
        while true {
            let headBytes: [UInt8]
            do throws(Failure) {
                headBytes = try reader.head()
            } catch {
                if reused, reader.received == 0, case .failed = error { throw .stale }
                throw error
            }
            guard let head = ResponseHead(headBytes) else { throw .failed("malformed HTTP response") }
            if head.status >= 100 && head.status < 200 { continue }  // 100 Continue and the like
            var kept: [UInt8] = []
            var readToClose = false
            if head.status == 204 || head.status == 304 {
                // no body
            } else if head.chunked {
                try reader.chunkedBody(keeping: &kept)
            } else if let length = head.contentLength {
                guard length <= Self.maxBodyBytes else { return (Self.outcome(head, kept), true) }
                try reader.body(length: length, keeping: &kept)
            } else {
                readToClose = true
                try reader.bodyToClose(keeping: &kept)
            }
            return (Self.outcome(head, kept), readToClose || head.close)
        }
    }

    private static func outcome(_ head: ResponseHead, _ body: [UInt8]) -> PushOutcome {
        .response(
            status: head.status, retryAfter: PushHTTPClient.retryAfter(head.header("retry-after")),
            bodyStart: String(decoding: body.prefix(200), as: UTF8.self),
            location: (300..<400).contains(head.status) ? head.header("location") : nil,
            body: (200..<300).contains(head.status) ? body : [])
    }

    /// Waits (50 ms at most) until `fd` is ready for `events`, the deadline, or the abort time.
    fileprivate static func wait(_ fd: Int32, _ events: Int16, deadline: Double, abortAt: () -> Double) {
        let limit = min(deadline, abortAt(), WallClock.monotonicSeconds() + 0.05)
        var p = pollfd(fd: fd, events: events, revents: 0)
        _ = poll(&p, 1, StreamSocket.millis(until: limit))
    }

    /// Why waiting must stop (shutdown, or the request's time is up), or nil.
    fileprivate static func waitFailure(deadline: Double, abortAt: () -> Double) -> String? {
        let now = WallClock.monotonicSeconds()
        if now >= abortAt() { return "abandoned at shutdown" }
        if now >= deadline { return "timed out" }
        return nil
    }

    /// Reads an answer from the connection into a buffer, bounded.
    private struct Reader {
        let fd: Int32
        let deadline: Double
        let abortAt: () -> Double
        var buffer: [UInt8] = []
        var start = 0
        /// Bytes received so far.
        var received = 0

        init(fd: Int32, deadline: Double, abortAt: @escaping () -> Double) {
            self.fd = fd
            self.deadline = deadline
            self.abortAt = abortAt
        }

        /// Reads more; false at the end of the stream.
        mutating func fill() throws(Failure) -> Bool {
            if start > 0 && start == buffer.count {
                buffer.removeAll(keepingCapacity: true)
                start = 0
            }
            var chunk = [UInt8](repeating: 0, count: 16384)
            while true {
                let n = recv(fd, &chunk, chunk.count, 0)
                if n > 0 {
                    buffer.append(contentsOf: chunk[0..<n])
                    received += n
                    return true
                }
                if n == 0 { return false }
                if errno == EINTR { continue }
                guard errno == EAGAIN || errno == EWOULDBLOCK else {
                    throw .failed("recv: \(String(cString: strerror(errno)))")
                }
                PlainHTTPClient.wait(fd, Int16(POLLIN), deadline: deadline, abortAt: abortAt)
                if let failure = PlainHTTPClient.waitFailure(deadline: deadline, abortAt: abortAt) {
                    throw .failed(failure)
                }
            }
        }

        /// The next head, up to and without its blank line.
        mutating func head() throws(Failure) -> [UInt8] {
            while true {
                if let end = Self.headEnd(buffer, from: start) {
                    let head = Array(buffer[start..<end])
                    start = end + 4
                    return head
                }
                guard buffer.count - start <= PlainHTTPClient.maxHeadBytes else { throw .failed("response head too large") }
                guard try fill() else {
                    throw .failed(received == 0 ? "the server closed the connection" : "truncated response head")
                }
            }
        }

        private static func headEnd(_ bytes: [UInt8], from: Int) -> Int? {
            guard bytes.count - from >= 4 else { return nil }
            var i = from
            while i + 3 < bytes.count {
                if bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 { return i }
                i += 1
            }
            return nil
        }

        /// Takes `count` body bytes, keeping the first 4 KiB.
        mutating func body(length: Int, keeping kept: inout [UInt8]) throws(Failure) {
            var left = length
            while left > 0 {
                if start == buffer.count { guard try fill() else { throw .failed("truncated response body") } }
                let n = min(left, buffer.count - start)
                keep(buffer[start..<(start + n)], &kept)
                start += n
                left -= n
            }
        }

        mutating func bodyToClose(keeping kept: inout [UInt8]) throws(Failure) {
            var total = 0
            while true {
                if start == buffer.count { guard try fill() else { return } }
                total += buffer.count - start
                keep(buffer[start...], &kept)
                start = buffer.count
                guard total <= PlainHTTPClient.maxBodyBytes else { return }
            }
        }

        mutating func chunkedBody(keeping kept: inout [UInt8]) throws(Failure) {
            var total = 0
            while true {
                let sizeLine = try line()
                let hex = sizeLine.prefix { $0 != UInt8(ascii: ";") }
                guard let size = Int(String(decoding: hex, as: UTF8.self).trimmingCharacters(in: .whitespaces), radix: 16),
                    size >= 0
                else { throw .failed("malformed chunk size") }
                total += size
                guard total <= PlainHTTPClient.maxBodyBytes else { throw .failed("response body too large") }
                if size == 0 {
                    while try !line().isEmpty {}  // trailers, then the blank line
                    return
                }
                try body(length: size, keeping: &kept)
                guard try line().isEmpty else { throw .failed("malformed chunk") }
            }
        }

        private mutating func line() throws(Failure) -> [UInt8] {
            while true {
                if let lf = buffer[start...].firstIndex(of: 10) {
                    var line = Array(buffer[start..<lf])
                    if line.last == 13 { line.removeLast() }
                    start = lf + 1
                    return line
                }
                guard buffer.count - start <= PlainHTTPClient.maxHeadBytes else { throw .failed("chunk line too long") }
                guard try fill() else { throw .failed("truncated chunked body") }
            }
        }

        private func keep(_ bytes: ArraySlice<UInt8>, _ kept: inout [UInt8]) {
            let room = PushHTTPClient.keptBodyBytes - kept.count
            if room > 0 { kept.append(contentsOf: bytes.prefix(room)) }
        }
    }
}

/// The status line and headers of an answer.
private struct ResponseHead {
    let status: Int
    let headers: [(name: String, value: String)]
    let http10: Bool

    init?(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)
        guard !lines.isEmpty else { return nil }
        let statusLine = lines.removeFirst().split(separator: " ", maxSplits: 2)
        guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/1."), let status = Int(statusLine[1]),
            (100..<600).contains(status)
        else { return nil }
        self.status = status
        http10 = statusLine[0] == "HTTP/1.0"
        headers = lines.compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
    }

    func header(_ name: String) -> String? { headers.first { $0.name == name }?.value }

    var contentLength: Int? { header("content-length").flatMap { Int($0) } }

    var chunked: Bool { header("transfer-encoding")?.lowercased().contains("chunked") ?? false }

    /// Whether the server will close the connection after this answer.
    var close: Bool {
        let connection = header("connection")?.lowercased() ?? ""
        return connection.contains("close") || (http10 && !connection.contains("keep-alive"))
    }
}
