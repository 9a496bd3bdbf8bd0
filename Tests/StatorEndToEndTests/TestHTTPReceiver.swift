import Foundation
import Glibc
import StatorCore
import Synchronization

/// A small HTTP/1.1 server for push tests: records every request and answers
/// with scripted responses (then 200), or never answers when `hang` is set.
final class TestHTTPReceiver: Sendable {
    struct Request: Sendable {
        var method: String
        var path: String
        var headers: [String: String]
        /// The header lines as received, in order (`headers` keeps one value per name).
        var headerLines: [String] = []
        var body: [UInt8]
        var at: Date
    }

    struct Response: Sendable {
        var status: Int
        var headers: [(String, String)] = []
        var body: String = ""
    }

    private struct State {
        var requests: [Request] = []
        var script: [Response]
        var connections: [Int32] = []
    }

    let port: UInt16
    private let listener: Int32
    private let state: PthreadLock<State>
    private let stopping = Atomic<Bool>(false)
    private let hanging: Atomic<Bool>

    /// Listens on 127.0.0.1 (`port` 0 picks a free one).
    init(port: UInt16 = 0, script: [Response] = [], hang: Bool = false) throws {
        state = PthreadLock(State(script: script))
        hanging = Atomic(hang)
        (listener, self.port) = try bindLoopback(Int32(SOCK_STREAM.rawValue), port: port, reuseAddress: true)
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    var requests: [Request] { state.withLock { $0.requests } }

    /// Whether requests get no answer (until the connection is closed or hanging stops).
    var hang: Bool {
        get { hanging.load(ordering: .acquiring) }
        set { hanging.store(newValue, ordering: .releasing) }
    }

    func stop() {
        stopping.store(true, ordering: .releasing)
        shutdown(listener, Int32(SHUT_RDWR))
        // Under the lock: a connection's thread closes its descriptor under the same lock once
        // it has left the list, so no shutdown here can reach a number another test reopened.
        state.withLock { s in
            for fd in s.connections { shutdown(fd, Int32(SHUT_RDWR)) }
            s.connections = []
        }
    }

    deinit {
        stop()
        close(listener)
    }

    private func acceptLoop() {
        while !stopping.load(ordering: .acquiring) {
            var pfd = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 100) > 0 else { continue }
            let fd = accept(listener, nil, nil)
            if fd < 0 { continue }
            state.withLock { $0.connections.append(fd) }
            let thread = Thread { [self] in serve(fd) }
            thread.start()
        }
    }

    private func serve(_ fd: Int32) {
        defer {
            state.withLock { s in
                s.connections.removeAll { $0 == fd }
                close(fd)
            }
        }
        var tv = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var buffer: [UInt8] = []
        func fill() -> Bool {
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = recv(fd, &chunk, chunk.count, 0)
            if n <= 0 { return false }
            buffer.append(contentsOf: chunk[0..<n])
            return true
        }
        while !stopping.load(ordering: .acquiring) {
            let separator = Array("\r\n\r\n".utf8)
            var headEnd = buffer.firstRange(of: separator)
            while headEnd == nil {
                guard fill() else { return }
                headEnd = buffer.firstRange(of: separator)
            }
            guard let end = headEnd else { return }
            let head = String(decoding: buffer[..<end.lowerBound], as: UTF8.self)
            buffer.removeSubrange(..<end.upperBound)
            let lines = head.split(separator: "\r\n")
            let requestLine = lines.first?.split(separator: " ") ?? []
            var headers: [String: String] = [:]
            for line in lines.dropFirst() {
                if let colon = line.firstIndex(of: ":") {
                    headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
            }
            if headers["expect"]?.lowercased() == "100-continue" {
                _ = send(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25, Int32(MSG_NOSIGNAL))
            }
            let length = Int(headers["content-length"] ?? "0") ?? 0
            while buffer.count < length { guard fill() else { return } }
            let body = Array(buffer[..<length])
            buffer.removeSubrange(..<length)
            let request = Request(
                method: requestLine.first.map(String.init) ?? "", path: requestLine.dropFirst().first.map(String.init) ?? "",
                headers: headers, headerLines: lines.dropFirst().map(String.init), body: body, at: Date())
            let response = state.withLock { s -> Response in
                s.requests.append(request)
                return s.script.isEmpty ? Response(status: 200) : s.script.removeFirst()
            }
            if hang {
                while !stopping.load(ordering: .acquiring), hang { usleep(10_000) }
                return
            }
            var text = "HTTP/1.1 \(response.status) Scripted\r\nContent-Length: \(response.body.utf8.count)\r\n"
            for (name, value) in response.headers { text += "\(name): \(value)\r\n" }
            text += "\r\n" + response.body
            let bytes = Array(text.utf8)
            _ = send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL))
        }
    }
}
