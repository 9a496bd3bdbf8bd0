import Dispatch
import Foundation
import Glibc
import Testing

// Hostile input over the network (issue 6): a cardinality bomb and abusive HTTP clients.

extension HeavyEndToEndTests {
    // On the debug build: the series index filling to its cap, refusing, expiring and
    // compacting, with its assertions on (a probe's hash is the table's hash of the key).
    // Budget: 2.4 s plain with one core busy, 1.5 s under TSan (2026-12-07); each wait is 10-30 s.
    @Test(.tags(.debugAssertions)) func aCardinalityBombIsCappedCountedAndForgotten() throws {
        // The bomb's series must outlive the reading of its 250 datagrams, or early ones expire
        // and later names are admitted: 2 s in the plain pass, 10 s for a sanitized agent
        // (it took over a second to read them under TSan with one core busy).
        let seriesTTL = TestBuild.isSanitized ? "10s" : "2s"
        let dir = try TemporaryDirectory()
        let out = dir.file("out.json")
        let agent = try StatorProcess(
            agent: [
                "--flush_interval", "200ms", "--sinks.json.path", out, "--max_series", "1000", "--series_ttl", seriesTTL,
                "--udp.readers", "1",
            ], build: .debug)
        // Four series exist before the bomb.
        try agent.send(["known.c:1|c", "known.g:5|g", "known.t:10|ms", "known.s:a|s"])
        try eventually("the known series") { try selfMetric(agent, "stator_series_active") == 4 }
        // 5,000 distinct names, 40 lines a datagram, interleaved with more known data.
        for chunk in 0..<125 {
            let lines = (0..<40).map { "bomb.\(chunk * 40 + $0):1|c" }
            try agent.send([lines.joined(separator: "\n"), "known.c:1|c\nknown.t:20|ms"])
        }
        try eventually("every bomb line counted") {
            try selfMetric(agent, "stator_lines_received_total") == 4 + 5_000 + 250
        }
        // 996 bomb series fit under max_series; the other 4,004 lines are refused and counted.
        #expect(try selfMetric(agent, "stator_series_active") == 1000)
        #expect(try selfMetric(agent, #"stator_lines_invalid_total{reason="series_limit"}"#) == 4_004)
        #expect(try selfMetric(agent, "stator_udp_kernel_drops_total") == 0)
        // The existing series kept aggregating, exactly.
        try eventually("the known series flushed") {
            let objects = (try? jsonLines(readFile(out))) ?? []
            let c = objects.filter { $0["name"] as? String == "known.c" }.reduce(0) { $0 + ($1["value"] as? Double ?? 0) }
            let t = objects.filter { $0["name"] as? String == "known.t" }.reduce(0) { $0 + ($1["count"] as? Double ?? 0) }
            return c == 126 && t == 126
        }
        // After series_ttl without data, every series is forgotten and new names are welcome again.
        try eventually(timeout: 30, "the series expire") { try selfMetric(agent, "stator_series_active") == 0 }
        try agent.send((0..<10).map { "after.\($0):1|c" })
        try eventually("new series accepted") { try selfMetric(agent, "stator_series_active") == 10 }
        #expect(try selfMetric(agent, #"stator_lines_invalid_total{reason="series_limit"}"#) == 4_004)
        #expect(try agent.stop() == 0)
    }
}

/// Opens a TCP connection to the agent's HTTP port.
private func connectHTTP(_ agent: StatorProcess) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard withSocketAddress("127.0.0.1", agent.httpPort, { connect(fd, $0, $1) }) == 0 else {
        close(fd)
        throw TestFailure("connect: \(String(cString: strerror(errno)))")
    }
    return fd
}

private func rssBytes(_ pid: Int32) -> Int {
    for line in readFile("/proc/\(pid)/status").split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return (Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0) * 1024
    }
    return 0
}

