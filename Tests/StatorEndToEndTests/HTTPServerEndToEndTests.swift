import Foundation
import Glibc
import Testing

// The HTTP server under abuse that once cost a well-behaved client its answer (issue 18):
// a slow reader of a big page, a flood of connections at the cap, accept failing with EMFILE,
// and requests whose framing two parsers could read differently.

/// A connected TCP socket to the agent's HTTP port, with a small receive buffer.
private func connectHTTP(_ port: UInt16, receiveBuffer: Int32? = nil) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket failed") }
    if var size = receiveBuffer { setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, 4) }
    var tv = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    let rc = withSocketAddress("127.0.0.1", port) { connect(fd, $0, $1) }
    guard rc == 0 else {
        close(fd)
        throw TestFailure("connect failed: \(String(cString: strerror(errno)))")
    }
    return fd
}

private func sendText(_ fd: Int32, _ text: String) {
    let bytes = Array(text.utf8)
    _ = send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL))
}

/// Reads until the server closes the connection.
private func readAll(_ fd: Int32) -> [UInt8] {
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        received.append(contentsOf: buffer[0..<n])
    }
    return received
}

extension HeavyEndToEndTests {
    // Plain pass only: its point is a page bigger than the kernel's send buffer, and a
    // sanitized agent takes 20 s to take in those 35,000 counters (the release build 0.3 s).
    // The write deadline has no race of its own for the sanitizers to find; the HTTP
    // server's concurrent paths run under them in the other HTTP tests.
    @Test(.enabled(if: !TestBuild.isSanitized, "a page over the send buffer: plain pass only"))
    func aSlowReaderOfABigPageIsServedWholeWhileBytesFlow() throws {
        // read_timeout 1 s; the page (35,000 counters, about 6.5 MB: more than the kernel's 4 MiB
        // send buffer holds) is read 32 kB every 20 ms, so writing it takes about four seconds:
        // longer than the timeout, with bytes flowing all along (though poll may not report room
        // for a while). The lines go over TCP: a loaded machine can drop UDP datagrams, and a page
        // short of counters would look like a page cut short.
        let agent = try StatorProcess(
            agent: [
                "--flush_interval", "100ms", "--sinks.json.path", "", "--http.read_timeout", "1s",
                "--tcp.address", "127.0.0.1:0",
            ])
        let client = try TCPClient(port: agent.tcpPort)
        try client.send((0..<35_000).map { "slow.reader.counter.number.\($0):1|c\n" }.joined())
        // The release agent shows them within 0.3 s; 60 s is room for any machine.
        _ = try scrape(agent, timeout: 60, until: "every counter on the page") {
            sample($0, #"stator_lines_received_total{input="tcp"}"#) == 35_000
                && $0.contains("slow_reader_counter_number_34999_total 1")
        }
        let fd = try connectHTTP(agent.httpPort, receiveBuffer: 32768)
        defer { close(fd) }
        sendText(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let started = Date()
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 32768)
        var longestWait = 0.0
        var ending = ""
        while true {
            let asked = Date()
            let n = recv(fd, &buffer, buffer.count, 0)
            longestWait = max(longestWait, Date().timeIntervalSince(asked))
            if n <= 0 {
                ending = n == 0 ? "closed by the server" : "recv failed: \(String(cString: strerror(errno)))"
                break
            }
            bytes.append(contentsOf: buffer[0..<n])
            usleep(20_000)
        }
        let page = String(decoding: bytes, as: UTF8.self)
        let elapsed = Date().timeIntervalSince(started)
        let story = "\(bytes.count) bytes in \(elapsed) s, \(ending), longest wait for bytes \(longestWait) s"
        #expect(elapsed > 2, "too fast to test the write deadline: \(story)")
        #expect(page.hasPrefix("HTTP/1.1 200"), "\(story)")
        let counters = page.split(separator: "\n").filter { $0.hasPrefix("slow_reader_counter_number_") && $0.hasSuffix("_total 1") }
        #expect(counters.count == 35_000, "\(story)")
        let lastPartArrived = page.contains("# TYPE process_open_fds gauge")
        #expect(lastPartArrived, "\(story)")
        #expect(try selfMetric(agent, #"stator_http_connections_closed_total{reason="write_timeout"}"#) == 0)
        #expect(try agent.stop() == 0)
    }
}

@Test func aFloodAtTheCapDoesNotEvictAScraperMidRequest() throws {
    let agent = try StatorProcess(agent: ["--sinks.json.path", "", "--http.max_connections", "4"])
    let scraper = try connectHTTP(agent.httpPort)
    defer { close(scraper) }
    sendText(scraper, "GET /metrics HTTP/1.1\r\nHost: x\r\n")  // the head's first half
    // A barrier, not a sleep: the server answers this only in a round after it has read the
    // scraper's first bytes (connections are served in order), however slow the agent.
    #expect(try httpRequest(port: agent.httpPort, "/healthz").status == 200)
    var flood: [Int32] = []
    defer { for fd in flood { close(fd) } }
    for _ in 0..<20 { flood.append(try connectHTTP(agent.httpPort)) }
    usleep(100_000)
    sendText(scraper, "Connection: close\r\n\r\n")
    let reply = String(decoding: readAll(scraper), as: UTF8.self)
    #expect(reply.hasPrefix("HTTP/1.1 200"), "\(reply.prefix(200))")
    #expect(reply.contains("stator_lines_received_total"))
    // The scraper kept its place; the flood's 17 oldest made room for the newest. (A check
    // makes a fourth connection, which takes the scraper's place: no eviction.)
    try eventually("the evictions counted") {
        try selfMetric(agent, #"stator_http_connections_closed_total{reason="evicted"}"#) == 17
    }
    #expect(try selfMetric(agent, #"stator_http_connections_closed_total{reason="too_many_connections"}"#) == 0)
    #expect(try agent.stop() == 0)
}

@Test func requestsWithAmbiguousFramingGet400AndAClose() throws {
    let agent = try StatorProcess(agent: ["--sinks.json.path", ""])
    for request in [
        "GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nX Y: z\r\n\r\n",
    ] {
        let exchange = try rawHTTPExchange(port: agent.httpPort, request + "GET /healthz HTTP/1.1\r\n\r\n")
        let reply = String(decoding: exchange.bytes, as: UTF8.self)
        #expect(reply.hasPrefix("HTTP/1.1 400"), "\(reply.prefix(100))")
        #expect(!reply.contains("200"))  // closed after the 400: the pipelined request is not answered
        #expect(exchange.ending.hasPrefix("closed by the server"))
    }
    #expect(try selfMetric(agent, #"stator_http_connections_closed_total{reason="bad_request"}"#) == 3)
    #expect(try agent.stop() == 0)
}

@Test func slowIdleAndOversizedClientsAreClosedAndCountedByReason() throws {
    let agent = try StatorProcess(
        agent: ["--sinks.json.path", "", "--http.read_timeout", "300ms", "--http.idle_timeout", "300ms"])
    /// Waits for the server to close a connection (recv returns 0 or fails), reading what it sends.
    func closedByServer(_ fd: Int32) -> Bool {
        _ = readAll(fd)  // ends at the close, or at the socket's 5 s receive timeout
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_DONTWAIT)) == 0
    }
    let trickler = try connectHTTP(agent.httpPort)
    defer { close(trickler) }
    sendText(trickler, "GET /metrics HTTP/1.1\r\nHost")  // and no more
    #expect(closedByServer(trickler))
    let silent = try connectHTTP(agent.httpPort)
    defer { close(silent) }
    #expect(closedByServer(silent))
    let oversized = try connectHTTP(agent.httpPort)
    defer { close(oversized) }
    sendText(oversized, "GET /metrics HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 10_000) + "\r\n\r\n")
    #expect(String(decoding: readAll(oversized), as: UTF8.self).hasPrefix("HTTP/1.1 431"))
    func closed(_ reason: String) throws -> Double {
        try selfMetric(agent, "stator_http_connections_closed_total{reason=\"\(reason)\"}")
    }
    #expect(try closed("read_timeout") == 1)
    #expect(try closed("idle_timeout") == 1)
    #expect(try closed("head_too_large") == 1)
    #expect(try closed("write_timeout") == 0)
    // Logged at most once a minute, idle closes never: the read timeout; the 431 held back.
    let log = agent.stderr.text
    #expect(log.components(separatedBy: "HTTP connection closed").count == 2, "\(log.suffix(2000))")
    #expect(log.contains(#""reason":"read_timeout""#))
    #expect(try agent.stop() == 0)
}

@Test func acceptFailingWithEMFILEBacksOffLogsOnceAndKeepsServing() throws {
    // 48 descriptors: the agent's own use, then a few connections, and accept fails.
    let agent = try StatorProcess(
        executable: "/usr/bin/prlimit",
        ["--nofile=48", try statorBinary(), "--udp.address", "127.0.0.1:0", "--http.address", "127.0.0.1:0",
            "--sinks.json.path", "", "--http.max_connections", "200"])
    var open: [Int32] = []
    defer { for fd in open { close(fd) } }
    for _ in 0..<60 { if let fd = try? connectHTTP(agent.httpPort) { open.append(fd) } }
    _ = try agent.waitFor(timeout: 5) { $0.contains("accept failed") ? true : nil }
    // While the backlog holds connections it cannot take, the server thread must not spin.
    let before = try agent.cpuTicks()
    usleep(1_000_000)
    let used = try agent.cpuTicks() - before
    #expect(used < 30, "\(used) ticks of CPU in one second")  // a spinning loop takes ~100
    // The connections it holds are served, and new ones once descriptors are free again.
    for fd in open.prefix(5) { sendText(fd, "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n") }
    for fd in open.prefix(5) { #expect(String(decoding: readAll(fd), as: UTF8.self).hasPrefix("HTTP/1.1 200")) }
    for fd in open { close(fd) }
    open = []
    try eventually("a new connection served") { (try? httpRequest(port: agent.httpPort, "/healthz").status) == 200 }
    #expect(agent.stderr.text.components(separatedBy: "accept failed").count == 2)  // logged once
    #expect(try selfMetric(agent, #"stator_accept_failures_total{listener="http",reason="emfile"}"#) >= 1)
    #expect(try agent.stop() == 0)
}
