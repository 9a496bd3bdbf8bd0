import Foundation
import Glibc
import Testing

/// A mapping file with one of each kind of rule.
private let mappingFile = #"""
    defaults:
      observer_type: histogram
    mappings:
    # statsd_exporter's README example: the dimensions are inside the name.
    - match: "airflow.dag.*.task.*.duration"
      name: "airflow_task_duration"
      labels:
        dag: "$1"
        task: "$2"
    - match: "test.dispatcher.*.*.*"
      name: "dispatcher_events_total"
      labels:
        processor: "$1"
        action: "$2"
        outcome: "$3"
        job: "test_dispatcher"
    - match: "honoured.*"
      name: "honoured_total"
      honor_labels: true
      labels:
        env: "mapping"
    - match: "api.*.latency"
      name: "api_latency_seconds"
      observer_type: summary
      summary_options:
        quantiles:
          - quantile: 0.5
            error: 0.05
          - quantile: 0.99
            error: 0.001
      labels:
        route: "$1"
      help: "API latency by route."
    - match: "bytes.*"
      name: "transferred_kibibytes"
      scale: 0.0009765625
      labels:
        direction: "$1"
    - match: 'debug\.'
      match_type: regex
      action: drop
    - match: 'empty\.(x?)$'
      match_type: regex
      name: "$1"
    """#

@Test func mappedNamesAndLabelsReachMetricsAndJSON() throws {
    let dir = try TemporaryDirectory()
    let mapping = dir.file("mapping.yml")
    try mappingFile.write(toFile: mapping, atomically: true, encoding: .utf8)
    let out = dir.file("out.json")
    let agent = try StatorProcess(agent: [
        "--mapping_config", mapping, "--flush_interval", "1s", "--sinks.json.path", out,
        "--sinks.prometheus.prefix", "app_",
    ])
    try agent.send([
        "airflow.dag.etl.task.load.duration:1500|ms\nairflow.dag.etl.task.load.duration:500|ms|#env:prod",
        "test.dispatcher.FooProcessor.send.success:1|c\ntest.dispatcher.FooProcessor.send.success:2|c|#job:mine",
        "honoured.a:1|c|#env:prod\nhonoured.b:1|c",
        "bytes.in:2048|c\nbytes.in:1024|c",
        "debug.x:1|c\ndebug.y:5|g\nempty.:1|c\nplain.name:3|c",
        "api.users.latency:10|ms\napi.users.latency:20|ms\napi.users.latency:30|ms",
    ])
    // The summary's quantiles are the last interval's: sent last, they are on the first page
    // that has them (a flush between two datagrams would leave them off a later page).
    let page = try scrape(agent, until: "the mapped series") {
        sample($0, "app_plain_name_total") == 3 && $0.contains(#"api_latency_seconds{quantile="0.5",route="users"}"#)
    }
    // Mapped families are named as the rule says: no prefix, no _total or _seconds added.
    #expect(sample(page, #"airflow_task_duration_count{dag="etl",task="load"}"#) == 1)
    #expect(sample(page, #"airflow_task_duration_count{dag="etl",env="prod",task="load"}"#) == 1)
    #expect(sample(page, #"airflow_task_duration_sum{dag="etl",task="load"}"#) == 1.5)
    // A mapping label wins over a line's tag of the same name unless honor_labels.
    #expect(
        sample(
            page, #"dispatcher_events_total{action="send",job="test_dispatcher",outcome="success",processor="FooProcessor"}"#)
            == 3)
    #expect(sample(page, #"honoured_total{env="prod"}"#) == 1)
    #expect(sample(page, #"honoured_total{env="mapping"}"#) == 1)
    // A summary: the interval's exact quantiles, _sum and _count; its HELP from the rule.
    #expect(page.contains("# HELP api_latency_seconds API latency by route.\n# TYPE api_latency_seconds summary\n"))
    #expect(sample(page, #"api_latency_seconds{quantile="0.5",route="users"}"#) == 0.02)
    #expect(sample(page, #"api_latency_seconds{quantile="0.99",route="users"}"#) == 0.03)
    #expect(sample(page, #"api_latency_seconds_sum{route="users"}"#) == 0.06)
    #expect(sample(page, #"api_latency_seconds_count{route="users"}"#) == 3)
    // scale multiplies the value.
    #expect(sample(page, #"transferred_kibibytes{direction="in"}"#) == 3)
    #expect(!page.contains("debug"))
    #expect(try selfMetric(agent, #"stator_lines_dropped_total{reason="mapping"}"#) == 2)
    #expect(try selfMetric(agent, #"stator_lines_dropped_total{reason="mapping_invalid_name"}"#) == 1)
    #expect(try selfMetric(agent, "stator_mapping_rules") == 7)
    #expect(try selfMetric(agent, #"stator_mapping_series_total{result="unmatched"}"#) == 1)
    #expect(try selfMetric(agent, #"stator_mapping_series_total{result="matched"}"#) == 7)
    #expect(try agent.stop() == 0)

    // The JSON lines carry the mapped name, and the labels as tags.
    let lines = try jsonLines(readFile(out))
    let dispatcher = try #require(lines.first { $0["name"] as? String == "dispatcher_events_total" })
    #expect(
        dispatcher["tags"] as? [String: String]
            == ["processor": "FooProcessor", "action": "send", "outcome": "success", "job": "test_dispatcher"])
    #expect(dispatcher["value"] as? Double == 3)
    #expect(lines.contains { $0["name"] as? String == "plain.name" })
    #expect(!lines.contains { ($0["name"] as? String ?? "").hasPrefix("debug") })
}

@Test func reloadsSwapTheRulesAndABadFileKeepsTheOldOnes() throws {
    let dir = try TemporaryDirectory()
    let mapping = dir.file("mapping.yml")
    try "mappings:\n- match: \"jobs.*\"\n  name: \"jobs_first_total\"\n".write(toFile: mapping, atomically: true, encoding: .utf8)
    let agent = try StatorProcess(agent: ["--mapping_config", mapping, "--flush_interval", "1s", "--sinks.json.path", ""])
    try agent.send("jobs.a:1|c")
    try scrape(agent, until: "the first rules") { sample($0, "jobs_first_total") == 1 }

    // POST /-/reload: the new rules apply to the next line, also of a name seen before.
    try "mappings:\n- match: \"jobs.*\"\n  name: \"jobs_second_total\"\n".write(toFile: mapping, atomically: true, encoding: .utf8)
    let reloaded = try reload(agent)
    #expect(reloaded.status == 200)
    #expect(reloaded.body == "reloaded: 1 mapping rules\n")
    try agent.send("jobs.a:1|c")
    let page = try scrape(agent, until: "the second rules") { sample($0, "jobs_second_total") == 1 }
    #expect(sample(page, "jobs_first_total") == 1)  // what was aggregated before stays

    // A bad file: 400 with the reason, and the rules in force stay.
    try "mappings:\n- match: \"jobs.*\"\n  name: \"bad.name\"\n".write(toFile: mapping, atomically: true, encoding: .utf8)
    let refused = try reload(agent)
    #expect(refused.status == 400)
    #expect(refused.body.hasPrefix("mapping_config \(mapping): line 3: name bad.name is not a metric name"))
    #expect(try httpRequest(port: agent.httpPort, "/-/reload").status == 405)
    try agent.send("jobs.a:1|c")
    try scrape(agent, until: "the second rules still") { sample($0, "jobs_second_total") == 2 }

    // SIGHUP reloads too.
    try "mappings:\n- match: \"jobs.*\"\n  name: \"jobs_third_total\"\n".write(toFile: mapping, atomically: true, encoding: .utf8)
    agent.signal(SIGHUP)
    try eventually("the SIGHUP reload") { try selfMetric(agent, #"stator_mapping_reloads_total{result="success"}"#) == 2 }
    try agent.send("jobs.a:1|c")
    try scrape(agent, until: "the third rules") { sample($0, "jobs_third_total") == 1 }
    #expect(try selfMetric(agent, #"stator_mapping_reloads_total{result="success"}"#) == 2)
    #expect(try selfMetric(agent, #"stator_mapping_reloads_total{result="failure"}"#) == 1)
    #expect(agent.stderr.text.contains("mapping rules not reloaded: the old rules stay"))
    #expect(try agent.stop() == 0)
}

@Test func aReloadThatEditsARulesOptionsTakesEffectOnTheSeriesItMade() throws {
    // Before: the gauge froze at its old value beside a new copy, HELP kept the old text, the
    // timer's count stopped (bucket_conflict) and every series existed twice.
    let dir = try TemporaryDirectory()
    let mapping = dir.file("mapping.yml")
    func rules(help: String, timer: String) -> String {
        """
        mappings:
        - match: "c.*"
          name: "cnt_total"
          labels: {k: "$1"}
        - match: "g.*"
          name: "gau"
          help: "\(help)"
          labels: {k: "$1"}
        - match: "t.*"
          name: "tim"
          labels: {k: "$1"}
        \(timer)
        """
    }
    try rules(help: "first help", timer: "  histogram_options: {buckets: [1, 2]}").write(
        toFile: mapping, atomically: true, encoding: .utf8)
    let agent = try StatorProcess(agent: ["--mapping_config", mapping, "--flush_interval", "200ms", "--sinks.json.path", ""])
    try agent.send("c.x:1|c\ng.x:5|g\nt.x:100|ms")
    try scrape(agent, until: "the first values") {
        sample($0, #"cnt_total{k="x"}"#) == 1 && sample($0, #"gau{k="x"}"#) == 5 && sample($0, #"tim_count{k="x"}"#) == 1
    }

    // New help and buckets: the same rules otherwise.
    try rules(help: "second help", timer: "  histogram_options: {buckets: [0.5, 1, 2]}").write(
        toFile: mapping, atomically: true, encoding: .utf8)
    #expect(try reload(agent).status == 200)
    try agent.send("c.x:2|c\ng.x:7|g\nt.x:100|ms")
    let page = try scrape(agent, until: "the values after the reload") {
        sample($0, #"gau{k="x"}"#) == 7 && sample($0, #"tim_bucket{k="x",le="0.5"}"#) == 1
    }
    #expect(sample(page, #"cnt_total{k="x"}"#) == 3)  // a counter's total carries on
    #expect(page.contains("# HELP gau second help\n"))
    #expect(page.components(separatedBy: "# TYPE gau gauge").count == 2)  // one family, once
    #expect(!page.contains("first help"))
    // The histogram with new buckets started again from zero: the new sample alone.
    #expect(sample(page, #"tim_count{k="x"}"#) == 1)
    #expect(sample(page, #"tim_bucket{k="x",le="+Inf"}"#) == 1)
    #expect(!page.contains(#"tim_bucket{k="x",le="1"} 2"#))
    #expect(sample(page, "stator_mapping_series_reset_total") == 1)
    #expect(sample(page, "stator_series_active") == 3)
    #expect((sample(page, #"stator_series_dropped_total{reason="bucket_conflict"}"#) ?? 0) == 0)

    // observer_type: summary for the timer rule: the family is made again as a summary.
    try rules(help: "second help", timer: "  observer_type: summary").write(toFile: mapping, atomically: true, encoding: .utf8)
    #expect(try reload(agent).status == 200)
    try agent.send("t.x:300|ms")
    let summary = try scrape(agent, until: "the timer as a summary") {
        $0.contains("# TYPE tim summary\n") && sample($0, #"tim{k="x",quantile="0.5"}"#) == 0.3
    }
    #expect(!summary.contains("# TYPE tim histogram"))
    #expect(sample(summary, #"tim_count{k="x"}"#) == 1)
    #expect(sample(summary, "stator_mapping_series_reset_total") == 2)
    #expect(sample(summary, "stator_series_active") == 3)
    #expect(try agent.stop() == 0)
}

@Test func newBucketsForOneOfTwoRulesOfAFamilyConflictInsteadOfResettingIt() throws {
    // Two rules feed one histogram family with the same buckets; a reload changes one rule's.
    // Resetting the family to whichever rule's sample came last flipped it every flush.
    let dir = try TemporaryDirectory()
    let mapping = dir.file("mapping.yml")
    func rules(_ webBuckets: String) -> String {
        """
        mappings:
        - match: "app.*.lat"
          name: "lat2"
          labels: {svc: "$1"}
          histogram_options: {buckets: [0.01, 0.1, 1]}
        - match: "web.*.lat"
          name: "lat2"
          labels: {svc: "$1"}
          histogram_options: {buckets: \(webBuckets)}
        """
    }
    try rules("[0.01, 0.1, 1]").write(toFile: mapping, atomically: true, encoding: .utf8)
    let agent = try StatorProcess(agent: ["--mapping_config", mapping, "--flush_interval", "100ms", "--sinks.json.path", ""])
    try agent.send("app.a.lat:50|ms\nweb.w.lat:200|ms")
    try scrape(agent, until: "both series") {
        sample($0, #"lat2_count{svc="a"}"#) == 1 && sample($0, #"lat2_count{svc="w"}"#) == 1
    }
    try rules("[0.5, 5]").write(toFile: mapping, atomically: true, encoding: .utf8)
    #expect(try reload(agent).status == 200)
    // Four rounds, each in an interval of its own (the next waits for the last to show).
    for round in 1...4 {
        try agent.send("app.a.lat:50|ms\nweb.w.lat:200|ms")
        try scrape(agent, until: "round \(round) of app.a") { sample($0, #"lat2_count{svc="a"}"#) == Double(1 + round) }
    }
    let page = try scrape(agent, until: "the web rule's samples counted as conflicts") {
        (sample($0, #"stator_series_dropped_total{reason="bucket_conflict",sink="prometheus"}"#) ?? 0) >= 4
    }
    #expect(sample(page, "stator_mapping_series_reset_total") == 0)
    #expect(sample(page, #"lat2_bucket{le="0.1",svc="a"}"#) == 5)  // the family keeps its buckets
    #expect(sample(page, #"lat2_count{svc="w"}"#) == 1)
    #expect(!page.contains(#"le="0.5""#))
    #expect(try agent.stop() == 0)
}

extension HeavyEndToEndTests {
    // Budget: 0.3 s plain (100 rounds) and under TSan (10 rounds) (2026-12-07); the wait for every line is 30
    // s.
    @Test func reloadingAHundredTimesUnderLoadLosesNoLine() throws {
        let dir = try TemporaryDirectory()
        let mapping = dir.file("mapping.yml")
        let files = ["a", "b"].map { "mappings:\n- match: \"load.*\"\n  name: \"load_\($0)_total\"\n  labels:\n    n: \"$1\"\n" }
        try files[0].write(toFile: mapping, atomically: true, encoding: .utf8)
        let out = dir.file("out.json")
        let agent = try StatorProcess(agent: ["--mapping_config", mapping, "--flush_interval", untilShutdown, "--sinks.json.path", out])
        // 100 rounds in the plain pass, 10 under the sanitizers (each round is a flood of
        // 1,000 lines; ten rounds still switch rules under load, both ways, five times each).
        let rounds = TestBuild.scaled(100)
        let perRound = 40
        let perDatagram = 25
        let datagrams = rounds * perRound
        let text = Array((0..<perDatagram).map { "load.\($0 % 5):1|c" }.joined(separator: "\n").utf8)
        // Each round sends lines and reloads while they are still in flight (queued in the
        // socket, or being read): the readers switch rules between two receive batches.
        for k in 1...rounds {
            try sendUDP(Array(repeating: text, count: perRound), host: agent.udpHost, port: agent.udpPort)
            try files[k % 2].write(toFile: mapping, atomically: true, encoding: .utf8)
            #expect(try reload(agent).status == 200)
        }
        try eventually(timeout: 30, "every line received") {
            try selfMetric(agent, "stator_lines_received_total") == Double(datagrams * perDatagram)
        }
        #expect(try selfMetric(agent, "stator_udp_kernel_drops_total") == 0)
        #expect(try selfMetric(agent, #"stator_mapping_reloads_total{result="success"}"#) == Double(rounds))
        #expect(try agent.stop() == 0)
        // Every line landed in one of the two mapped names: none lost, none unmapped.
        let (a, b) = (try counterSum(out, "load_a_total"), try counterSum(out, "load_b_total"))
        #expect(a + b == Double(datagrams * perDatagram))
        #expect(a > 0 && b > 0)  // both rule sets were in force while lines arrived
        #expect(try counterSum(out, "load.0") == 0)
    }
}

/// Anyone who can reach the HTTP port can ask for reloads: 90 a second wrote 90 log lines a
/// second. Each reload is counted; the log says so once a second at most.
@Test func aFloodOfReloadsIsCountedAndLoggedOnceASecond() throws {
    let dir = try TemporaryDirectory()
    let mapping = dir.file("mapping.yml")
    try "mappings:\n- match: \"jobs.*\"\n  name: \"jobs_total\"\n".write(toFile: mapping, atomically: true, encoding: .utf8)
    let agent = try StatorProcess(agent: ["--mapping_config", mapping, "--flush_interval", untilShutdown, "--sinks.json.path", ""])
    let started = Date()
    for _ in 0..<30 { #expect(try reload(agent).status == 200) }
    let seconds = Date().timeIntervalSince(started)
    #expect(try selfMetric(agent, #"stator_mapping_reloads_total{result="success"}"#) == 30)
    #expect(try agent.stop() == 0)
    let logged = agent.stderr.text.components(separatedBy: "mapping rules reloaded").count - 1
    #expect(logged >= 1 && logged <= Int(seconds) + 1, "\(logged) lines in \(seconds) s")
}

/// `POST /-/reload`; on failure, says what the agent last logged (a sanitizer's report ends it).
private func reload(_ agent: StatorProcess) throws -> HTTPReply {
    do {
        return try httpRequest(port: agent.httpPort, "/-/reload", method: "POST")
    } catch {
        let state = agent.process.isRunning ? "running" : "exited with \(agent.process.terminationStatus)"
        throw TestFailure("\(error); the agent is \(state); its stderr ends: \(agent.stderr.text.suffix(3000))")
    }
}

@Test(arguments: [
    ("mappings:\n- match: api_*_count\n  name: x\n", "line 2: match api_*_count is not a glob"),
    ("mappings:\n- match: \"(a\"\n  match_type: regex\n  name: x\n", "line 2: match is not a valid regular expression"),
    ("mappings:\n- match: a.b\n  name: x\n  ttl: soon\n", "line 4: ttl must be a duration"),
    ("mappings:\n- match: a.b\n  name: x\n  labels:\n    bad-label: y\n", "line 5: label name bad-label is invalid"),
    ("mappings:\n- match: a.b\n  name: x\n  colour: red\n", "line 4: unknown key colour in a mapping"),
    ("mappings:\n  - match: a\n   name: x\n", "line 3:"),
])
func aBadMappingFileStopsTheStartNamingItsLine(_ text: String, _ message: String) throws {
    let dir = try TemporaryDirectory()
    let mapping = dir.file("mapping.yml")
    try text.write(toFile: mapping, atomically: true, encoding: .utf8)
    for command in [["check-config"], []] {
        let agent = try StatorProcess(
            command + ["--mapping_config", mapping, "--udp.address", "127.0.0.1:0", "--http.address", "127.0.0.1:0"],
            waitForStart: false)
        #expect(try agent.waitForExit() == 2)
        #expect(agent.stderr.text.contains("stator: mapping_config \(mapping): \(message)"), "\(agent.stderr.text)")
    }
}

@Test func statorMapPrintsTheRuleAndWhatItMakes() throws {
    let dir = try TemporaryDirectory()
    let mapping = dir.file("mapping.yml")
    try mappingFile.write(toFile: mapping, atomically: true, encoding: .utf8)
    func map(_ arguments: [String]) throws -> (Int32, String) {
        let run = try StatorProcess(["map"] + arguments + ["--mapping_config", mapping], waitForStart: false)
        let status = try run.waitForExit()
        return (status, run.stdout.text + run.stderr.text)
    }
    #expect(
        try map(["airflow.dag.etl.task.load.duration", "--type", "ms"])
            == (
                0,
                """
                airflow.dag.etl.task.load.duration (timer, observer): rule 1 (line 5, glob airflow.dag.*.task.*.duration)
                  name: airflow_task_duration
                  label: dag="etl"
                  label: task="load"
                  on /metrics: airflow_task_duration (histogram)

                """
            ))
    #expect(try map(["debug.x"]) == (0, "debug.x (counter, counter): dropped by rule 6 (line 39, regex debug\\.)\n"))
    #expect(
        try map(["other.name", "--type", "g"])
            == (0, "other.name (gauge, gauge): no rule matches; the name is used as without a mapping (other_name on /metrics)\n"))
    #expect(try map(["a", "--type", "x"]).0 == 2)
    #expect(try map([]).0 == 2)
}

@Test func theExampleMappingFileLoads() throws {
    let run = try StatorProcess(["check-config", "--mapping_config", repositoryPath("etc/mapping.yml")], waitForStart: false)
    #expect(try run.waitForExit() == 0)
    #expect(run.stdout.text.contains("\"mapping_config\""))
}

@Test func theMappingPagesStatorMapExampleIsWhatItPrints() throws {
    // docs/mapping.md shows `stator map` on etc/mapping.yml: the command and its output, verbatim.
    let page = readFile(repositoryPath("docs/mapping.md"))
    let block = try #require(page.components(separatedBy: "```sh\n$ stator map ").dropFirst().first)
    let text = try #require(block.components(separatedBy: "\n```").first)
    let command = try #require(text.split(separator: "\n").first).split(separator: " ").map(String.init)
    let expected = text.split(separator: "\n").dropFirst().joined(separator: "\n") + "\n"
    let run = try StatorProcess(
        ["map"] + command.map { $0 == "etc/mapping.yml" ? repositoryPath($0) : $0 }, waitForStart: false)
    #expect(try run.waitForExit() == 0)
    #expect(run.stdout.text == expected)
}
