import Foundation
import Glibc
import Testing

/// Looks up the JSON line of one series.
private func series(_ lines: [[String: Any]], _ name: String, _ type: String) -> [String: Any]? {
    lines.first { $0["name"] as? String == name && $0["type"] as? String == type }
}

// On the debug build: every metric type through the real readers, aggregator and flush,
// with the hot path's assertions on.
@Test(.tags(.debugAssertions)) func aggregatesUDPAndFlushesThePartialIntervalOnSIGTERM() throws {
    let dir = try TemporaryDirectory()
    let out = dir.file("out.json")
    // A long interval: the only batch is the one written at shutdown.
    let agent = try StatorProcess(agent: ["--flush_interval", untilShutdown, "--sinks.json.path", out], build: .debug)
    let started = Date()
    try agent.send([
        "api.requests:1|c|#env:prod\napi.requests:2|c|@0.5|#env:prod\nnot a line\napi.latency:10:20|ms|#env:prod",
        "api.latency:30|ms|#env:prod\r\napi.latency:40|ms|@0.5|#env:prod\n\n",
        "temp:20|g\ntemp:+1.5|g\nusers:alice|s\nusers:bob|s\nusers:alice|s\n_e{1,1}:a|b",
        "multi:1|c:250|ms\nsized:3|h\nsized:4|d\nv:-1|c\nv:1|x",
    ])
    #expect(try agent.stop() == 0)
    let elapsed = Date().timeIntervalSince(started)
    let lines = try jsonLines(readFile(out))
    #expect(lines.count == 9)  // eight series and the event (SPEC section 15)
    #expect(lines.filter { $0["type"] as? String == "event" }.map { "\($0["title"] ?? ""):\($0["text"] ?? "")" } == ["a:b"])

    let requests = try #require(series(lines, "api.requests", "counter"))
    #expect(requests["value"] as? Double == 5)
    #expect(requests["tags"] as? [String: String] == ["env": "prod"])
    let latency = try #require(series(lines, "api.latency", "timer"))
    #expect(latency["count"] as? Double == 5)
    #expect(latency["samples"] as? Double == 4)
    #expect(latency["sum"] as? Double == 100)
    #expect(latency["min"] as? Double == 10)
    #expect(latency["max"] as? Double == 40)
    #expect(latency["mean"] as? Double == 25)
    #expect(latency["median"] as? Double == 25)
    #expect(latency["p90"] as? Double == 40)
    #expect(latency["p95"] as? Double == 40)
    #expect(latency["p99"] as? Double == 40)
    #expect(series(lines, "temp", "gauge")?["value"] as? Double == 21.5)
    #expect(series(lines, "users", "set")?["value"] as? Double == 2)
    #expect(series(lines, "multi", "counter")?["value"] as? Double == 1)
    #expect(series(lines, "multi", "timer")?["sum"] as? Double == 250)
    #expect(series(lines, "sized", "histogram")?["sum"] as? Double == 3)
    #expect(series(lines, "sized", "distribution")?["sum"] as? Double == 4)

    // The last batch's interval is the real time since start, and its ts is the shutdown time.
    let interval = try #require(lines.first?["interval"] as? Double)
    #expect(interval > 0 && interval <= elapsed + 0.5)
    let ts = try #require(lines.first?["ts"] as? String)
    #expect(ts.hasSuffix("Z") && ts.count == 24)
    #expect(Set(lines.compactMap { $0["ts"] as? String }).count == 1)
    #expect(agent.stderr.text.contains("\"msg\":\"invalid line dropped\""))
}

@Test func sigintAlsoFlushesAndExitsZero() throws {
    let agent = try StatorProcess(agent: ["--flush_interval", untilShutdown])
    try agent.send("ints:7|c")
    agent.signal(SIGINT)
    #expect(try agent.waitForExit() == 0)
    // Default sink: JSON lines on standard output.
    let lines = try jsonLines(agent.stdout.text)
    #expect(series(lines, "ints", "counter")?["value"] as? Double == 7)
}

