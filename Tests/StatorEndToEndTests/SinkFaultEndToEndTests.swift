import Foundation
import Glibc
import Testing

// Sink faults (issue 6): each is counted in stator_sink_errors_total{sink}, the other
// sinks and ingestion carry on, and the sink recovers by itself when the fault clears,
// with nothing that was aggregated meanwhile lost.

/// Sends `fault.counter:n|c` for n = 1...count, one per flush interval of 100 ms.
func sendCounters(_ agent: StatorProcess, _ range: ClosedRange<Int>) throws {
    for n in range {
        try agent.send("fault.counter:\(n)|c")
        usleep(60_000)
    }
}

/// Checks the fault is counted and logged while the Prometheus sink carries on, clears
/// it, and expects every value sent before and after in the file.
func expectRecovery(_ agent: StatorProcess, path: String, clear: () throws -> Void) throws {
    try sendCounters(agent, 1...5)
    try eventually("JSON sink errors counted") { try selfMetric(agent, #"stator_sink_errors_total{sink="json"}"#) >= 2 }
    #expect(agent.stderr.text.contains("sink failed to emit a batch"))
    // Ingestion and the Prometheus sink carry on.
    _ = try scrape(agent, until: "fault_counter_total 15") { $0.contains("fault_counter_total 15") }
    try clear()
    try sendCounters(agent, 6...8)
    try eventually("every value in the file after recovery") { (try? counterSum(path, "fault.counter")) == 36 }
    #expect(try selfMetric(agent, #"stator_series_dropped_total{reason="unwritable",sink="json"}"#) == 0)
    #expect(try agent.stop() == 0)
    #expect(try counterSum(path, "fault.counter") == 36)  // and nothing twice
}

@Test func jsonSinkRecoversWhenItsMissingDirectoryAppears() throws {
    let dir = try TemporaryDirectory()
    let path = dir.file("later/out.json")
    let agent = try StatorProcess(agent: ["--flush_interval", "100ms", "--sinks.json.path", path])
    try expectRecovery(agent, path: path) {
        try FileManager.default.createDirectory(atPath: dir.file("later"), withIntermediateDirectories: false)
    }
}

@Test func jsonSinkRecoversWhenItsReadOnlyFileBecomesWritable() throws {
    let dir = try TemporaryDirectory()
    let path = dir.file("out.json")
    FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o444])
    chmod(dir.path, 0o755)
    // Root writes through file permissions: run the agent as nobody then.
    var arguments = ["--udp.address", "127.0.0.1:0", "--http.address", "127.0.0.1:0", "--flush_interval", "100ms"]
    arguments += ["--sinks.json.path", path]
    let agent: StatorProcess
    if getuid() == 0 {
        agent = try StatorProcess(
            executable: "/usr/bin/setpriv",
            ["--reuid=65534", "--regid=65534", "--clear-groups", try statorBinary()] + arguments)
    } else {
        agent = try StatorProcess(arguments)
    }
    try expectRecovery(agent, path: path) {
        #expect(chmod(path, 0o666) == 0)
    }
}

@Test func jsonSinkRecoversWhenTheDiskHasRoomAgain() throws {
    let dir = try TemporaryDirectory()
    let mountPoint = dir.file("small")
    try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: false)
    let path = "\(mountPoint)/out.json"
    let filler = "\(mountPoint)/filler"
    // A real full file system: a 256 KiB tmpfs when we may mount one (root, as here and in
    // CI); otherwise the path is a link to /dev/full (ENOSPC on every write) that is then
    // replaced by a regular file.
    let mounted =
        getuid() == 0 && (try? runProgram("/bin/mount", ["-t", "tmpfs", "-o", "size=256k", "stator-test", mountPoint]))?.0 == 0
    defer { if mounted { _ = try? runProgram("/bin/umount", ["-l", mountPoint]) } }
    if mounted {
        let fd = open(filler, O_WRONLY | O_CREAT, 0o644)
        let block = [UInt8](repeating: 0x41, count: 4096)
        while write(fd, block, block.count) > 0 {}
        close(fd)
    } else {
        #expect(symlink("/dev/full", path) == 0)
    }
    let agent = try StatorProcess(agent: ["--flush_interval", "100ms", "--sinks.json.path", path])
    try expectRecovery(agent, path: path) {
        #expect(unlink(mounted ? filler : path) == 0)
    }
    // No half-written line was left behind by a partial write (jsonLines would have thrown).
    #expect(try jsonLines(readFile(path)).allSatisfy { $0["name"] != nil })
}

