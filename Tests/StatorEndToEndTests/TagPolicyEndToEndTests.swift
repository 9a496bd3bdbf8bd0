import Foundation
import Glibc
import Testing

private let key = "00112233445566778899aabbccddeeff"
/// Values a tag policy must keep inside the agent, and the keys it drops.
private let secrets = ["alice@example.com", "secret-user-42", "sess-SECRET-1"]

/// An agent that drops `email` and `user_*`, hashes `session`, and writes every sink it can
/// without a peer (JSON lines, the Prometheus page) plus a JSON push to `receiver`.
private func policyAgent(_ out: String, _ receiver: TestHTTPReceiver, key: String) throws -> StatorProcess {
    try StatorProcess(
        agent: [
            "--flush_interval", "1s", "--sinks.json.path", out, "--sinks.http_push.url",
            "http://127.0.0.1:\(receiver.port)/ingest", "--tags.drop", #"["email", "user_*"]"#, "--tags.hash",
            #"["session"]"#, "--tags.hash_key", "${TAG_KEY}",
        ],
        environment: ["TAG_KEY": key])
}

/// The pseudonym on the page for the series `login_total` (16 hex digits), once it is there.
private func pseudonym(_ agent: StatorProcess) throws -> String {
    let page = try scrape(agent, until: "login_total with a session") { $0.contains("login_total{") }
    let line = try #require(page.split(separator: "\n").first { $0.hasPrefix("login_total{") })
    let start = try #require(line.range(of: #"session=""#))
    return String(line[start.upperBound...].prefix(16))
}

@Test func aDroppedTagOrAHashedValueNeverLeavesTheAgent() throws {
    let dir = try TemporaryDirectory()
    let receiver = try TestHTTPReceiver()
    let out = dir.file("out.json")
    let agent = try policyAgent(out, receiver, key: key)
    let line = "login:1|c|#env:prod,email:alice@example.com,user_id:secret-user-42,session:sess-SECRET-1"
    try agent.send([line, line, "login|c|#session:sess-SECRET-1,email:alice@example.com"])
    let first = try pseudonym(agent)
    #expect(first.count == 16 && first.allSatisfy(\.isHexDigit))
    let page = try httpRequest(port: agent.httpPort, "/metrics").body
    try eventually("the invalid line logged") { agent.stderr.text.contains("invalid line dropped") }
    #expect(try agent.stop() == 0)

    let pushed = receiver.requests.map { String(decoding: $0.body, as: UTF8.self) }.joined(separator: "\n")
    let written = readFile(out)
    #expect(try jsonLines(written).contains { ($0["tags"] as? [String: String]) == ["env": "prod", "session": first] })
    #expect(pushed.contains(first))
    for (what, text) in [("page", page), ("JSON lines", written), ("push", pushed), ("log", agent.stderr.text)] {
        for secret in secrets { #expect(!text.contains(secret), "\(secret) in the \(what)") }
    }
    for (what, text) in [("page", page), ("JSON lines", written), ("push", pushed)] {
        #expect(!text.contains("email") && !text.contains("user_id"), "a dropped key in the \(what)")
    }
    #expect(agent.stderr.text.contains("withheld"))

    // The same value gets the same pseudonym after a restart under the same key, another under another key.
    let again = try policyAgent(dir.file("again.json"), receiver, key: key)
    try again.send(line)
    #expect(try pseudonym(again) == first)
    #expect(try again.stop() == 0)
    let other = try policyAgent(dir.file("other.json"), receiver, key: String(key.reversed()))
    try other.send(line)
    #expect(try pseudonym(other) != first)
    #expect(try other.stop() == 0)
}

@Test func checkConfigRefusesAHashWithoutAKey() throws {
    let (status, output) = try runProgram(try statorBinary(.release), ["check-config", "--tags.hash", #"["email"]"#])
    #expect(status != 0)
    #expect(output.contains("tags.hash needs tags.hash_key"))
}

extension HeavyEndToEndTests {
    // Budget: 0.5 s plain with one core busy (2026-12-07) for 100,000 lines; under TSan a tenth of the lines
    // (TestBuild.scaled), not measured yet (about 3 s expected at 60x slower); its waits are 60 s.
    @Test func tagLimitsCapAFloodOfOneKeyAtMaxValuesPlusOne() throws {
        let dir = try TemporaryDirectory()
        let out = dir.file("out.json")
        let agent = try StatorProcess(agent: [
            "--tcp.address", "127.0.0.1:0", "--flush_interval", untilShutdown, "--sinks.json.path", out,
            "--tags.limits", #"[{"key": "user", "max_values": 10}]"#,
        ])
        let lines = TestBuild.scaled(100_000)
        let client = try TCPClient(port: agent.tcpPort)
        for batch in stride(from: 0, to: lines, by: 1000) {
            try client.send((batch..<min(lines, batch + 1000)).map { "flood:1|c|#user:u\($0)\n" }.joined())
        }
        var limited = 0.0
        try eventually(timeout: 60, "every value past 10 counted", seen: "\(limited)") {
            limited = try selfMetric(agent, #"stator_tag_values_limited_total{key="user"}"#)
            return limited == Double(lines - 10)
        }
        #expect(try selfMetric(agent, "stator_series_active") == 11)
        #expect(try selfMetric(agent, "stator_tag_values_tracked") == 10)
        #expect(try agent.stop() == 0)
        let series = try jsonLines(readFile(out)).filter { $0["name"] as? String == "flood" }
        #expect(series.count == 11)
        let other = series.first { ($0["tags"] as? [String: String])?["user"] == "__other__" }
        #expect(other?["value"] as? Double == Double(lines - 10))
    }
}
