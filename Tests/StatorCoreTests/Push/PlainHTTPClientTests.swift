import Foundation
import Glibc
import Synchronization
import Testing
@testable import StatorCore

/// A loopback server that answers each request it reads with the next scripted answer, then
/// closes the connection when `closeAfter` says so. Counts the connections it accepted.
private final class ScriptedServer: Sendable {
    let port: UInt16
    private let listener: Int32
    private let answers: [(text: String, closeAfter: Bool)]
    let accepted = Atomic<Int>(0)
    let requests = PthreadLock<[String]>([])

    init(_ answers: [(String, Bool)]) throws {
        self.answers = answers
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, len) == 0 && listen(fd, 8) == 0 && getsockname(fd, $0, &len) == 0
            }
        }
        guard ok else { throw SystemError(errno: errno, call: "bind") }
        listener = fd
        port = UInt16(bigEndian: addr.sin_port)
        let thread = Thread { [self] in serve() }
        thread.start()
    }

    private func serve() {
        var next = 0
        while next < answers.count {
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else { return }
            accepted.add(1, ordering: .relaxed)
            var buffer: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            connection: while next < answers.count {
                // One request: a head, then Content-Length bytes.
                while true {
                    if let end = buffer.firstRange(of: Array("\r\n\r\n".utf8)) {
                        let head = String(decoding: buffer[..<end.lowerBound], as: UTF8.self)
                        let length =
                            head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                            .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                        if buffer.count >= end.upperBound + length {
                            requests.withLock { $0.append(head) }
                            buffer.removeSubrange(..<(end.upperBound + length))
                            break
                        }
                    }
                    let n = recv(fd, &chunk, chunk.count, 0)
                    if n <= 0 { break connection }
                    buffer += chunk[0..<n]
                }
                let (text, closeAfter) = answers[next]
                next += 1
                _ = send(fd, text, text.utf8.count, Int32(MSG_NOSIGNAL))
                if closeAfter { break }
            }
            close(fd)
        }
        close(listener)
    }
}

private func post(_ client: PlainHTTPClient, _ port: UInt16, _ path: String = "/v1/metrics?x=1") -> PushOutcome {
    client.post(
        try! PushTarget(parsing: "http://127.0.0.1:\(port)\(path)"), body: Array("payload".utf8), headers: [("X-Key", "k")],
        timeout: 5, abortAt: { .infinity })
}

@Test func keepsTheConnectionAndReadsChunkedAndSizedAnswers() throws {
    let server = try ScriptedServer([
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3;ext=1\r\nefg\r\n0\r\n\r\n", false),
        ("HTTP/1.1 503 Busy\r\nRetry-After: 7\r\nContent-Length: 4\r\n\r\nbusy", false),
        ("HTTP/1.1 308 Moved\r\nLocation: http://elsewhere/\r\nContent-Length: 0\r\n\r\n", false),
    ])
    let client = PlainHTTPClient()
    #expect(
        post(client, server.port) == .response(status: 200, retryAfter: nil, bodyStart: "abcdefg", body: Array("abcdefg".utf8)))
    #expect(post(client, server.port) == .response(status: 503, retryAfter: 7, bodyStart: "busy"))
    #expect(post(client, server.port) == .response(status: 308, retryAfter: nil, bodyStart: "", location: "http://elsewhere/"))
    #expect(server.accepted.load(ordering: .relaxed) == 1)  // one kept-alive connection
    let head = try #require(server.requests.withLock { $0.first })
    #expect(head.hasPrefix("POST /v1/metrics?x=1 HTTP/1.1\r\nHost: 127.0.0.1:\(server.port)\r\nContent-Length: 7\r\n"))
    #expect(head.contains("\r\nX-Key: k"))
}

@Test func aKeptConnectionTheServerClosedIsReplacedAndTheRequestSentAgain() throws {
    let server = try ScriptedServer([
        ("HTTP/1.1 204 No Content\r\n\r\n", true),  // then closes, without saying so
        ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", true),
    ])
    let client = PlainHTTPClient()
    #expect(post(client, server.port).isSuccess)
    usleep(50_000)  // the close reaches the client's side
    #expect(post(client, server.port) == .response(status: 200, retryAfter: nil, bodyStart: "ok", body: Array("ok".utf8)))
    #expect(server.accepted.load(ordering: .relaxed) == 2)
}

@Test func aRefusedConnectionOrASilentServerIsAFailureInTime() throws {
    let closed = try ScriptedServer([])  // closes its listener at once: nothing listens after
    usleep(20_000)
    guard case .failure = post(PlainHTTPClient(), closed.port) else {
        Issue.record("a refused connection must be a failure")
        return
    }
    // A listener that never accepts: the kernel completes the handshake, nobody answers.
    let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(listener) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(listener, $0, len) == 0 && listen(listener, 8) == 0 && getsockname(listener, $0, &len) == 0
        }
    }
    let started = WallClock.monotonicSeconds()
    let outcome = PlainHTTPClient().post(
        try PushTarget(parsing: "http://127.0.0.1:\(UInt16(bigEndian: addr.sin_port))/"), body: [], headers: [], timeout: 30,
        abortAt: { started + 0.3 })
    #expect(outcome == .failure("abandoned at shutdown"))
    #expect(WallClock.monotonicSeconds() - started < 5)  // the abort time ends the wait, not the timeout
}
