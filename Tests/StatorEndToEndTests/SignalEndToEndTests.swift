import Foundation
import Glibc
import Testing

// Signals and restarts (issue 6): SIGTERM at awkward moments exits 0 in bounded time
// with everything the agent accepted flushed or spooled; SIGHUP during writes loses no line.

/// Sum of `name`'s counter values over JSON-lines files (every line must parse).
private func counterTotal(_ paths: [String], _ name: String) throws -> Double {
    try paths.map { try counterSum($0, name) }.reduce(0, +)
}

/// `count` datagrams of 40 `name:1|c` lines over `series` distinct series.
private func burst(_ name: String, datagrams count: Int, series: Int = 1) -> [String] {
    (0..<count).map { d in (0..<40).map { "\(name):1|c|#s:\((d * 40 + $0) % series)" }.joined(separator: "\n") }
}

extension HeavyEndToEndTests {
    // Budget: 0.2 s plain (20,000 lines) and under TSan (2,000) (2026-12-07); the exit may take 5 s.
    @Test func sigtermRightAfterABurstFlushesEveryLine() throws {
        let dir = try TemporaryDirectory()
        let out = dir.file("out.json")
        let agent = try StatorProcess(agent: ["--flush_interval", untilShutdown, "--sinks.json.path", out])
        // 20,000 lines in the plain pass, 2,000 under the sanitizers.
        let datagrams = TestBuild.scaled(500)
        try agent.send(burst("burst.counter", datagrams: datagrams, series: 100))
        agent.signal(SIGTERM)  // at once: most of the burst is still in the socket buffer
        let stopped = Date()
        #expect(try agent.waitForExit() == 0)
        #expect(Date().timeIntervalSince(stopped) < 5)
        #expect(try counterSum(out, "burst.counter") == Double(datagrams * 40))
    }
}

// On the debug build: flushes racing the readers and a signal, with the assertions on.
@Test(.tags(.debugAssertions), arguments: [0, 10, 25, 40, 60])
func sigtermWhileFlushesRunBackToBackLosesNothing(delayMillis: Int) throws {
    // 2,000 series and a 50 ms interval: the flusher and the sinks are busy much of the
    // time, so the signal lands during a flush or a write in most of these runs. Under the
    // sanitizers 200 series and a tenth of the lines: the sinks of an agent 60 times slower
    // must not fall 16 batches behind, which drops batches by design (counted as sink
    // errors), on a loaded machine, with the five cases running at once.
    let dir = try TemporaryDirectory()
    let out = dir.file("out.json")
    let agent = try StatorProcess(agent: ["--flush_interval", "50ms", "--sinks.json.path", out], build: .debug)
    let datagrams = TestBuild.scaled(100)
    for _ in 0..<5 { try agent.send(burst("flushing.counter", datagrams: datagrams, series: TestBuild.scaled(2_000))) }
    usleep(useconds_t(delayMillis * 1000))
    agent.signal(SIGTERM)
    #expect(try agent.waitForExit() == 0)
    let total = try counterSum(out, "flushing.counter")
    #expect(total == Double(5 * datagrams * 40), "\(agent.stderr.text)")
}

@Test func sigtermWithAHungPushTargetSpoolsAndTheNextRunDelivers() throws {
    let dir = try TemporaryDirectory()
    let spool = dir.file("spool")
    var hung: TestHTTPReceiver? = try TestHTTPReceiver(hang: true)
    // The same URL in both runs: spooled requests go only to the target they were written for.
    let port = hung?.port ?? 0
    let flags = [
        "--flush_interval", "100ms", "--sinks.json.path", "", "--sinks.http_push.spool_dir", spool,
        "--sinks.http_push.format", "json", "--sinks.http_push.url", "http://127.0.0.1:\(port)/",
    ]
    let first = try StatorProcess(agent: flags)
    for n in 1...5 {
        try first.send("hung.spooled:\(n)|c")
        usleep(120_000)
    }
    let stopped = Date()
    #expect(try first.stop() == 0)
    #expect(Date().timeIntervalSince(stopped) < (TestBuild.isSanitized ? 12 : 8))  // the 5 s push grace, then exit
    #expect(first.stderr.text.contains("stay in the spool"))
    hung?.stop()
    hung = nil

    // The hung receiver's threads let go of its listener within about 100 ms.
    var answering: TestHTTPReceiver?
    try eventually("the hung target's port free again") {
        answering = try? TestHTTPReceiver(port: port)
        return answering != nil
    }
    let receiver = try #require(answering)
    let second = try StatorProcess(agent: flags)
    func total() throws -> Double {
        try receiver.requests.flatMap(objects).filter { $0["name"] as? String == "hung.spooled" }
            .reduce(0) { $0 + ($1["value"] as? Double ?? 0) }
    }
    // At least once: the request in flight when the first run stopped may arrive twice.
    try eventually(timeout: 20, "the spooled batches delivered") { try total() >= 15 }
    #expect(try second.stop() == 0)
    receiver.stop()
}

@Test func sighupWhileWritingLosesNoLine() throws {
    let dir = try TemporaryDirectory()
    let out = dir.file("out.json")
    let agent = try StatorProcess(agent: ["--flush_interval", "20ms", "--sinks.json.path", out])
    // Rotate the file the way logrotate does (rename, then SIGHUP) ten times while data flows.
    var rotated: [String] = []
    for round in 0..<10 {
        // 1,000 lines; 50 series under the sanitizers, so that a 60x slower JSON sink does
        // not fall 16 batches (320 ms) behind a 20 ms interval.
        try agent.send(burst("hup.counter", datagrams: 25, series: TestBuild.scaled(500)))
        try eventually("the agent writes the file again") { FileManager.default.fileExists(atPath: out) }
        let name = dir.file("out.json.\(round)")
        #expect(rename(out, name) == 0)
        rotated.append(name)
        agent.signal(SIGHUP)
    }
    #expect(try agent.stop() == 0)
    #expect(try counterTotal(rotated + [out], "hup.counter") == 10_000)
}