extension HeavyEndToEndTests {
    // Budget: 4.6 s plain with one core busy, 3.6 s under TSan (2026-12-07), mostly the 20 rounds of 100 ms.
    @Test func httpAbuseLeavesScrapesPromptMemoryBoundedAndUDPWhole() throws {
        // Default HTTP settings (64 connections, 8 KiB heads, 5 s read timeout), and a page
        // big enough (about 300 KB; 30 KB under the sanitizers, which still fills the socket
        // buffers 200 times over) that unread pipelined responses fill socket buffers.
        let agent = try StatorProcess(agent: ["--flush_interval", "200ms", "--sinks.json.path", ""])
        let seriesCount = TestBuild.scaled(2_000)
        let last = "abuse_series_\(seriesCount - 1)_total"
        let pageLines = (0..<seriesCount).map { "abuse.series.\($0):1|c|#k:v" }
        for chunk in stride(from: 0, to: pageLines.count, by: 40) {
            try agent.send(pageLines[chunk..<(chunk + 40)].joined(separator: "\n"))
        }
        _ = try scrape(agent, until: "a page of \(seriesCount) series") { $0.contains(last) }
        let rssBefore = rssBytes(agent.process.processIdentifier)

        var fds: [Int32] = []
        let finished = DispatchSemaphore(value: 0)
        var threads = 0
        defer {
            // The abusing threads write to these descriptors: let them finish before closing.
            for _ in 0..<threads { finished.wait() }
            for fd in fds { close(fd) }
        }
        // 500 idle connections (the cap is 64: the longest-waiting ones are evicted for newcomers).
        for _ in 0..<500 { fds.append(try connectHTTP(agent)) }
        // A 1 MiB request head, binary garbage, and 200 pipelined scrapes whose answers are never read.
        let huge = try connectHTTP(agent)
        let garbage = try connectHTTP(agent)
        let greedy = try connectHTTP(agent)
        fds += [huge, garbage, greedy]
        let abusers = Thread {
            let head = Array(("GET /metrics HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 1 << 20)).utf8)
            _ = head.withUnsafeBytes { send(huge, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            var rng = SystemRandomNumberGenerator()
            let junk = (0..<65_536).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = junk.withUnsafeBytes { send(garbage, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            let pipelined = Array(String(repeating: "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", count: 200).utf8)
            _ = pipelined.withUnsafeBytes { send(greedy, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            finished.signal()
        }
        abusers.start()
        threads += 1
        // Five slowloris clients, a byte every 100 ms each (for about 2 s, while the scrapes below run).
        let trickling = try (0..<5).map { _ in try connectHTTP(agent) }
        fds += trickling
        let trickle = Thread {
            for byte in Array("GET /metrics HTTP/1.1\r\n".utf8) {
                var b = byte
                for fd in trickling { _ = send(fd, &b, 1, Int32(MSG_NOSIGNAL)) }
                usleep(100_000)
            }
            finished.signal()
        }
        trickle.start()
        threads += 1

        // Meanwhile: UDP keeps arriving, and normal scrapes are answered within 1 s.
        let before = try selfMetric(agent, "stator_lines_received_total")
        for round in 0..<20 {
            try agent.send((0..<50).map { "udp.under.abuse:1|c\nround\(round).line\($0):1|g" })
            let started = Date()
            let reply = try httpRequest(port: agent.httpPort, "/metrics")
            #expect(reply.status == 200)
            #expect(reply.body.contains(last))
            // Starvation would cost the 5 s read timeout; a sanitized agent on a busy core can
            // take longer than a second to answer the greedy client's pipelined scrapes first.
            #expect(Date().timeIntervalSince(started) < (TestBuild.isSanitized ? 3 : 1), "scrape \(round) took too long")
            usleep(100_000)
        }
        try eventually("every UDP line counted") {
            try selfMetric(agent, "stator_lines_received_total") - before == 20 * 50 * 2
        }
        #expect(try selfMetric(agent, "stator_udp_kernel_drops_total") == 0)
        // Memory stays bounded: no connection buffers a megabyte head or 200 pages of answers.
        // (Not under AddressSanitizer: its quarantine keeps freed memory resident by design.)
        let grown = rssBytes(agent.process.processIdentifier) - rssBefore
        if ProcessInfo.processInfo.environment["ASAN_OPTIONS"] == nil {
            #expect(grown < 32 << 20, "RSS grew by \(grown) bytes")
        }
        #expect(try agent.stop() == 0)
    }
}
