import Foundation
import Glibc
import Testing

/// Lines every backend test sends: a sampled counter, a gauge, a timer with three values, a
/// set, and a tag value holding a space and an equals sign.
private let workload = [
    "vm.hits:3|c|#env:ci\nvm.hits:2|c|@0.5|#env:ci\nvm.temp:21.5|g",
    "vm.lat:10:20:300|ms\nvm.users:a|s\nvm.users:b|s\nvm.odd:1|c|#path:a b=c",
]

extension HeavyEndToEndTests {
    /// One agent, four sinks on at once (remote write, Influx, Datadog and Graphite), one real
    /// VictoriaMetrics receiving them all: each format read back through its query API, exactly.
    // Budget: 1.3 s plain and under TSan with one core busy (2026-12-07); its waits (VictoriaMetrics ready 30
    // s, each value 20 s) are over 10x that.
    @Test func victoriaMetricsReceivesRemoteWriteInfluxDatadogAndGraphite() throws {
        let vm = try VictoriaMetricsServer()
        let agent = try vm.pushingAgent(
            [
                #"{"name": "rw", "url": "\#(vm.base)/api/v1/write", "format": "remote_write", "external_labels": {"agent": "a1"}}"#,
                #"{"name": "influx", "url": "\#(vm.base)/write", "format": "influx"}"#,
                #"{"name": "dd", "url": "\#(vm.base)/datadog/api/v1/series", "format": "datadog", "headers": {"DD-API-KEY": "k"}}"#,
            ], graphite: true)
        try agent.send(workload)
        #expect(try agent.stop() == 0)  // the final flush goes to every sink during shutdown
        #expect(!agent.stderr.text.contains("\"level\":\"error\""), "\(agent.stderr.text)")

        // Remote write: the names and cumulative values of /metrics, plus the push's external label.
        #expect(try vm.await(#"vm_hits_total{env="ci",agent="a1"}"#) == 7)
        #expect(try vm.await(#"vm_temp{agent="a1"}"#) == 21.5)
        #expect(try vm.await("vm_lat_seconds_count") == 3)
        #expect(try vm.await("vm_lat_seconds_sum") == 0.33)
        #expect(try vm.await(#"vm_lat_seconds_bucket{le="0.025"}"#) == 2)
        #expect(try vm.await(#"vm_lat_seconds_bucket{le="+Inf"}"#) == 3)
        #expect(try vm.await("vm_users") == 2)

        // Influx line protocol: <measurement>_<field>, tags as labels, escapes undone.
        #expect(try vm.await(#"{__name__="vm.hits_value",env="ci"}"#) == 7)
        #expect(try vm.await(#"{__name__="vm.temp_value"}"#) == 21.5)
        #expect(try vm.await(#"{__name__="vm.lat_count"}"#) == 3)
        #expect(try vm.await(#"{__name__="vm.lat_sum"}"#) == 330)
        #expect(try vm.await(#"{__name__="vm.lat_max"}"#) == 300)
        #expect(try vm.await(#"{__name__="vm.lat_p90"}"#) == 300)
        #expect(try vm.await(#"{__name__="vm.users_value"}"#) == 2)
        #expect(try vm.await(#"{__name__="vm.odd_value",path="a b=c"}"#) == 1)

        // The Datadog series API: counters as counts, each timer statistic a gauge.
        #expect(try vm.await(#"{__name__="vm.hits",env="ci"}"#) == 7)
        #expect(try vm.await(#"{__name__="vm.lat.mean"}"#) == 110)
        #expect(try vm.await(#"{__name__="vm.users"}"#) == 2)

        // Graphite plaintext, etsy statsd's names, tags as ;k=v.
        #expect(try vm.await(#"{__name__="stats.counters.vm.hits.count",env="ci"}"#) == 7)
        #expect(try vm.await(#"{__name__="stats.gauges.vm.temp"}"#) == 21.5)
        #expect(try vm.await(#"{__name__="stats.sets.vm.users.count"}"#) == 2)
        #expect(try vm.await(#"{__name__="stats.timers.vm.lat.count"}"#) == 3)
        #expect(try vm.await(#"{__name__="stats.timers.vm.lat.sum"}"#) == 330)
        #expect(try vm.await(#"{__name__="stats.timers.vm.lat.mean"}"#) == 110)
        #expect(try vm.await(#"{__name__="stats.timers.vm.lat.median"}"#) == 20)
        #expect(try vm.await(#"{__name__="stats.timers.vm.lat.upper_90"}"#) == 300)
        #expect(try vm.await(#"{__name__="stats.timers.vm.lat.count_90"}"#) == 3)
        #expect(try vm.await(#"{__name__="stats.timers.vm.lat.sum_squares"}"#) == 90_500)
        #expect(try vm.await(#"{__name__="stats.counters.vm.odd.count",path="a_b_c"}"#) == 1)
    }
}