@Test func pushSinkCountsAHungTargetAndRecoversWhenItAnswers() throws {
    let receiver = try TestHTTPReceiver(hang: true)
    let dir = try TemporaryDirectory()
    let out = dir.file("out.json")
    let agent = try StatorProcess(
        agent: [
            "--flush_interval", "100ms", "--sinks.json.path", out,
            "--sinks.http_push.url", "http://127.0.0.1:\(receiver.port)/", "--sinks.http_push.format", "json",
            "--sinks.http_push.timeout", "1s",
        ])
    try sendCounters(agent, 1...5)
    try eventually("push errors counted") { try selfMetric(agent, #"stator_sink_errors_total{sink="http_push"}"#) >= 2 }
    // The JSON sink and ingestion carry on meanwhile.
    try eventually("the JSON sink") { (try? counterSum(out, "fault.counter")) == 15 }
    receiver.hang = false
    try sendCounters(agent, 6...8)
    func pushed() throws -> Double {
        try receiver.requests.flatMap(objects).filter { $0["name"] as? String == "fault.counter" }.reduce(0) {
            $0 + ($1["value"] as? Double ?? 0)
        }
    }
    // Everything arrives once the target answers (at least once: a request that timed out may come twice).
    try eventually("every value pushed after recovery") { try pushed() >= 36 }
    #expect(try selfMetric(agent, #"stator_push_requests_total{result="success"}"#) >= 1)
    #expect(try agent.stop() == 0)
    receiver.stop()
}

/// Three dead pushes and a dead Graphite took 20 s to stop, one 5 s grace after another,
/// past what a service manager allows. Every sink now drains at the same time, within one
/// grace for the whole shutdown (5 s, plus half a second before a sink is left behind).
@Test func deadTargetsShareOneShutdownGrace() throws {
    let dir = try TemporaryDirectory()
    let dead = try (0..<4).map { _ in try freePort() }  // nothing listens: every attempt fails
    let config = dir.file("stator.json")
    try """
    {"sinks": {"http_push": [
      {"url": "http://127.0.0.1:\(dead[0])/a", "name": "a"},
      {"url": "http://127.0.0.1:\(dead[1])/b", "name": "b", "format": "influx"},
      {"url": "http://127.0.0.1:\(dead[2])/c", "name": "c", "format": "otlp"}
    ], "graphite": {"address": "127.0.0.1:\(dead[3])"}}}
    """.write(toFile: config, atomically: true, encoding: .utf8)
    let agent = try StatorProcess(
        agent: ["--config", config, "--flush_interval", untilShutdown, "--sinks.json.path", dir.file("out.jsonl")])
    try agent.send("shutdown.hits:3|c")
    _ = try scrape(agent, until: "the line received") {
        (sample($0, #"stator_lines_received_total{input="udp"}"#) ?? 0) >= 1
    }
    let stopped = Date()
    #expect(try agent.stop() == 0)
    let took = Date().timeIntervalSince(stopped)
    // 5 s of grace, then 0.5 s before a sink is left behind; the rest (draining the sockets,
    // the last flush, exit) takes milliseconds in the release build, and under a sanitizer
    // at most a second or two on a loaded machine.
    #expect(took < (TestBuild.isSanitized ? 8 : 6.5), "shutdown took \(took) s")
    // Every dead sink said what it lost; the JSON lines sink still got the last flush.
    let log = agent.stderr.text
    #expect(log.components(separatedBy: "push target unreachable at shutdown").count - 1 == 3)
    #expect(log.contains("graphite unreachable at shutdown"))
    #expect(!log.contains("did not finish before the shutdown deadline"))
    #expect(try counterSum(dir.file("out.jsonl"), "shutdown.hits") == 3)
}

/// Sends from a thread of its own until stopped (or 20 s at most), so that traffic keeps
/// arriving while the agent shuts down.
private final class KeepSending: @unchecked Sendable {
    private let stopped = NSCondition()
    private var stop = false
    private var done = false

    init(_ sendOnce: @escaping @Sendable () -> Void, pauseMicros: UInt32) {
        let thread = Thread { [self] in
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline, !stopped.withLock({ stop }) {
                sendOnce()
                if pauseMicros > 0 { usleep(pauseMicros) }
            }
            stopped.withLock {
                done = true
                stopped.broadcast()
            }
        }
        thread.start()
    }

    func finish() {
        stopped.withLock {
            stop = true
            while !done { stopped.wait() }
        }
    }
}

/// A sender that never stops kept the readers draining (the shutdown took as long as the
/// flood: 12.5 s for 14 s of traffic). The inputs read for at most a second after SIGTERM.
@Test func aUDPFloodCannotHoldTheShutdown() throws {
    let dir = try TemporaryDirectory()
    let agent = try StatorProcess(agent: [
        "--flush_interval", untilShutdown, "--sinks.json.path", dir.file("out.jsonl"), "--udp.readers", "1",
    ])
    let port = agent.udpPort
    // 4,000 lines in 60 KB: the sender's one copy of it costs far less than the agent's
    // parsing, so the socket never runs dry while the flood lasts.
    let datagram = Array(String(repeating: "flood.hits:1|c\n", count: 4_000).utf8)
    let flood = KeepSending({ try? sendUDP(Array(repeating: datagram, count: 16), port: port) }, pauseMicros: 0)
    defer { flood.finish() }
    try eventually("the flood arriving") { try selfMetric(agent, #"stator_lines_received_total{input="udp"}"#) > 0 }
    let stopped = Date()
    agent.signal(SIGTERM)
    #expect(try agent.waitForExit(timeout: 20) == 0)
    let took = Date().timeIntervalSince(stopped)
    // A second of draining, the last flush, a JSON write; under a sanitizer, seconds more for
    // the flush of what was read.
    #expect(took < (TestBuild.isSanitized ? 8 : 3), "shutdown took \(took) s")
    #expect(agent.stderr.text.contains("datagrams still arriving at the shutdown deadline"))
    #expect(try counterSum(dir.file("out.jsonl"), "flood.hits") > 0)
}

/// A TCP client that never goes quiet kept the drain busy for 5 s, which the sinks' grace
/// then lacked: a healthy push was abandoned with the last interval. The drain stops after
/// a second, and the push still has its grace.
@Test func aTrickleOverTCPLeavesTheSinksTheirGrace() throws {
    let dir = try TemporaryDirectory()
    let receiver = try TestHTTPReceiver()
    let agent = try StatorProcess(agent: [
        "--tcp.address", "127.0.0.1:0", "--flush_interval", untilShutdown, "--sinks.json.path", "",
        "--sinks.http_push.url", "http://127.0.0.1:\(receiver.port)/w",
    ])
    try agent.send("final.interval:42|c")
    let client = try TCPClient(port: agent.tcpPort)
    let fd = client.fd
    let line = Array("trickle:1|c\n".utf8)
    let trickle = KeepSending(
        { _ = line.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }, pauseMicros: 20_000)
    defer {
        trickle.finish()
        client.close()
    }
    try eventually("both inputs' lines") {
        try selfMetric(agent, #"stator_lines_received_total{input="udp"}"#) == 1
            && selfMetric(agent, #"stator_lines_received_total{input="tcp"}"#) > 0
    }
    let stopped = Date()
    agent.signal(SIGTERM)
    #expect(try agent.waitForExit(timeout: 20) == 0)
    let took = Date().timeIntervalSince(stopped)
    #expect(took < (TestBuild.isSanitized ? 8 : 3), "shutdown took \(took) s")
    #expect(!agent.stderr.text.contains("abandoned"))
    let pushed = try receiver.requests.flatMap(objects).filter { $0["name"] as? String == "final.interval" }
    #expect(pushed.compactMap { $0["value"] as? Double } == [42])
}
