import Foundation
import Glibc
import Testing

/// The roll-up rows the agent's API returns, every page of them.
private func rollups(_ agent: StatorProcess, _ query: String = "") throws -> [[String: Any]] {
    var rows: [[String: Any]] = []
    var cursor: String?
    repeat {
        let reply = try httpRequest(
            port: agent.httpPort, "/api/v1/rollups?limit=1000\(query)" + (cursor.map { "&cursor=\($0)" } ?? ""))
        guard reply.status == 200, let page = try JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [String: Any]
        else {
            throw TestFailure("\(reply.status) \(reply.body)")
        }
        rows += page["rows"] as? [[String: Any]] ?? []
        cursor = page["next"] as? String
    } while cursor != nil
    return rows
}

/// The day sums of one tag value and name, over every day (a test may cross midnight UTC),
/// each read from its text (see `flushed`).
private func total(_ agent: StatorProcess, key: String, name: String) throws -> Double {
    let reply = try httpRequest(port: agent.httpPort, "/api/v1/rollups?key=\(key)&name=\(name)")
    guard reply.status == 200 else { throw TestFailure("\(reply.status) \(reply.body)") }
    return reply.body.matches(of: #/"sum":([-0-9.e+]+)/#).compactMap { Double($0.output.1) }.reduce(0, +)
}

/// What the JSON lines say was flushed for one tag value and name, in flush order. (Each value
/// is read from its text with `Double(_:)`: Foundation's JSON parser may turn a number into an
/// NSDecimalNumber, whose Double can be a unit in the last place off.)
private func flushed(_ paths: [String], tenant: String, name: String) throws -> Double {
    var sum = 0.0
    for path in paths {
        for text in readFile(path).split(separator: "\n") {
            let line = try jsonLines(String(text))[0]
            guard line["name"] as? String == name, (line["tags"] as? [String: String])?["tenant"] == tenant,
                let value = text.firstMatch(of: #/"value":([-0-9.e+]+)/#).flatMap({ Double($0.output.1) })
            else { continue }
            sum += value
        }
    }
    return sum
}

/// Another process holding the database's write lock (`BEGIN EXCLUSIVE`) for `seconds`,
/// then committing; returns once the lock is held. Stop it with `stopChild`.
private func holdWriteLock(_ path: String, seconds: Double) throws -> Process {
    let holder = Process()
    holder.executableURL = URL(fileURLWithPath: try python())
    holder.arguments = [
        "-c",
        "import sqlite3, sys, time\nc = sqlite3.connect(sys.argv[1], isolation_level=None)\nc.execute('BEGIN EXCLUSIVE')\n"
            + "print('locked', flush=True)\ntime.sleep(float(sys.argv[2]))\nc.execute('COMMIT')",
        path, "\(seconds)",
    ]
    let output = PipeCollector()
    holder.standardOutput = output.pipe
    try holder.run()
    do {
        try eventually(timeout: 10, "the lock") { output.text.contains("locked") }
    } catch {
        stopChild(holder)
        throw error
    }
    return holder
}

private func rollupAgent(_ dir: TemporaryDirectory, _ out: String, _ flags: [String] = []) throws -> StatorProcess {
    try StatorProcess(
        agent: [
            "--flush_interval", "100ms", "--sinks.json.path", out, "--sinks.rollup.path", dir.file("rollups.db"),
        ] + flags)
}

@Test func aDaysTotalsEqualTheFlushedCountersThroughARestartAndAKill() throws {
    let dir = try TemporaryDirectory()
    let outs = (1...3).map { dir.file("run\($0).json") }
    // Sampled counters make fractional values: the totals must still match to the last bit.
    let lines = "bill.calls:1|c|@0.3|#tenant:acme,route:/a\nbill.calls:2|c|#tenant:beta\nbill.bytes:512|c|#tenant:acme"
    let first = try rollupAgent(dir, outs[0])
    for _ in 0..<15 {
        try first.send(lines)
        usleep(40_000)
    }
    #expect(try first.stop() == 0)  // SIGTERM: the last interval is written too

    let second = try rollupAgent(dir, outs[1])
    for _ in 0..<15 {
        try second.send(lines)
        usleep(40_000)
    }
    // Once every line sent is flushed (to the file and the database), kill -9 loses nothing.
    try eventually(timeout: 10, "the second run's lines in the file and the database") {
        try flushed(Array(outs[0...1]), tenant: "acme", name: "bill.bytes") == 512 * 30
            && total(second, key: "acme", name: "bill.bytes") == 512 * 30
    }
    second.signal(SIGKILL)
    _ = try second.waitForExit()

    let third = try rollupAgent(dir, outs[2])
    for tenant in ["acme", "beta"] {
        let stored = try total(third, key: tenant, name: "bill.calls")
        let sent = try flushed(Array(outs[0...1]), tenant: tenant, name: "bill.calls")
        let rows = try rollups(third, "&key=\(tenant)")
        #expect(stored == sent, "\(tenant): \(stored) in the database, \(sent) flushed; rows \(rows)")
    }
    #expect(try total(third, key: "acme", name: "bill.bytes") == 512 * 30)
    let rows = try rollups(third, "&key=acme&name=bill.calls")
    #expect(rows.allSatisfy { $0["type"] as? String == "counter" && $0["count"] is NSNull && $0["last"] is NSNull })
    #expect(try third.stop() == 0)
}

@Test func aLockedDatabaseIsCountedAndItsRowsAndUsageWrittenOnceItIsFree() throws {
    let dir = try TemporaryDirectory()
    let out = dir.file("out.json")
    let agent = try rollupAgent(
        dir, out, ["--flush_interval", "200ms", "--sinks.rollup.limits", #"[{"match": "locked.*", "daily": 10}]"#])
    try agent.send("locked.calls:1|c|#tenant:acme")
    try eventually(timeout: 10, "the first row") { try total(agent, key: "acme", name: "locked.calls") == 1 }
    // Another process holds the database's write lock past the writer's 5 s busy timeout.
    let holder = try holdWriteLock(dir.file("rollups.db"), seconds: 6.5)
    defer { stopChild(holder) }
    for _ in 0..<5 {
        try agent.send("locked.calls:1|c|#tenant:acme")
        usleep(100_000)
    }
    try scrape(agent, timeout: 20, until: "a failed roll-up write") {
        (sample($0, #"stator_sink_errors_total{sink="rollup"}"#) ?? 0) >= 1
    }
    holder.waitUntilExit()
    try eventually(timeout: 20, "every row written after the lock") { try total(agent, key: "acme", name: "locked.calls") == 6 }
    // Every accepted flush counts towards the limit, the one whose write failed too.
    try scrape(agent, timeout: 10, until: "the usage of all six lines") {
        sample($0, #"stator_rollup_usage_ratio{key="acme",name="locked.calls"}"#) == 0.6
    }
    #expect(try agent.stop() == 0)
    #expect(agent.stderr.text.contains("roll-up rows not written, kept for the next flush"))
    #expect(try total(try rollupAgent(dir, dir.file("again.json")), key: "acme", name: "locked.calls") == 6)
}

/// While a flush waits for another process's write lock, a query answers at once (with that
/// flush's rows, merged in memory) and `/metrics` and `/healthz` are not held up.
@Test func aQueryNeverWaitsForAFlushNorHoldsTheServer() throws {
    let dir = try TemporaryDirectory()
    let agent = try rollupAgent(dir, dir.file("out.json"), ["--flush_interval", "200ms"])
    try agent.send("held.calls:1|c|#tenant:acme")
    try eventually(timeout: 10, "the first row") { try total(agent, key: "acme", name: "held.calls") == 1 }
    let holder = try holdWriteLock(dir.file("rollups.db"), seconds: 4)
    defer { stopChild(holder) }
    try agent.send("held.calls:2|c|#tenant:acme")
    usleep(600_000)  // three flush intervals: a flush has merged the line and waits for the lock
    for path in ["/api/v1/rollups?key=acme&name=held.*", "/metrics", "/healthz"] {
        let start = Date()
        let reply = try httpRequest(port: agent.httpPort, path)
        let took = Date().timeIntervalSince(start)
        #expect(reply.status == 200, "\(path): \(reply.status) \(reply.body)")
        #expect(took < 1, "\(path) took \(took) s while a flush waited for the lock")
        if path.hasPrefix("/api") { #expect(reply.body.contains(#""sum":3"#), "\(reply.body)") }
        if path == "/metrics" {
            #expect(sample(reply.body, #"stator_rollup_queries_failed_total{reason="timeout"}"#) == 0)
        }
    }
    holder.waitUntilExit()
    #expect(try agent.stop() == 0)
}

/// `rm rollups.db*` under the agent, then another file moved over the path: each noticed at
/// the next flush, logged and counted, and the file made again at the path with every row, so
/// that a restart finds the whole history.
@Test func aRemovedOrReplacedDatabaseIsCreatedAgainWithItsRows() throws {
    let dir = try TemporaryDirectory()
    let db = dir.file("rollups.db")
    let agent = try rollupAgent(dir, dir.file("out.json"), ["--flush_interval", "200ms"])
    try agent.send("kept.calls:1|c|#tenant:acme")
    try eventually(timeout: 10, "the first row") { try total(agent, key: "acme", name: "kept.calls") == 1 }
    for suffix in ["", "-wal", "-shm"] { unlink(db + suffix) }
    try agent.send("kept.calls:2|c|#tenant:acme")
    try scrape(agent, timeout: 10, until: "the removal counted") {
        sample($0, #"stator_sink_errors_total{sink="rollup"}"#) == 1
    }
    try eventually(timeout: 10, "the file again") { FileManager.default.fileExists(atPath: db) }
    let mode = try #require(try FileManager.default.attributesOfItem(atPath: db)[.posixPermissions] as? Int)
    #expect(mode & 0o027 == 0, "\(String(mode, radix: 8))")

    // Another database moved over the path: set aside, not overwritten.
    let (status, output) = try runProgram(
        try python(),
        ["-c", "import sqlite3, sys\nsqlite3.connect(sys.argv[1]).execute('CREATE TABLE other (x)')", dir.file("other.db")])
    #expect(status == 0, "\(output)")
    #expect(rename(dir.file("other.db"), db) == 0)
    try agent.send("kept.calls:4|c|#tenant:acme")
    try scrape(agent, timeout: 10, until: "the replacement counted") {
        sample($0, #"stator_sink_errors_total{sink="rollup"}"#) == 2
    }
    try eventually(timeout: 10, "every row through the API") { try total(agent, key: "acme", name: "kept.calls") == 7 }
    #expect(try agent.stop() == 0)
    let log = agent.stderr.text
    #expect(log.contains("roll-up database removed under Stator: created again at its path, with every row Stator had"))
    #expect(log.contains("roll-up database replaced under Stator: the other file set aside"))
    let files = try FileManager.default.contentsOfDirectory(atPath: dir.path)
    #expect(files.filter { $0.hasPrefix("rollups.db.replaced-") }.count == 1, "\(files)")
    // The history survives a restart on the file at the path.
    let again = try rollupAgent(dir, dir.file("again.json"))
    #expect(try total(again, key: "acme", name: "kept.calls") == 7)
    #expect(try again.stop() == 0)
}

@Test func aFileThatIsNotADatabaseStopsTheStartNamingIt() throws {
    let dir = try TemporaryDirectory()
    try Data(repeating: 0x41, count: 4096).write(to: URL(fileURLWithPath: dir.file("rollups.db")))
    let run = try StatorProcess(
        ["--udp.address", "127.0.0.1:0", "--http.address", "127.0.0.1:0", "--sinks.rollup.path", dir.file("rollups.db")],
        waitForStart: false)
    #expect(try run.waitForExit() != 0)
    #expect(
        run.stderr.text.contains(
            "sinks.rollup.path \(dir.file("rollups.db")): the file is not an SQLite database (file is not a database)"))
}

/// SIGTERM while another process holds the write lock: the last flush's write waited its
/// 5 s, then the fold another 5 s, and the sink was left behind at the deadline without a
/// word of the changes it lost. The fold waits only as long as the shutdown has left, and
/// the changes lost are logged with their count.
@Test func aLockedDatabaseAtShutdownIsGivenUpInTimeAndTheLossSaid() throws {
    let dir = try TemporaryDirectory()
    let agent = try rollupAgent(dir, dir.file("out.json"), ["--flush_interval", "200ms"])
    try agent.send("shut.calls:1|c|#tenant:acme")
    try eventually(timeout: 10, "the first row") { try total(agent, key: "acme", name: "shut.calls") == 1 }
    let holder = try holdWriteLock(dir.file("rollups.db"), seconds: 30)
    defer { stopChild(holder) }
    try agent.send("shut.calls:7|c|#tenant:acme\nshut.other:9|c|#tenant:beta")
    try eventually(timeout: 10, "the lines received") {
        try selfMetric(agent, #"stator_lines_received_total{input="udp"}"#) == 3
    }
    let stopped = Date()
    #expect(try agent.stop() == 0)
    let took = Date().timeIntervalSince(stopped)
    #expect(took < (TestBuild.isSanitized ? 8 : 6.5), "shutdown took \(took) s")
    let log = agent.stderr.text
    #expect(log.contains("roll-up changes lost at shutdown"))
    #expect(!log.contains("did not finish before the shutdown deadline"))
}