@Test func metricsEndpointCountsLinesLive() throws {
    let agent = try StatorProcess(agent: ["--flush_interval", untilShutdown, "--sinks.json.path", ""])
    try agent.send([
        "a:1|c\nb:2|ms\nbad\nc:x|c\n_sc|check|0",
        "d:1|c|#k:v|#k:w\ne:-1|c\nf:1|zz",
    ])
    let counts = [
        "stator_lines_received_total": 8.0, "stator_packets_received_total": 2, "stator_events_received_total": 1,
        "stator_events_total{kind=\"service_check\"}": 1, "stator_events_total{kind=\"event\"}": 0,
        "stator_lines_invalid_total{reason=\"missing_colon\"}": 1,
        "stator_lines_invalid_total{reason=\"invalid_value\"}": 1,
        "stator_lines_invalid_total{reason=\"invalid_field\"}": 1,
        "stator_lines_invalid_total{reason=\"negative_counter\"}": 1,
        "stator_lines_invalid_total{reason=\"unknown_type\"}": 1,
    ]
    // The reader adds a batch's counts one counter at a time and a scrape reads them one at a
    // time, so a page may show some of them before others: wait until every one shows.
    let page = try scrape(agent, until: "every count shown") { page in counts.allSatisfy { sample(page, $0.key) == $0.value } }
    for (name, value) in counts { #expect(sample(page, name) == value, "\(name)") }
    #expect(sample(page, "stator_series_active") == 2)
    #expect(sample(page, "stator_udp_kernel_drops_total") == 0)
    #expect(sample(page, "stator_flushes_total") == 0)
    #expect((sample(page, "process_resident_memory_bytes") ?? 0) > 1_000_000)
    #expect((sample(page, "process_open_fds") ?? 0) > 3)
    #expect(page.contains("# TYPE stator_lines_invalid_total counter"))

    let metrics = try httpRequest(port: agent.httpPort, "/metrics")
    #expect(metrics.status == 200)
    #expect(metrics.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
    let health = try httpRequest(port: agent.httpPort, "/healthz")
    #expect(health.status == 200)
    #expect(health.body == "ok\n")
    let head = try httpRequest(port: agent.httpPort, "/metrics", method: "HEAD")
    #expect(head.status == 200)
    #expect(head.body.isEmpty)
    #expect(Int(head.headers["content-length"] ?? "") ?? 0 > 0)
    #expect(try httpRequest(port: agent.httpPort, "/nope").status == 404)
    let post = try httpRequest(port: agent.httpPort, "/metrics", method: "POST")
    #expect(post.status == 405)
    #expect(post.headers["allow"] == "GET, HEAD")
    #expect(try agent.stop() == 0)
}

@Test func keepAliveAndPipelinedRequests() throws {
    let agent = try StatorProcess(agent: ["--sinks.json.path", ""])
    let reply = try rawHTTP(
        port: agent.httpPort,
        "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /nope HTTP/1.1\r\nConnection: close\r\n\r\n"
    )
    #expect(reply.components(separatedBy: "HTTP/1.1 200 OK").count == 3)
    #expect(reply.contains("HTTP/1.1 404 Not Found"))
    #expect(reply.hasSuffix("not found\n"))
    #expect(try agent.stop() == 0)
}

@Test func httpRejectsOversizedAndGarbageRequests() throws {
    let agent = try StatorProcess(agent: ["--sinks.json.path", ""])
    let big = try rawHTTP(port: agent.httpPort, "GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 9000) + "\r\n\r\n")
    #expect(big.hasPrefix("HTTP/1.1 431 "))
    let garbage = try rawHTTP(port: agent.httpPort, "\u{1}\u{2}\u{3} nonsense\r\n\r\n")
    #expect(garbage.hasPrefix("HTTP/1.1 400 "))
    // Still serving afterwards.
    #expect(try httpRequest(port: agent.httpPort, "/healthz").status == 200)
    #expect(try agent.stop() == 0)
}

@Test func httpClosesSilentClientsAfterTheReadTimeout() throws {
    let agent = try StatorProcess(agent: [
        "--sinks.json.path", "", "--http.read_timeout", "200ms", "--http.idle_timeout", "300ms",
    ])
    let started = Date()
    let reply = try rawHTTP(port: agent.httpPort, "GET /healthz HTTP/1.1\r\nHost: a\r\n", timeout: 5)  // never finishes its head
    #expect(reply.isEmpty)
    #expect(Date().timeIntervalSince(started) < (TestBuild.isSanitized ? 5 : 2))  // not the 10 s idle default
    #expect(try agent.stop() == 0)
}

@Test func idleAndTricklingClientsCannotStarveAScrapeOrUDP() throws {
    let agent = try StatorProcess(agent: [
        "--flush_interval", untilShutdown, "--sinks.json.path", "", "--http.max_connections", "8",
        "--http.read_timeout", "10s",
    ])
    // Twenty connections that never send a thing, and five that trickle a request byte by byte.
    var fds: [Int32] = []
    defer { for fd in fds { close(fd) } }
    for n in 0..<25 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(withSocketAddress("127.0.0.1", agent.httpPort) { connect(fd, $0, $1) } == 0)
        if n >= 20 { _ = send(fd, "GET /met", 8, Int32(MSG_NOSIGNAL)) }
        fds.append(fd)
    }
    try agent.send((0..<100).map { "udp.during.abuse:1|c\nline\($0):1|g" })
    // A normal scrape still gets through promptly, and UDP lost nothing.
    let started = Date()
    let page = try httpRequest(port: agent.httpPort, "/metrics").body
    // Starved, the scrape would wait for the 10 s read timeout; 5 s is room for a sanitized
    // agent sharing a busy core.
    #expect(Date().timeIntervalSince(started) < 5)
    try eventually("all lines counted") {
        sample(try httpRequest(port: agent.httpPort, "/metrics").body, "stator_lines_received_total") == 200
    }
    #expect(page.contains("stator_lines_received_total"))
    #expect(try agent.stop() == 0)
}

@Test func tricklingClientsAreClosedAfterTheReadTimeout() throws {
    let agent = try StatorProcess(agent: ["--sinks.json.path", "", "--http.read_timeout", "300ms"])
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    #expect(withSocketAddress("127.0.0.1", agent.httpPort) { connect(fd, $0, $1) } == 0)
    let started = Date()
    var closedAfter: Double?
    for byte in Array("GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".utf8) {
        var b = byte
        if send(fd, &b, 1, Int32(MSG_NOSIGNAL)) != 1 {
            closedAfter = Date().timeIntervalSince(started)
            break
        }
        usleep(50_000)  // one byte every 50 ms: the whole head would take ~4 s
    }
    let elapsed = closedAfter ?? Date().timeIntervalSince(started)
    #expect(closedAfter != nil, "the trickling connection was never closed")
    #expect(elapsed < (TestBuild.isSanitized ? 5 : 2))
    #expect(try agent.stop() == 0)
}

@Test func flushesAtWallClockMultiplesOfTheInterval() throws {
    let dir = try TemporaryDirectory()
    let out = dir.file("out.json")
    let agent = try StatorProcess(agent: ["--flush_interval", "200ms", "--sinks.json.path", out])
    try agent.send("tick:1|c")
    try eventually("a first batch") { readFile(out).contains("tick") }
    try agent.send("tick:1|c")
    try eventually("a second batch") { readFile(out).split(separator: "\n").count >= 2 }
    #expect(try agent.stop() == 0)
    let lines = try jsonLines(readFile(out)).filter { $0["name"] as? String == "tick" }
    #expect(lines.count >= 2)
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    for line in lines.prefix(2) {
        let ts = try #require(formatter.date(from: line["ts"] as? String ?? ""))
        let millis = Int64((ts.timeIntervalSince1970 * 1000).rounded())
        #expect(millis % 200 == 0, "ts \(line["ts"] ?? "") is not on a 200 ms boundary")
    }
    // A batch after the first covers whole intervals since the previous one (one, or more when
    // a loaded machine woke the flusher after the next boundary had already passed), measured
    // on the monotonic clock: each flush's own lateness (a few ms) moves it a little.
    let interval = try #require(lines[1]["interval"] as? Double)
    let whole = (interval / 0.2).rounded()
    #expect(whole >= 1 && abs(interval - whole * 0.2) <= (TestBuild.isSanitized ? 0.15 : 0.05), "interval \(interval)")
    #expect(lines.reduce(0) { $0 + ($1["value"] as? Double ?? 0) } == 2)
}

@Test func sighupReopensTheOutputFile() throws {
    let dir = try TemporaryDirectory()
    let out = dir.file("out.json")
    let agent = try StatorProcess(agent: ["--flush_interval", "100ms", "--sinks.json.path", out])
    try agent.send("before:1|c")
    try eventually("the first line") { readFile(out).contains("before") }
    try FileManager.default.moveItem(atPath: out, toPath: out + ".old")
    agent.signal(SIGHUP)
    try agent.waitFor(timeout: 5) { $0.contains("reopening sink files") ? true : nil }
    // The log line comes before the sink takes the request: wait for the new file, which the
    // next flush opens, so that "after" cannot go to the old one.
    try eventually(timeout: 30, "the new file") { FileManager.default.fileExists(atPath: out) }
    try agent.send("after:1|c")
    try eventually("the reopened file") { readFile(out).contains("after") }
    #expect(try agent.stop() == 0)
    #expect(!readFile(out).contains("before"))
    #expect(!readFile(out + ".old").contains("after"))
}

@Test func rotatesBySizeAndKeepsTheConfiguredNumberOfFiles() throws {
    let dir = try TemporaryDirectory()
    let out = dir.file("out.json")
    let agent = try StatorProcess(agent: [
        "--flush_interval", "50ms", "--sinks.json.path", out,
        "--sinks.json.rotate_bytes", "1", "--sinks.json.keep_files", "2",
    ])
    for n in 1...4 {
        try agent.send("rot\(n):1|c")
        try eventually("batch \(n)") {
            [out, out + ".1", out + ".2"].contains { readFile($0).contains("rot\(n)") }
        }
    }
    #expect(try agent.stop() == 0)
    #expect(readFile(out + ".1").contains("rot4"))
    #expect(readFile(out + ".2").contains("rot3"))
    #expect(!FileManager.default.fileExists(atPath: out + ".3"))
}

@Test func largeDatagramsAreReadWhole() throws {
    let dir = try TemporaryDirectory()
    let out = dir.file("out.json")
    let agent = try StatorProcess(agent: ["--flush_interval", untilShutdown, "--sinks.json.path", out])
    // 60,000 bytes in one datagram: 2,400 lines of one counter.
    let datagram = String(repeating: "big.datagram.counter:1|c\n", count: 2400)
    #expect(datagram.utf8.count == 60_000)
    try agent.send(datagram)
    #expect(try agent.stop() == 0)
    #expect(series(try jsonLines(readFile(out)), "big.datagram.counter", "counter")?["value"] as? Double == 2400)
}

@Test func listensOnIPv6Loopback() throws {
    // Skip only where the kernel has no IPv6 loopback at all.
    let probe = socket(AF_INET6, Int32(SOCK_DGRAM.rawValue), 0)
    let bound = withSocketAddress("::1", 0) { bind(probe, $0, $1) }
    close(probe)
    try #require(bound == 0, "no IPv6 loopback on this machine")
    let agent = try StatorProcess(agent: ["--flush_interval", untilShutdown], udp: "[::1]:0")
    try agent.send("six:6|c")
    #expect(try agent.stop() == 0)
    #expect(series(try jsonLines(agent.stdout.text), "six", "counter")?["value"] as? Double == 6)
}

@Test func warnsOnceWhenTheKernelGrantsASmallerReceiveBuffer() throws {
    // More than the kernel ever grants (it caps at INT_MAX / 2 even with SO_RCVBUFFORCE).
    let agent = try StatorProcess(agent: ["--sinks.json.path", "", "--udp.receive_buffer_bytes", "2147483647"])
    let warnings = agent.stderr.text.split(separator: "\n").filter { $0.contains("smaller UDP receive buffer") }
    #expect(warnings.count == 1)
    #expect(warnings.first?.contains("net.core.rmem_max") == true)
    #expect(try agent.stop() == 0)
}

@Test func kernelDropsAreCountedExactly() throws {
    // A small receive buffer and a stalled reader: while the agent is stopped (SIGSTOP)
    // the socket fills and the kernel drops the rest of a burst.
    let agent = try StatorProcess(
        agent: ["--sinks.json.path", "", "--udp.readers", "1", "--udp.receive_buffer_bytes", "4096"])
    let burst = 2_000
    let datagram = Array("drop.counter:1|c|#pad:\(String(repeating: "x", count: 900))".utf8)
    agent.signal(SIGSTOP)
    try sendUDP(Array(repeating: datagram, count: burst), port: agent.udpPort)
    agent.signal(SIGCONT)
    // Wait until the survivors are read (the count stops moving) ...
    var survivors = -1.0
    try eventually("the burst's survivors are read") {
        let now = try selfMetric(agent, "stator_packets_received_total")
        defer { survivors = now }
        usleep(50_000)
        return now > 0 && now == survivors
    }
    // ... then one more datagram: once it is read, the reader has drained the socket and read
    // the kernel's drop counter after the burst.
    try agent.send("drop.last:1|c")
    try eventually("the last datagram is read") { try selfMetric(agent, "stator_packets_received_total") == survivors + 1 }
    let received = try selfMetric(agent, "stator_packets_received_total")
    let drops = try selfMetric(agent, "stator_udp_kernel_drops_total")
    #expect(drops > 0)
    #expect(received + drops == Double(burst + 1))
    #expect(try agent.stop() == 0)
}

@Test func listeningBeyondLoopbackIsWarnedOnceAtStart() throws {
    let exposed = try StatorProcess(agent: ["--sinks.json.path", ""], udp: "0.0.0.0:0")
    let warning = try exposed.waitFor(timeout: 10) { text in
        text.split(separator: "\n").first { $0.contains("listening beyond loopback") }.map(String.init)
    }
    #expect(warning.contains(#""key":"udp.address""#))
    #expect(warning.contains("write series"))
    #expect(try exposed.stop() == 0)
    #expect(exposed.stderr.text.components(separatedBy: "listening beyond loopback").count == 2)  // once, UDP only
    // TCP takes lines as UDP does; the Unix socket is local (its file mode says who may write).
    let dir = try TemporaryDirectory()
    let tcp = try StatorProcess(agent: [
        "--sinks.json.path", "", "--tcp.address", "0.0.0.0:0", "--unixgram.path", dir.file("stator.sock"),
    ])
    let tcpWarning = try tcp.waitFor(timeout: 10) { text in
        text.split(separator: "\n").first { $0.contains("listening beyond loopback") }.map(String.init)
    }
    #expect(tcpWarning.contains(#""key":"tcp.address""#))
    #expect(tcpWarning.contains("write series"))
    #expect(try tcp.stop() == 0)
    #expect(tcp.stderr.text.components(separatedBy: "listening beyond loopback").count == 2)  // once, TCP only
    let local = try StatorProcess(agent: ["--sinks.json.path", "", "--tcp.address", "127.0.0.1:0"])
    #expect(try local.stop() == 0)
    #expect(!local.stderr.text.contains("listening beyond loopback"))
}
