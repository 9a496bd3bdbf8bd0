import Foundation
import Testing

/// Malformed events and service checks that the Datadog agent refuses too (SPEC section 15).
private let malformedEvents = [
    "_e{6,4}:title|text", "_e{5,5}:title|text", "_e{0,4}:|text", "_e{5,4}:title|text|p:urgent", "_e{x,4}:title|text",
]
private let malformedChecks = ["_sc|my.check|4", "_sc||0", "_sc|my.check", "_sc|my.check|0|d:soon"]

/// The PyPI `datadog` client's `event()` and `service_check()` reach the JSON lines
/// unchanged, with every field; malformed ones are refused by reason; both are counted.
@Test func theDatadogClientsEventsAndServiceChecksReachTheJSONLinesUnchanged() throws {
    let dir = try TemporaryDirectory()
    let out = dir.file("out.json")
    let agent = try StatorProcess(agent: ["--flush_interval", untilShutdown, "--sinks.json.path", out])
    let script = """
        from datadog.dogstatsd import DogStatsd
        dog = DogStatsd(host="127.0.0.1", port=\(agent.udpPort), disable_telemetry=True)
        dog.event("Deploy done", "v2\\nrolled out | fine", alert_type="success", aggregation_key="deploy",
                  source_type_name="jenkins", date_happened=1796637600, priority="low", tags=["env:prod", "canary"],
                  hostname="web-1")
        dog.event("Plain", "text")
        dog.service_check("db.up", 2, tags=["env:prod"], timestamp=1796637600, hostname="db-1",
                          message="timed out\\nm: retrying")
        dog.service_check("web.up", 0)
        dog.close_socket()
        """
    let (status, output) = try runProgram(try python(), ["-c", script])
    #expect(status == 0, "\(output)")
    try agent.send([malformedEvents.joined(separator: "\n"), malformedChecks.joined(separator: "\n")])
    try eventually("every line counted") {
        try selfMetric(agent, #"stator_events_total{kind="event"}"#) == 2
            && selfMetric(agent, #"stator_events_total{kind="service_check"}"#) == 2
            && selfMetric(agent, #"stator_lines_invalid_total{reason="invalid_event"}"#) == 5
            && selfMetric(agent, #"stator_lines_invalid_total{reason="invalid_service_check"}"#) == 4
    }
    #expect(try agent.stop() == 0)

    let objects = try jsonLines(readFile(out))
    let events = objects.filter { $0["type"] as? String == "event" }
    let checks = objects.filter { $0["type"] as? String == "service_check" }
    #expect(events.count == 2 && checks.count == 2)
    let deploy = try #require(events.first { $0["title"] as? String == "Deploy done" })
    #expect(deploy["text"] as? String == "v2\nrolled out | fine")
    #expect(deploy["timestamp"] as? Int == 1_796_637_600)
    #expect(deploy["hostname"] as? String == "web-1")
    #expect(deploy["aggregation_key"] as? String == "deploy")
    #expect(deploy["priority"] as? String == "low")
    #expect(deploy["source_type"] as? String == "jenkins")
    #expect(deploy["alert_type"] as? String == "success")
    #expect(deploy["tags"] as? [String] == ["env:prod", "canary"])
    let plain = try #require(events.first { $0["title"] as? String == "Plain" })
    #expect(plain["text"] as? String == "text")
    #expect(plain["priority"] as? String == "normal" && plain["alert_type"] as? String == "info")
    #expect(plain["timestamp"] is NSNull && plain["hostname"] is NSNull)
    let db = try #require(checks.first { $0["name"] as? String == "db.up" })
    #expect(db["status"] as? Int == 2)
    #expect(db["message"] as? String == "timed out\nm: retrying")
    #expect(db["timestamp"] as? Int == 1_796_637_600)
    #expect(db["hostname"] as? String == "db-1")
    #expect(db["tags"] as? [String] == ["env:prod"])
    let web = try #require(checks.first { $0["name"] as? String == "web.up" })
    #expect(web["status"] as? Int == 0 && web["message"] as? String == "" && web["tags"] as? [String] == [])
}

/// A `datadog` push sends series to its URL, each event to `/api/v1/events` and service
/// checks to `/api/v1/check_run` next to it, with the same API key.
@Test func aDatadogPushSendsEventsAndServiceChecksToTheirAPIs() throws {
    let receiver = try TestHTTPReceiver()
    let agent = try StatorProcess(
        agent: [
            "--flush_interval", untilShutdown, "--sinks.json.path", "", "--sinks.http_push.url",
            "http://127.0.0.1:\(receiver.port)/api/v1/series", "--sinks.http_push.format", "datadog",
            "--sinks.http_push.headers", #"{"DD-API-KEY": "abc123"}"#,
        ])
    try agent.send([
        "dd.hits:1|c|#canary",
        "_e{6,8}:deploy|v2\\ndone|t:warning|#env:prod,dd.internal.entity_id:pod-1\n_e{5,4}:other|text|p:low",
        "_sc|db.up|2|h:db-1|#env:prod|m:timed out\n_sc|web.up|0|d:1796637600" + "\n" + malformedChecks[0],
    ])
    #expect(try agent.stop() == 0)
    let requests = receiver.requests
    #expect(requests.allSatisfy { $0.method == "POST" && $0.headers["dd-api-key"] == "abc123" })
    #expect(requests.allSatisfy { $0.headers["content-type"] == "application/json" })
    #expect(requests.map(\.path).sorted() == ["/api/v1/check_run", "/api/v1/events", "/api/v1/events", "/api/v1/series"])
    func json(_ r: TestHTTPReceiver.Request) throws -> Any { try JSONSerialization.jsonObject(with: Data(r.body)) }
    let events = try requests.filter { $0.path == "/api/v1/events" }.map { try #require(try json($0) as? [String: Any]) }
    let deploy = try #require(events.first { $0["title"] as? String == "deploy" })
    #expect(deploy["text"] as? String == "v2\ndone")
    #expect(deploy["alert_type"] as? String == "warning" && deploy["priority"] as? String == "normal")
    #expect(deploy["tags"] as? [String] == ["env:prod"])
    #expect(deploy["date_happened"] == nil)
    #expect(events.first { $0["title"] as? String == "other" }?["priority"] as? String == "low")
    let run = try #require(requests.first { $0.path == "/api/v1/check_run" })
    let checks = try #require(try json(run) as? [[String: Any]])
    #expect(checks.count == 2)
    #expect(checks[0]["check"] as? String == "db.up" && checks[0]["status"] as? Int == 2)
    #expect(checks[0]["host_name"] as? String == "db-1" && checks[0]["message"] as? String == "timed out")
    #expect(checks[0]["tags"] as? [String] == ["env:prod"])
    #expect(checks[1]["check"] as? String == "web.up" && checks[1]["timestamp"] as? Int == 1_796_637_600)
}
