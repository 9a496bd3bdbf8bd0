import Foundation
import Glibc
import Testing

// The operator's kit (issue 7): every file in etc/ is checked here, and `stator send`.

/// The metric family names on a live agent's `/metrics`, with the push sink enabled so
/// that its families show too.
func exportedFamilies() throws -> Set<String> {
    let dir = try TemporaryDirectory()
    let agent = try StatorProcess(agent: [
        "--sinks.json.path", "", "--sinks.http_push.url", "http://127.0.0.1:\(try freePort())/",
        "--mapping_config", repositoryPath("etc/mapping.yml"), "--tcp.address", "127.0.0.1:0",
        "--sinks.graphite.address", "127.0.0.1:\(try freePort())", "--sinks.rollup.path", dir.file("rollups.db"),
        "--sinks.rollup.limits", #"[{"match": "api.*", "daily": 1000}]"#,
    ])
    defer { _ = try? agent.stop() }
    let page = try httpRequest(port: agent.httpPort, "/metrics").body
    return Set(page.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map { String($0.split(separator: " ")[2]) })
}

/// Metric names (stator_*, process_*) mentioned in a text.
func metricNames(in text: String) -> Set<String> {
    Set(text.matches(of: #/\b(?:stator|process)_[a-z_]+\b/#).map { String($0.output) })
}

@Test func statorSendDeliversLinesAndReportsBadOnes() throws {
    let dir = try TemporaryDirectory()
    let out = dir.file("out.json")
    let agent = try StatorProcess(agent: ["--flush_interval", "100ms", "--sinks.json.path", out])
    let address = "127.0.0.1:\(agent.udpPort)"
    let binary = try statorBinary()

    // Lines as arguments: the bad one is named on stderr and not sent; exit 1.
    let (status, output) = try runProgram(binary, ["send", "--udp.address", address, "kit.c:1|c", "bad line", "kit.t:5|ms"])
    #expect(status == 1)
    #expect(output.contains("not sent (missing_colon): bad line"))
    // Standard input, 3,000 lines (packed into several datagrams), address from the environment.
    let lines = (0..<3_000).map { "kit.c:1|c|#n:\($0 % 10)" }.joined(separator: "\n") + "\n"
    let (stdinStatus, stdinOutput) = try runProgram(
        "/usr/bin/env", ["STATOR_UDP_ADDRESS=\(address)", binary, "send", "--stdin"], input: Array(lines.utf8))
    #expect(stdinStatus == 0, "\(stdinOutput)")
    try eventually("every line received") { try selfMetric(agent, "stator_lines_received_total") == 3_002 }
    #expect(try selfMetric(agent, "stator_packets_received_total") < 200)  // packed, not one datagram a line
    try eventually("the values flushed") { (try? counterSum(out, "kit.c")) == 3_001 }
    // Nothing to send is a usage error.
    #expect(try runProgram(binary, ["send", "--udp.address", address]).0 == 2)
    #expect(try agent.stop() == 0)
}

/// systemd-analyze comes with Debian's systemd package (scripts/test installs it when root).
@Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze")))
func theSystemdUnitVerifiesAndIsHardened() throws {
    let unit = readFile(repositoryPath("etc/systemd/stator.service"))
    for directive in [
        "DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict", "StateDirectory=stator", "LogsDirectory=stator",
        "Restart=on-failure", "KillSignal=SIGTERM", "TimeoutStopSec=30s", "CapabilityBoundingSet=\n",
    ] {
        #expect(unit.contains(directive), "missing \(directive)")
    }
    // The stop timeout outlasts the final flush: sinks get 10 s, the push sink 5 s more.
    // systemd-analyze needs the ExecStart binary to exist: point it at the one under test.
    let verify = try tool("systemd-analyze")
    let dir = try TemporaryDirectory()
    let copy = dir.file("stator.service")
    try unit.replacingOccurrences(of: "ExecStart=/usr/local/bin/stator", with: "ExecStart=\(try statorBinary())")
        .write(toFile: copy, atomically: true, encoding: .utf8)
    let (status, output) = try runProgram(verify, ["verify", "--man=no", copy])
    #expect(status == 0)
    // Unknown keys are only warnings there. (Lines about units other packages installed, such
    // as graphite-carbon's, are not about this one.)
    let about = output.split(separator: "\n").filter { line in
        !["/lib/systemd/", "/usr/lib/systemd/", "/etc/systemd/"].contains { line.hasPrefix($0) }
    }
    #expect(about.isEmpty, "systemd-analyze verify: \(output)")
}

@Test func prometheusConfigAlertsAndTheirUnitTestsPass() throws {
    let promtool = try tool("promtool")
    let (configStatus, configOutput) = try runProgram(promtool, ["check", "config", repositoryPath("etc/prometheus/scrape.yml")])
    #expect(configStatus == 0, "\(configOutput)")
    #expect(configOutput.contains("SUCCESS: 9 rules found"))
    let (rulesStatus, rulesOutput) = try runProgram(promtool, ["check", "rules", repositoryPath("etc/prometheus/alerts.yml")])
    #expect(rulesStatus == 0, "\(rulesOutput)")
    let (testStatus, testOutput) = try runProgram(promtool, ["test", "rules", repositoryPath("etc/prometheus/alerts.test.yml")])
    #expect(testStatus == 0, "\(testOutput)")
    // Every alert has a test, and the rules name only metrics the agent exports.
    let alerts = readFile(repositoryPath("etc/prometheus/alerts.yml"))
    let tests = readFile(repositoryPath("etc/prometheus/alerts.test.yml"))
    for line in alerts.split(separator: "\n") where line.contains("- alert: ") {
        let name = line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)
        #expect(tests.contains("alertname: \(name)"), "no promtool test for \(name)")
    }
    let exported = try exportedFamilies()
    #expect(metricNames(in: alerts).subtracting(exported).isEmpty, "\(metricNames(in: alerts).subtracting(exported))")
}

@Test func theGrafanaDashboardIsValidAndQueriesOnlyExportedMetrics() throws {
    let text = readFile(repositoryPath("etc/grafana/stator.json"))
    let dashboard = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    let variables = try #require((dashboard["templating"] as? [String: Any])?["list"] as? [[String: Any]])
    #expect(variables.contains { $0["name"] as? String == "datasource" && $0["type"] as? String == "datasource" })
    let panels = try #require(dashboard["panels"] as? [[String: Any]]).filter { $0["type"] as? String != "row" }
    #expect(panels.count >= 9)
    var expressions: [String] = []
    for panel in panels {
        let datasource = panel["datasource"] as? [String: Any]
        #expect(datasource?["uid"] as? String == "${datasource}", "panel \(panel["title"] ?? "") has a fixed data source")
        for target in panel["targets"] as? [[String: Any]] ?? [] { expressions.append(target["expr"] as? String ?? "") }
    }
    let used = metricNames(in: expressions.joined(separator: "\n"))
    let exported = try exportedFamilies()
    #expect(used.subtracting(exported).isEmpty, "not exported: \(used.subtracting(exported))")
    // Stator's health is all there: ingest, invalid lines, drops, series, flush, sinks, push.
    for name in [
        "stator_lines_received_total", "stator_lines_invalid_total", "stator_udp_kernel_drops_total",
        "stator_series_active", "stator_flush_duration_seconds", "stator_sink_errors_total", "stator_push_queue_bytes",
        "stator_lines_dropped_total", "stator_mapping_series_total", "stator_mapping_reloads_total", "stator_mapping_rules",
        "stator_rollup_usage_ratio",
    ] {
        #expect(used.contains(name), "no panel shows \(name)")
    }
    // And a row for the aggregated series.
    #expect(text.contains(#""title": "Aggregated series""#))
}
