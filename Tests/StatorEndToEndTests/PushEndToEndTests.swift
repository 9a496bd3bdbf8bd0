import Foundation
import Glibc
import Testing

/// The objects of a `json` push request body.
func objects(_ request: TestHTTPReceiver.Request) throws -> [[String: Any]] {
    guard let array = try JSONSerialization.jsonObject(with: Data(request.body)) as? [[String: Any]] else {
        throw TestFailure("body is not a JSON array: \(String(decoding: request.body, as: UTF8.self))")
    }
    return array
}

@Test func pushesJSONInBatchesWithSubstitutedHeaders() throws {
    let receiver = try TestHTTPReceiver()
    let agent = try StatorProcess(
        agent: [
            "--flush_interval", untilShutdown, "--sinks.json.path", "", "--sinks.http_push.url",
            "http://127.0.0.1:\(receiver.port)/ingest",
            "--sinks.http_push.batch_size", "2",
        ],
        environment: ["STATOR_SINKS_HTTP_PUSH_HEADERS": #"{"X-Token": "Bearer ${PUSH_TOKEN}"}"#, "PUSH_TOKEN": "s3cret"])
    try agent.send("p1:1|c\np2:2|c\np3:3|c\np4:4|g\np5:5|ms")
    #expect(try agent.stop() == 0)  // the final flush is pushed during shutdown
    let requests = receiver.requests
    #expect(requests.count == 3)
    #expect(try requests.map { try objects($0).count } == [2, 2, 1])
    for r in requests {
        #expect(r.method == "POST")
        #expect(r.path == "/ingest")
        #expect(r.headers["x-token"] == "Bearer s3cret")
        #expect(r.headers["content-type"] == "application/json")
    }
    let all = try requests.flatMap(objects)
    #expect(Set(all.compactMap { $0["name"] as? String }) == ["p1", "p2", "p3", "p4", "p5"])
    #expect(all.first { $0["name"] as? String == "p3" }?["value"] as? Double == 3)
}

@Test func pushesDatadogSeriesWithTheAPIKey() throws {
    let receiver = try TestHTTPReceiver()
    let agent = try StatorProcess(
        agent: [
            "--flush_interval", untilShutdown, "--sinks.json.path", "", "--sinks.http_push.url",
            "http://127.0.0.1:\(receiver.port)/api/v1/series",
            "--sinks.http_push.format", "datadog", "--sinks.http_push.headers", #"{"DD-API-KEY": "${DD_KEY}"}"#,
        ],
        environment: ["DD_KEY": "abc123"])
    try agent.send("dd.hits:3|c|#env:ci\ndd.lat:10:30|ms")
    #expect(try agent.stop() == 0)
    let request = try #require(receiver.requests.first)
    #expect(request.headers["dd-api-key"] == "abc123")
    let body = try #require(try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])
    let series = try #require(body["series"] as? [[String: Any]])
    let hits = try #require(series.first { $0["metric"] as? String == "dd.hits" })
    #expect(hits["type"] as? String == "count")
    #expect(hits["tags"] as? [String] == ["env:ci"])
    #expect((hits["points"] as? [[Double]])?.first?.last == 3)
    #expect((series.first { $0["metric"] as? String == "dd.lat.mean" }?["points"] as? [[Double]])?.first?.last == 20)
}

@Test func aMissingHeaderVariableIsAConfigurationError() throws {
    let run = try StatorProcess(
        ["check-config", "--sinks.http_push.headers", #"{"DD-API-KEY": "${NOT_SET_ANYWHERE}"}"#],
        waitForStart: false)
    #expect(try run.waitForExit() != 0)
    #expect(run.stderr.text.contains("environment variable NOT_SET_ANYWHERE is not set"))
}

@Test func retriesServerErrorsAndHonoursRetryAfter() throws {
    let receiver = try TestHTTPReceiver(script: [
        .init(status: 503), .init(status: 429, headers: [("Retry-After", "1")]), .init(status: 200),
    ])
    let agent = try StatorProcess(
        agent: [
            "--flush_interval", "100ms", "--sinks.json.path", "", "--sinks.http_push.url", "http://127.0.0.1:\(receiver.port)/",
        ])
    try agent.send("retry.me:7|c")
    try eventually("delivery after two failures") { receiver.requests.count >= 3 }
    let attempts = receiver.requests.prefix(3)
    #expect(attempts.allSatisfy { String(decoding: $0.body, as: UTF8.self).contains("retry.me") })
    // The 429 asked for one second.
    #expect(attempts[2].at.timeIntervalSince(attempts[1].at) >= 0.95)
    // The sender counts the success, then the series and the queue: wait for all of them.
    let page = try scrape(agent, until: "push metrics") {
        sample($0, "stator_push_requests_total{result=\"success\"}") == 1 && sample($0, "stator_push_series_total") == 1
            && sample($0, "stator_push_queue_bytes") == 0
    }
    #expect(sample(page, "stator_push_retries_total") == 2)
    #expect(sample(page, "stator_push_requests_total{result=\"retry\"}") == 2)
    #expect(sample(page, "stator_push_series_total") == 1)
    #expect(sample(page, "stator_push_queue_bytes") == 0)
    #expect(try agent.stop() == 0)
}

@Test func doesNotRetryAClientError() throws {
    let receiver = try TestHTTPReceiver(script: [.init(status: 400, body: "bad things happened here")])
    let agent = try StatorProcess(
        agent: [
            "--flush_interval", "100ms", "--sinks.json.path", "", "--sinks.http_push.url", "http://127.0.0.1:\(receiver.port)/",
        ])
    try agent.send("reject.me:1|c\nreject.too:1|g")
    // The rejection is counted, then its series as dropped: wait for both.
    let page = try scrape(agent, until: "the rejection counted") {
        sample($0, "stator_push_requests_total{result=\"rejected\"}") == 1
            && sample($0, "stator_push_dropped_series_total{reason=\"rejected\"}") == 2
    }
    #expect(sample(page, "stator_push_dropped_series_total{reason=\"rejected\"}") == 2)
    #expect(sample(page, "stator_push_retries_total") == 0)
    // Three more flushes (counted, not slept for): nothing new to send, and no retry of the rejected request.
    let flushes = try selfMetric(agent, "stator_flushes_total")
    try eventually("three more flushes") { try selfMetric(agent, "stator_flushes_total") >= flushes + 3 }
    #expect(receiver.requests.filter { String(decoding: $0.body, as: UTF8.self).contains("reject.me") }.count == 1)
    #expect(agent.stderr.text.contains("bad things happened here"))
    #expect(try agent.stop() == 0)
}

@Test func theSpoolSurvivesARestartWithNothingLostOrDuplicated() throws {
    let dir = try TemporaryDirectory()
    let spool = dir.file("spool")
    // A port bound but not listening: connections to it are refused, and no other test can
    // take it while the first run spools (a port merely found free once could be handed out
    // again, and then the "down" target would accept the pushes).
    let (reservation, port) = try bindLoopback(Int32(SOCK_STREAM.rawValue))
    var reserved = true
    defer { if reserved { close(reservation) } }
    let flags = [
        "--flush_interval", "100ms", "--sinks.json.path", "", "--sinks.http_push.url", "http://127.0.0.1:\(port)/",
        "--sinks.http_push.spool_dir", spool,
    ]
    // First run: the target is down; three intervals of data go to the spool.
    let first = try StatorProcess(agent: flags)
    for n in 1...3 {
        try first.send("spooled.counter:\(n)|c")
        try eventually("batch \(n) spooled") {
            ((try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? []).filter { $0.hasSuffix(".req") }.count >= n
        }
    }
    let stopped = Date()
    #expect(try first.stop() == 0)
    // The push gives up after its 5 s grace, not its 30 s timeout; a sanitized agent needs a
    // few more seconds for the rest of its shutdown.
    #expect(Date().timeIntervalSince(stopped) < (TestBuild.isSanitized ? 12 : 9))
    #expect(first.stderr.text.contains("stay in the spool"))
    let left = try FileManager.default.contentsOfDirectory(atPath: spool).filter { $0.hasSuffix(".req") }
    #expect(left.count >= 3)

    // Second run: the target is up; the old batches go first, then the new data.
    close(reservation)
    reserved = false
    let receiver = try TestHTTPReceiver(port: port)
    let second = try StatorProcess(agent: flags)
    try second.send("spooled.counter:10|c")
    func total() throws -> Double {
        try receiver.requests.flatMap(objects).filter { $0["name"] as? String == "spooled.counter" }
            .reduce(0) { $0 + ($1["value"] as? Double ?? 0) }
    }
    try eventually(timeout: 20, "everything delivered") { try total() >= 16 }
    #expect(try second.stop() == 0)
    #expect(try total() == 16)  // 1 + 2 + 3 + 10: nothing lost, nothing twice
    let stamps = try receiver.requests.flatMap(objects).compactMap { $0["ts"] as? String }
    #expect(stamps == stamps.sorted())  // oldest first
    #expect(try FileManager.default.contentsOfDirectory(atPath: spool).filter { $0.hasSuffix(".req") }.isEmpty)
}

@Test func aHungTargetDelaysNeitherIngestionNorShutdownForLong() throws {
    let receiver = try TestHTTPReceiver(hang: true)
    let dir = try TemporaryDirectory()
    let out = dir.file("out.json")
    let agent = try StatorProcess(
        agent: [
            "--flush_interval", "100ms", "--sinks.json.path", out, "--sinks.http_push.url", "http://127.0.0.1:\(receiver.port)/",
            "--sinks.http_push.timeout", "30s",
        ])
    for n in 1...5 {
        try agent.send("hung.counter:\(n)|c")
        usleep(120_000)
    }
    // The JSON sink and /metrics carry on while the push waits on the hung target.
    try eventually("the JSON sink") { (try? counterSum(out, "hung.counter")) == 15 }
    #expect(try httpRequest(port: agent.httpPort, "/healthz").status == 200)
    let stopped = Date()
    #expect(try agent.stop() == 0)
    #expect(Date().timeIntervalSince(stopped) < (TestBuild.isSanitized ? 12 : 9))
    #expect(agent.stderr.text.contains("unsent series held in memory are lost"))
    receiver.stop()
}

@Test func aRedirectIsARejectionAndNoHeaderLeavesForItsTarget() throws {
    // The target answers 301 to another host's address. Following it would turn the POST into
    // a GET without its body, count the batch as delivered and send the Authorization header
    // to the redirect's target.
    let elsewhere = try TestHTTPReceiver()
    let location = "http://127.0.0.1:\(elsewhere.port)/stolen"
    let target = try TestHTTPReceiver(script: [.init(status: 301, headers: [("Location", location)])])
    let agent = try StatorProcess(
        agent: [
            "--flush_interval", "200ms", "--sinks.json.path", "", "--sinks.http_push.url",
            "http://127.0.0.1:\(target.port)/ingest",
            "--sinks.http_push.headers", #"{"Authorization": "Bearer ${PUSH_TOKEN}"}"#,
        ],
        environment: ["PUSH_TOKEN": "s3cret"])
    try agent.send("r1:1|c\nr2:2|c")
    try eventually("the redirect counted as a rejection") {
        try selfMetric(agent, #"stator_push_requests_total{result="rejected"}"#) == 1
            && selfMetric(agent, #"stator_push_dropped_series_total{reason="rejected"}"#) == 2
    }
    #expect(try selfMetric(agent, #"stator_push_dropped_series_total{reason="rejected"}"#) == 2)
    #expect(try selfMetric(agent, #"stator_push_requests_total{result="success"}"#) == 0)
    #expect(try agent.stop() == 0)
    #expect(elsewhere.requests.isEmpty)
    #expect(target.requests.map(\.method) == ["POST"])
    let log = agent.stderr.text
    #expect(log.contains("HTTP 301 redirect to \(location) (not followed)"))
    #expect(!log.contains("s3cret"))
    target.stop()
    elsewhere.stop()
}

@Test func severalPushesEachDeliverAndADeadOneDelaysOnlyItself() throws {
    let dir = try TemporaryDirectory()
    let live = try TestHTTPReceiver()
    let dead = try freePort()  // nothing listens: every attempt fails and is retried
    let config = dir.file("stator.json")
    try """
    {"sinks": {"http_push": [
      {"url": "http://127.0.0.1:\(dead)/down", "name": "down"},
      {"url": "http://127.0.0.1:\(live.port)/up?db=stats", "name": "up", "external_labels": {"host": "${HOST_ID}", "env": "default"}}
    ]}}
    """.write(toFile: config, atomically: true, encoding: .utf8)
    let agent = try StatorProcess(
        agent: ["--config", config, "--flush_interval", "200ms", "--sinks.json.path", ""], environment: ["HOST_ID": "web-1"])
    try agent.send("multi.hits:5|c|#env:prod\nmulti.other:1|c")
    let deadline = Date().addingTimeInterval(10)
    while live.requests.isEmpty && Date() < deadline { usleep(20_000) }
    let request = try #require(live.requests.first)
    #expect(request.path == "/up?db=stats")  // the URL as given, query string included
    let all = try objects(request)
    // external_labels join the tags; a line's own tag of the same name wins.
    #expect(
        all.first { $0["name"] as? String == "multi.hits" }?["tags"] as? [String: String] == ["env": "prod", "host": "web-1"])
    #expect(
        all.first { $0["name"] as? String == "multi.other" }?["tags"] as? [String: String] == ["env": "default", "host": "web-1"])
    // The dead push counts its first failed attempt on its own schedule: the live one does
    // not wait for it, so neither does this (a loaded sanitizer run counted it after the
    // live delivery). About 1 s in the release build; 30 s is room for any build.
    let page = try scrape(agent, timeout: 30, until: "the dead push's failures counted") {
        (sample($0, #"stator_push_retries_total{sink="down"}"#) ?? 0) >= 1
            && (sample($0, #"stator_sink_errors_total{sink="down"}"#) ?? 0) >= 1
            && (sample($0, #"stator_push_requests_total{result="success",sink="up"}"#) ?? 0) >= 1
    }
    #expect(sample(page, #"stator_push_requests_total{result="success",sink="down"}"#) == 0)
    #expect(sample(page, #"stator_sink_errors_total{sink="up"}"#) == 0)
    #expect(try agent.stop() == 0)
    #expect(agent.stderr.text.contains(#""sink":"down""#))  // its log lines say which push
}

@Test func aRequestLargerThanTheQueueIsDroppedAloneAndTheQueueKept() throws {
    // A port bound but not listening: every attempt is refused, so the requests stay queued.
    let (reservation, port) = try bindLoopback(Int32(SOCK_STREAM.rawValue))
    defer { close(reservation) }
    let agent = try StatorProcess(agent: [
        "--flush_interval", "100ms", "--sinks.json.path", "", "--sinks.http_push.url", "http://127.0.0.1:\(port)/",
        "--sinks.http_push.max_spool_bytes", "1024",
    ])
    // Three small flushes (one series each, about 100 bytes of JSON) wait in the queue.
    var queued = 0.0
    for n in 1...3 {
        try agent.send("small.counter:\(n)|c")
        let page = try scrape(agent, until: "small flush \(n) queued") { (sample($0, "stator_push_queue_bytes") ?? 0) > queued }
        queued = sample(page, "stator_push_queue_bytes") ?? 0
    }
    #expect(queued > 300 && queued < 1024)
    // Then one flush of 40 series: one request of about 4 KB, over the whole bound.
    try agent.send((1...40).map { "large.counter.\($0):1|c" }.joined(separator: "\n"))
    let page = try scrape(agent, until: "the large request dropped") {
        sample($0, #"stator_push_dropped_series_total{reason="too_large"}"#) == 40
    }
    #expect(sample(page, #"stator_push_dropped_series_total{reason="queue_full"}"#) == 0)
    #expect(sample(page, "stator_push_queue_bytes") == queued)
    #expect(try agent.stop() == 0)
    #expect(agent.stderr.text.contains("push request larger than max_spool_bytes dropped"))
}

@Test func thePushURLIsSentByteForByteWithItsCredentialsAsBasicAuth() throws {
    // URL.path decoded the escapes: the request line was `POST /a b/c/d?e?q=%26x`, and the
    // user information was dropped without a word.
    let receiver = try TestHTTPReceiver()
    let agent = try StatorProcess(agent: [
        "--flush_interval", untilShutdown, "--sinks.json.path", "", "--sinks.http_push.url",
        "http://al%40ice:s3cret@127.0.0.1:\(receiver.port)/a%20b/c%2Fd%3Fe?q=%26x",
    ])
    try agent.send("url.hits:1|c")
    #expect(try agent.stop() == 0)
    let request = try #require(receiver.requests.first)
    #expect(request.path == "/a%20b/c%2Fd%3Fe?q=%26x")
    #expect(request.headers["authorization"] == "Basic " + Data("al@ice:s3cret".utf8).base64EncodedString())
    #expect(request.headers["host"] == "127.0.0.1:\(receiver.port)")
    // The logs show the URL with its password redacted, and never the password.
    #expect(agent.stderr.text.contains("http://al%40ice:xxxxx@127.0.0.1:\(receiver.port)/a%20b"))
    #expect(!agent.stderr.text.contains("s3cret"))
}

@Test func checkConfigShowsAPushURLWithoutItsPassword() throws {
    let run = try StatorProcess(
        ["check-config", "--sinks.http_push.url", "http://alice:s3cret@127.0.0.1:1/w"], waitForStart: false)
    #expect(try run.waitForExit() == 0)
    #expect(run.stdout.text.contains(#""url": "http://alice:xxxxx@127.0.0.1:1/w""#))
    #expect(!run.stdout.text.contains("s3cret"))
}

@Test func aConfiguredHeaderReplacesTheDefaultOfTheSameName() throws {
    // Configured headers were appended after the format's: Content-Type went twice.
    let receiver = try TestHTTPReceiver()
    let agent = try StatorProcess(agent: [
        "--flush_interval", untilShutdown, "--sinks.json.path", "", "--sinks.http_push.url",
        "http://u:p@127.0.0.1:\(receiver.port)/",
        "--sinks.http_push.headers",
        #"{"content-type": "application/json; charset=utf-8", "Authorization": "Bearer t", "user-agent": "edge/2"}"#,
    ])
    try agent.send("hdr.hits:1|c")
    #expect(try agent.stop() == 0)
    let request = try #require(receiver.requests.first)
    func values(_ name: String) -> [String] {
        request.headerLines.filter { $0.lowercased().hasPrefix(name + ":") }.map {
            String($0.dropFirst(name.count + 1)).trimmingCharacters(in: .whitespaces)
        }
    }
    #expect(values("content-type") == ["application/json; charset=utf-8"])
    #expect(values("authorization") == ["Bearer t"])  // over the URL's credentials
    #expect(values("user-agent") == ["edge/2"])
    #expect(values("host") == ["127.0.0.1:\(receiver.port)"])
}

@Test func aPushListFromTheEnvironmentAloneDeliversToEveryPush() throws {
    // Refused as an "unknown environment variable" (a warning, and no push at all).
    let first = try TestHTTPReceiver()
    let second = try TestHTTPReceiver()
    let agent = try StatorProcess(
        agent: ["--flush_interval", untilShutdown, "--sinks.json.path", ""],
        environment: [
            "STATOR_SINKS_HTTP_PUSH": """
            [{"url": "http://127.0.0.1:\(first.port)/one"},
             {"url": "http://127.0.0.1:\(second.port)/two", "format": "influx", "name": "influx"}]
            """
        ])
    try agent.send("env.hits:2|c")
    #expect(try agent.stop() == 0)
    #expect(!agent.stderr.text.contains("unknown environment variable"))
    #expect(try first.requests.flatMap(objects).map { $0["name"] as? String } == ["env.hits"])
    #expect(second.requests.map(\.path) == ["/two"])
    let influx = String(decoding: try #require(second.requests.first).body, as: UTF8.self)
    #expect(influx.hasPrefix("env.hits value=2"), "\(influx)")
}

@Test func aSpooledRequestKeepsItsFormatAfterTheFormatChanges() throws {
    // Spooled requests were sent with the current format's headers: a json body went out
    // as text/plain after a switch to influx.
    let dir = try TemporaryDirectory()
    let spool = dir.file("spool")
    // A port bound but not listening while the first run spools (see theSpoolSurvivesARestart).
    let (reservation, port) = try bindLoopback(Int32(SOCK_STREAM.rawValue))
    var reserved = true
    defer { if reserved { close(reservation) } }
    let flags = [
        "--flush_interval", "100ms", "--sinks.json.path", "", "--sinks.http_push.url", "http://127.0.0.1:\(port)/write",
        "--sinks.http_push.spool_dir", spool,
    ]
    let first = try StatorProcess(agent: flags)
    try first.send("kept.counter:1|c")
    try eventually("the batch spooled") {
        ((try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? []).contains { $0.hasSuffix(".req") }
    }
    #expect(try first.stop() == 0)
    close(reservation)
    reserved = false
    let receiver = try TestHTTPReceiver(port: port)
    let second = try StatorProcess(agent: flags + ["--sinks.http_push.format", "influx"])
    try second.send("new.counter:2|c")
    try eventually("the spooled and the new batch") {
        receiver.requests.contains { String(decoding: $0.body, as: UTF8.self).hasPrefix("new.counter") }
    }
    #expect(try second.stop() == 0)
    let spooled = receiver.requests.filter { String(decoding: $0.body, as: UTF8.self).contains("kept.counter") }
    #expect(spooled.map { $0.headers["content-type"] } == ["application/json"])
    #expect(try spooled.flatMap(objects).map { $0["value"] as? Double } == [1])
    let fresh = receiver.requests.filter { String(decoding: $0.body, as: UTF8.self).hasPrefix("new.counter") }
    #expect(fresh.map { $0.headers["content-type"] } == ["text/plain; charset=utf-8"])
}
