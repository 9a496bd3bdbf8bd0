import Foundation
import Glibc
import Testing

// The TCP input, driven with raw socket calls: they send what etsy statsd's, statsd_exporter's
// and the Python `statsd` package's TCP clients send (newline-ended lines on one connection).

/// A blocking TCP connection to the agent's TCP input.
final class TCPClient {
    private(set) var fd: Int32

    /// - Parameter resetOnClose: close with a reset (`SO_LINGER` 0) instead of a FIN, so the
    ///   test's side keeps no TIME_WAIT socket: thousands of those would fill the loopback's
    ///   ephemeral ports for every other test running alongside.
    init(port: UInt16, resetOnClose: Bool = false) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: \(String(cString: strerror(errno)))") }
        if resetOnClose {
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        }
        let rc = withSocketAddress("127.0.0.1", port) { connect(fd, $0, $1) }
        guard rc == 0 else { throw TestFailure("connect: \(String(cString: strerror(errno)))") }
    }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw TestFailure("send: \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// Whether the agent closed the connection (a read returns end of file within `timeout`).
    func isClosedByPeer(timeout: Double = 5) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, Int32(timeout * 1000)) == 1 else { return false }
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0) <= 0
    }

    /// Closes the connection now (once: a second close could hit a descriptor another test
    /// opened since).
    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    deinit { close() }
}

private func tcpAgent(_ dir: TemporaryDirectory, _ flags: [String] = []) throws -> (StatorProcess, String) {
    let out = dir.file("out.json")
    let agent = try StatorProcess(agent: [
        "--tcp.address", "127.0.0.1:0", "--flush_interval", untilShutdown, "--sinks.json.path", out,
    ] + flags)
    return (agent, out)
}

