import Foundation
import Testing

/// `GET /api/v1/top` of a running agent, as JSON objects.
func topAnswer(_ agent: StatorProcess, limit: Int = 20) throws -> [String: Any] {
    let reply = try httpRequest(port: agent.httpPort, "/api/v1/top?limit=\(limit)")
    guard reply.status == 200, let object = try JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [String: Any]
    else { throw TestFailure("GET /api/v1/top: \(reply.status) \(reply.body)") }
    return object
}

/// A table of the answer as "name lines series" rows.
func topRows(_ answer: [String: Any], _ table: String) -> [String] {
    (answer[table] as? [[String: Any]] ?? []).map { "\($0["name"] ?? "") \($0["lines"] ?? "") \($0["series"] ?? "")" }
}

/// Known traffic, then the names, tag keys and refused lines `/api/v1/top` gives: exact.
@Test func topAnswersWithTheNamesTagsAndRefusedLinesSent() throws {
    let agent = try StatorProcess(agent: ["--flush_interval", "1s", "--sinks.json.path", ""])
    defer { _ = try? agent.stop() }
    try agent.send((0..<30).map { "api.hits:1|c|#host:h\($0 % 3)" } + (0..<5).map { "db.ms:\($0)|ms" })
    try agent.send(["<img src=x onerror=alert(1)>:1|g", "no colon here", "bad:1|zz"])
    var answer: [String: Any] = [:]
    try eventually(timeout: 20, "the lines in /api/v1/top", seen: "\(answer)") {
        answer = try topAnswer(agent)
        return topRows(answer, "names_by_lines").count == 3 && (answer["refused"] as? [Any])?.count == 2
    }
    #expect(topRows(answer, "names_by_lines") == ["api.hits 30 3", "db.ms 5 1", "<img src=x onerror=alert(1)> 1 1"])
    #expect(topRows(answer, "names_by_series") == ["api.hits 30 3", "<img src=x onerror=alert(1)> 1 1", "db.ms 5 1"])
    let keys = (answer["tag_keys"] as? [[String: Any]] ?? []).map { "\($0["key"] ?? "") \($0["distinct_values"] ?? "")" }
    #expect(keys == ["host 3"])
    let refused = (answer["refused"] as? [[String: Any]] ?? []).map { r in
        "\(r["reason"] ?? ""): " + ((r["samples"] as? [[String: Any]] ?? []).map { "\($0["line"] ?? "")" }.joined(separator: "|"))
    }
    #expect(refused == ["missing_colon: no colon here", "unknown_type: bad:1|zz"])
    #expect(try httpRequest(port: agent.httpPort, "/api/v1/top?limit=0").status == 400)
    // The page's parts: each sink's health and the rates at each flush.
    let sinks = (answer["sinks"] as? [[String: Any]] ?? []).map { "\($0["name"] ?? "") \($0["errors"] ?? "")" }
    #expect(sinks == ["prometheus 0"])
    try eventually(timeout: 20, "two points of history") { (try topAnswer(agent)["history"] as? [Any])?.count ?? 0 >= 2 }
}
