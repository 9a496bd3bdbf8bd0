import Foundation
import Testing
@testable import StatorCore

@Test func theTerminalScreenShowsTheTablesWithoutControlCharacters() throws {
    let json = """
        {"window_seconds":300,"names_by_lines":[{"name":"api.hits","lines":30,"series":3,"types":["counter"],"tag_keys":[]},\
        {"name":"evil\\u001b]0;owned\\u0007name","lines":1,"series":1,"types":["gauge"],"tag_keys":[]}],\
        "tag_keys":[{"key":"host","distinct_values":3,"top_values":[{"value":"h0","series":2}]}],\
        "refused":[{"reason":"missing_colon","total":4,"samples":[{"line":"no colon"}]}],\
        "history":[{"time":1,"lines_per_second":12.4,"drops_per_second":0}],\
        "sinks":[{"name":"prometheus","last_success_seconds_ago":1.2,"queued":0,"errors":0}]}
        """
    let answer = try JSONValue.parse(Data(json.utf8), source: "test")
    #expect(
        TopClient.screen(answer, address: "127.0.0.1:9102", width: 80, height: 40) == [
            "stator top  127.0.0.1:9102  window 300 s  (q to quit)",
            "lines/s 12  kernel drops/s 0",
            "",
            "NAME                                  LINES   SERIES TYPES",
            "api.hits                                 30        3 counter",
            "evil?]0;owned?name                        1        1 gauge",
            "",
            "TAG KEY                    DISTINCT TOP VALUES",
            "host                              3 h0 (2)",
            "",
            "REFUSED                       TOTAL LAST LINE",
            "missing_colon                     4 no colon",
            "",
            "SINK                       LAST SUCCESS   QUEUED   ERRORS",
            "prometheus                      1 s ago        0        0",
        ])
    // Cut to the terminal.
    #expect(TopClient.screen(answer, address: "a", width: 10, height: 2) == ["stator top", "lines/s 12"])
}

/// Bidirectional formatting characters would reorder or disguise a row: shown as `?`.
@Test func bidirectionalFormattingCharactersAreShownAsQuestionMarks() {
    #expect(TopClient.printable("a\u{202E}gnp.exe\u{2066}b\u{200F}c\u{061C}d") == "a?gnp.exe?b?c?d")
    #expect(TopClient.printable("café ✓ 名前") == "café ✓ 名前")
}

/// A server on a loopback port that answers each connection with a 200 head and then
/// `chunk` every `pause` seconds for `seconds`: a slow or endless agent.
private func endlessServer(chunk: Int, pause: Double, seconds: Double) throws -> SocketAddress {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    listen(fd, 4)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    let port = Int(UInt16(bigEndian: address.sin_port))
    Thread.detachNewThread {
        let client = accept(fd, nil, nil)
        close(fd)
        var request = [UInt8](repeating: 0, count: 4096)
        _ = recv(client, &request, request.count, 0)
        let head = Array("HTTP/1.1 200 OK\r\n\r\n".utf8)
        _ = send(client, head, head.count, Int32(MSG_NOSIGNAL))
        let body = [UInt8](repeating: UInt8(ascii: " "), count: chunk)
        let end = WallClock.monotonicSeconds() + seconds
        while WallClock.monotonicSeconds() < end, send(client, body, body.count, Int32(MSG_NOSIGNAL)) == body.count {
            if pause > 0 { Thread.sleep(forTimeInterval: pause) }
        }
        close(client)
    }
    return try SocketAddress(parsing: "127.0.0.1:\(port)")
}

@Test func aTricklingAgentDoesNotHoldTheClientPastItsTimeout() throws {
    let address = try endlessServer(chunk: 1, pause: 0.2, seconds: 8)
    let start = WallClock.monotonicSeconds()
    #expect((try? TopClient.get("/api/v1/top", from: address, timeout: 1))?.count == nil)
    #expect(WallClock.monotonicSeconds() - start < 3)
}

@Test func anEndlessAnswerIsRefusedPastItsBound() throws {
    // 32 MB at most within the timeout: past the client's bound, short of hurting the host.
    let address = try endlessServer(chunk: 1 << 20, pause: 0.03, seconds: 1)
    // The length only: a failure must not print 32 MB.
    #expect((try? TopClient.get("/api/v1/top", from: address, timeout: 10))?.count == nil)
}