@Test func tcpLinesSpanReadsAndALongLineIsSkippedWithTheConnectionKept() throws {
    let dir = try TemporaryDirectory()
    let (agent, out) = try tcpAgent(dir, ["--tcp.max_line_bytes", "1024"])
    let client = try TCPClient(port: agent.tcpPort)
    try client.send("tcp.a:1|c\ntcp.b:2|c|#via:tcp\ntcp.spl")
    try eventually("the first lines") { try selfMetric(agent, #"stator_lines_received_total{input="tcp"}"#) == 2 }
    // The rest of a line cut between reads; a 10 MB line (skipped up to its newline, counted
    // once); the connection goes on.
    try client.send("it:3|c\n" + String(repeating: "x", count: 10_000_000) + "\ntcp.after:1|c\nbad line\n")
    try eventually("the lines after the long one") {
        try selfMetric(agent, #"stator_lines_received_total{input="tcp"}"#) == 6
    }
    #expect(try selfMetric(agent, #"stator_lines_invalid_total{input="tcp",reason="line_too_long"}"#) == 1)
    #expect(try selfMetric(agent, #"stator_lines_invalid_total{input="tcp",reason="missing_colon"}"#) == 1)
    #expect(try selfMetric(agent, "stator_tcp_connections") == 1)
    // A last line without its newline counts when the client closes.
    try client.send("tcp.last:5|c")
    client.close()
    try eventually("the last line") { try selfMetric(agent, #"stator_lines_received_total{input="tcp"}"#) == 7 }
    try eventually("the connection gone") { try selfMetric(agent, "stator_tcp_connections") == 0 }
    #expect(try agent.stop() == 0)
    #expect(try counterSum(out, "tcp.a") == 1)
    #expect(try counterSum(out, "tcp.b") == 2)
    #expect(try counterSum(out, "tcp.split") == 3)
    #expect(try counterSum(out, "tcp.after") == 1)
    #expect(try counterSum(out, "tcp.last") == 5)
}

@Test func aConnectionFloodPastTheCapLeavesTheEstablishedOnesAlone() throws {
    let dir = try TemporaryDirectory()
    let (agent, out) = try tcpAgent(dir, ["--tcp.max_connections", "8"])
    let kept = try (0..<8).map { _ in try TCPClient(port: agent.tcpPort) }
    try eventually("eight connections") { try selfMetric(agent, "stator_tcp_connections") == 8 }
    // Past the cap each newcomer is closed at once.
    let refused = try (0..<20).map { _ in try TCPClient(port: agent.tcpPort) }
    for c in refused { #expect(c.isClosedByPeer()) }
    for (n, c) in kept.enumerated() { try c.send("kept.\(n):1|c\n") }
    try eventually("the kept connections' lines") { try selfMetric(agent, #"stator_lines_received_total{input="tcp"}"#) == 8 }
    #expect(try selfMetric(agent, "stator_tcp_connections") == 8)
    #expect(try agent.stop() == 0)
    for n in 0..<8 { #expect(try counterSum(out, "kept.\(n)") == 1) }
}

@Test func tcpAcceptFailingWithEMFILEBacksOffLogsOnceAndServesAgain() throws {
    // 48 descriptors: the agent's own use, then a few connections, and accept fails.
    let dir = try TemporaryDirectory()
    let out = dir.file("out.json")
    let agent = try StatorProcess(
        executable: "/usr/bin/prlimit",
        ["--nofile=48", try statorBinary(), "--udp.address", "127.0.0.1:0", "--http.address", "127.0.0.1:0",
            "--tcp.address", "127.0.0.1:0", "--flush_interval", untilShutdown, "--sinks.json.path", out])
    var open = try (0..<60).map { _ in try TCPClient(port: agent.tcpPort) }  // the kernel's backlog takes them all
    _ = try agent.waitFor(timeout: 5) { $0.contains("accept failed") ? true : nil }
    // While the backlog holds connections it cannot take, the TCP thread must not spin.
    let before = try agent.cpuTicks()
    usleep(1_000_000)
    let used = try agent.cpuTicks() - before
    #expect(used < 30, "\(used) ticks of CPU in one second")  // a spinning loop takes ~100
    // The accepted connections are served meanwhile (the first one was accepted before it ran
    // out; /metrics cannot be read meanwhile: the HTTP server has no descriptor either).
    try open[0].send("emfile.held:1|c\n")
    // Once descriptors are free, the waiting and new connections are served.
    for c in open { c.close() }
    open = []
    let late = try TCPClient(port: agent.tcpPort)
    try late.send("emfile.late:1|c\n")
    try eventually("a new connection's line") { try selfMetric(agent, #"stator_lines_received_total{input="tcp"}"#) == 2 }
    #expect(try selfMetric(agent, #"stator_accept_failures_total{listener="tcp",reason="emfile"}"#) >= 1)
    // Logged once for TCP (the HTTP server, out of descriptors too when a scrape came, logs its own).
    let log = agent.stderr.text
    let failures = log.split(separator: "\n").filter { $0.contains("accept failed") && $0.contains(#""listener":"tcp""#) }
    #expect(failures.count == 1, "\(log.suffix(2000))")
    late.close()
    #expect(try agent.stop() == 0)
    #expect(try counterSum(out, "emfile.held") == 1)
    #expect(try counterSum(out, "emfile.late") == 1)
}

@Test func idleTCPConnectionsAreClosedAfterTheIdleTimeout() throws {
    let dir = try TemporaryDirectory()
    let (agent, _) = try tcpAgent(dir, ["--tcp.idle_timeout", "1s"])
    let idle = try TCPClient(port: agent.tcpPort)
    try idle.send("half a li")  // a half line, then nothing: a slowloris
    #expect(idle.isClosedByPeer(timeout: 10))
    try eventually("no connection left") { try selfMetric(agent, "stator_tcp_connections") == 0 }
    // The half line counted when the agent closed the connection.
    #expect(try selfMetric(agent, #"stator_lines_invalid_total{input="tcp",reason="missing_colon"}"#) == 1)
    #expect(try agent.stop() == 0)
}

extension HeavyEndToEndTests {
    // Budget: 2.0 s plain with one core busy, 0.6 s under TSan at a tenth of the sizes (2026-12-07); its waits
    // are 60 s.
    @Test func tcpAbuseLeavesANormalClientExactAndMemoryBounded() throws {
        let dir = try TemporaryDirectory()
        let (agent, out) = try tcpAgent(dir, ["--tcp.max_connections", "1100"])
        let rss0 = try selfMetric(agent, "process_resident_memory_bytes")
        var expected = 0.0
        func normalClient() throws {
            let c = try TCPClient(port: agent.tcpPort)
            try c.send(String(repeating: "normal:1|c\n", count: 100))
            expected += 100
        }
        // Sizes: 10,000 connect/close cycles, 1,000 idle connections and 2 MB of junk in the
        // plain pass; a tenth of each under the sanitizers (a scale test, not a race test).
        let cycles = TestBuild.scaled(10_000)
        let idleCount = TestBuild.scaled(1_000)
        // Connect/close cycles (closed with a reset: see `resetOnClose`).
        for _ in 0..<cycles { _ = try TCPClient(port: agent.tcpPort, resetOnClose: true) }
        try normalClient()
        // Idle connections, each with half a line (bounded per connection).
        let idle = try (0..<idleCount).map { n -> TCPClient in
            let c = try TCPClient(port: agent.tcpPort, resetOnClose: true)
            try c.send("idle.\(n).partial.line.without.its.end")
            return c
        }
        var connections = 0.0
        try eventually(timeout: 60, "\(idleCount) idle connections", seen: "\(connections) connections") {
            connections = try selfMetric(agent, "stator_tcp_connections")
            return connections >= Double(idleCount)
        }
        try normalClient()
        // A binary stream, read to its end once the agent closes it after the client's close.
        var rng = SystemRandomNumberGenerator()
        do {
            let junk = try TCPClient(port: agent.tcpPort)
            try junk.send((0..<TestBuild.scaled(2_000_000)).map { _ in UInt8.random(in: 0...255, using: &rng) })
        }
        try normalClient()
        // Every closed connection was read to its end: only the idle ones remain.
        var open = 0.0
        try eventually(timeout: 60, "the closed connections read", seen: "\(open) connections open") {
            open = try selfMetric(agent, "stator_tcp_connections")
            return open <= Double(idleCount)
        }
        let rss1 = try selfMetric(agent, "process_resident_memory_bytes")
        #expect(rss1 - rss0 < 64e6, "RSS grew by \(rss1 - rss0) bytes")
        withExtendedLifetime(idle) {}
        #expect(try agent.stop() == 0)
        #expect(try counterSum(out, "normal") == expected)
    }
}

@Test func sigtermReadsWhatTCPClientsAlreadySent() throws {
    let dir = try TemporaryDirectory()
    let (agent, out) = try tcpAgent(dir)
    // 5,000 lines a client (500 under the sanitizers: the agent drains its connections for at
    // most 5 s at shutdown, and a sanitized agent sharing a busy core reads slowly).
    let perClient = TestBuild.scaled(5_000)
    let clients = try (0..<4).map { _ in try TCPClient(port: agent.tcpPort) }
    for c in clients { try c.send(String(repeating: "final:1|c\n", count: perClient) + "final:1|c") }
    #expect(try agent.stop() == 0)
    #expect(try counterSum(out, "final") == Double(4 * (perClient + 1)))
}

@Test func statorSendReachesTheUnixAndTCPInputs() throws {
    let dir = try TemporaryDirectory()
    let path = dir.file("stator.sock")
    let out = dir.file("out.json")
    let agent = try StatorProcess(agent: [
        "--tcp.address", "127.0.0.1:0", "--unixgram.path", path, "--flush_interval", untilShutdown, "--sinks.json.path", out,
    ])
    let binary = try statorBinary()
    let (unixStatus, unixOutput) = try runProgram(binary, ["send", "--unix", path, "via.unix:2|c", "bad"])
    #expect(unixStatus == 1, "\(unixOutput)")  // one line was invalid, the other sent
    let (tcpStatus, tcpOutput) = try runProgram(
        binary, ["send", "--tcp", "--tcp.address", "127.0.0.1:\(agent.tcpPort)", "via.tcp:3|c", "via.tcp:4|c"])
    #expect(tcpStatus == 0, "\(tcpOutput)")
    try eventually("both inputs' lines") {
        try selfMetric(agent, #"stator_lines_received_total{input="unixgram"}"#) == 1
            && selfMetric(agent, #"stator_lines_received_total{input="tcp"}"#) == 2
    }
    #expect(try agent.stop() == 0)
    #expect(try counterSum(out, "via.unix") == 2)
    #expect(try counterSum(out, "via.tcp") == 7)
    let (noAddress, message) = try runProgram(binary, ["send", "--tcp", "x:1|c"])
    #expect(noAddress == 2)
    #expect(message.contains("stator send --tcp needs tcp.address"))
}