/// `sinks.json.format: "emf"`: the file holds CloudWatch Embedded Metric Format objects.
@Test func theJSONSinkWritesEmbeddedMetricFormatForCloudWatch() throws {
    let dir = try TemporaryDirectory()
    let out = dir.file("emf.json")
    let agent = try StatorProcess(agent: [
        "--flush_interval", untilShutdown, "--sinks.json.path", out, "--sinks.json.format", "emf", "--sinks.json.namespace",
        "Checkout",
    ])
    try agent.send("emf.orders:2|c|#region:eu\nemf.latency:100:300|ms|#region:eu\nemf.queue:7|g")
    #expect(try agent.stop() == 0)
    let objects = try readFile(out).split(separator: "\n").map {
        try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
    }
    #expect(objects.count == 2)
    let eu = try #require(objects.first { $0["region"] as? String == "eu" })
    let aws = try #require(eu["_aws"] as? [String: Any])
    #expect((aws["Timestamp"] as? Int ?? 0) > 1_700_000_000_000)
    let directive = try #require((aws["CloudWatchMetrics"] as? [[String: Any]])?.first)
    #expect(directive["Namespace"] as? String == "Checkout")
    #expect(directive["Dimensions"] as? [[String]] == [["region"]])
    let units = Dictionary(
        uniqueKeysWithValues: (directive["Metrics"] as? [[String: String]] ?? []).map { ($0["Name"] ?? "", $0["Unit"] ?? "") })
    #expect(units["emf.orders"] == "Count")
    #expect(units["emf.latency.count"] == "Count")
    #expect(units["emf.latency.max"] == "Milliseconds")
    #expect(eu["emf.orders"] as? Double == 2)
    #expect(eu["emf.latency.max"] as? Double == 300)
    #expect(eu["emf.latency.mean"] as? Double == 200)
    // Every metric the directive names is a key of the object.
    for name in units.keys { #expect(eu[name] != nil, "\(name)") }
    let plain = try #require(objects.first { $0["emf.queue"] != nil })
    #expect(
        ((plain["_aws"] as? [String: Any])?["CloudWatchMetrics"] as? [[String: Any]])?.first?["Dimensions"] as? [[String]] == [[]]
    )
}

extension HeavyEndToEndTests {
    /// Scale-out: one agent per host, each with half of the traffic, both pushing remote write
    /// into one store. Counters add up exactly across the agents, and histograms merge: the
    /// quantile of the summed buckets lands in the bucket of the true quantile of all samples.
    // Budget: 4.6 s plain, 4.7 s under TSan with one core busy (2026-12-07); its waits are 20-30 s.
    @Test func twoAgentsIntoOneStoreSumAndMergeTheirHistograms() throws {
        let vm = try VictoriaMetricsServer()
        func agent(_ host: String) throws -> StatorProcess {
            try StatorProcess(agent: [
                "--flush_interval", "500ms", "--sinks.json.path", "", "--sinks.http_push.format", "remote_write",
                "--sinks.http_push.url", "http://127.0.0.1:\(vm.port)/api/v1/write",
                "--sinks.http_push.external_labels", #"{"host": "\#(host)"}"#,
            ])
        }
        let a = try agent("a")
        let b = try agent("b")
        // The counters appear at 0 first: a store cannot tell how much of a series' first sample
        // was counted before it (VictoriaMetrics' increase() guesses, Prometheus' leaves it out).
        try a.send("scale.requests:0|c")
        try b.send("scale.requests:0|c")
        try vm.await(#"count(scale_requests_total) == 2"#)
        // 1..400 ms: odd values to a, even to b; 300 requests to a, 200 to b, over several flushes.
        let values = Array(1...400)
        for round in 0..<4 {
            let slice = values[(round * 100)..<((round + 1) * 100)]
            try a.send(slice.filter { $0 % 2 == 1 }.map { "scale.lat:\($0)|ms" }.joined(separator: "\n"))
            try b.send(slice.filter { $0 % 2 == 0 }.map { "scale.lat:\($0)|ms" }.joined(separator: "\n"))
            try a.send(Array(repeating: "scale.requests:1|c", count: 75).joined(separator: "\n"))
            try b.send(Array(repeating: "scale.requests:1|c", count: 50).joined(separator: "\n"))
            usleep(600_000)
        }
        #expect(try a.stop() == 0)
        #expect(try b.stop() == 0)
        // Rows reach queries a moment after they are written: wait for the last flush's values.
        do {
            try eventually(timeout: 20, "both agents' last flushes in victoria-metrics") {
                try vm.value("sum(scale_lat_seconds_count)") == 400 && vm.value("sum(scale_requests_total)") == 500
            }
        } catch {
            Issue.record("\(error): \(try vm.query("scale_requests_total")), \(try vm.query("scale_lat_seconds_count"))")
        }
        #expect(try vm.value(#"scale_requests_total{host="a"}"#) == 300)
        #expect(try vm.value(#"scale_requests_total{host="b"}"#) == 200)
        #expect(try vm.value("sum(increase(scale_requests_total[5m]))") == 500)
        #expect(try vm.value("sum(scale_lat_seconds_count)") == 400)

        // The true 0.9 quantile of 1..400 ms is 360 ms: in the (0.25, 0.5] s bucket.
        let estimate = try #require(try vm.value("histogram_quantile(0.9, sum by (le) (rate(scale_lat_seconds_bucket[5m])))"))
        #expect(estimate > 0.25 && estimate <= 0.5, "estimate \(estimate)")
        // Each host's own 0.9 quantile is an estimate of a different population: they do not
        // average into the fleet's (see docs/operating.md), the merged buckets do.
    }
}
