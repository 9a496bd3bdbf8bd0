import Foundation
import Glibc
import Testing

/// Lines every backend test sends: a sampled counter, a gauge, a timer with three values, a
/// set, and a tag value holding a space and an equals sign.
private let workload = [
    "vm.hits:3|c|#env:ci\nvm.hits:2|c|@0.5|#env:ci\nvm.temp:21.5|g",
    "vm.lat:10:20:300|ms\nvm.users:a|s\nvm.users:b|s\nvm.odd:1|c|#path:a b=c",
]

/// One agent, four sinks on at once (remote write, Influx, Datadog and Graphite), one real
/// VictoriaMetrics receiving them all: each format read back through its query API, exactly.
@Test func victoriaMetricsReceivesRemoteWriteInfluxDatadogAndGraphite() throws {
    let vm = try VictoriaMetricsServer()
    let dir = try TemporaryDirectory()
    let config = dir.file("stator.json")
    let base = "http://127.0.0.1:\(vm.port)"
    try """
    {"sinks": {
      "json": {"path": ""},
      "graphite": {"address": "127.0.0.1:\(vm.graphitePort)"},
      "http_push": [
        {"name": "rw", "url": "\(base)/api/v1/write", "format": "remote_write", "external_labels": {"agent": "a1"}},
        {"name": "influx", "url": "\(base)/write", "format": "influx"},
        {"name": "dd", "url": "\(base)/datadog/api/v1/series", "format": "datadog", "headers": {"DD-API-KEY": "k"}}
      ]
    }}
    """.write(toFile: config, atomically: true, encoding: .utf8)
    let agent = try StatorProcess(agent: ["--config", config, "--flush_interval", "1h"])
    try agent.send(workload)
    #expect(try agent.stop() == 0)  // the final flush goes to every sink during shutdown
    #expect(!agent.stderr.text.contains("\"level\":\"error\""), "\(agent.stderr.text)")

    // Remote write: the names and cumulative values of /metrics, plus the push's external label.
    #expect(try vm.await(#"vm_hits_total{env="ci",agent="a1"}"#) == 7)
    #expect(try vm.value(#"vm_temp{agent="a1"}"#) == 21.5)
    #expect(try vm.value("vm_lat_seconds_count") == 3)
    #expect(try vm.value("vm_lat_seconds_sum") == 0.33)
    #expect(try vm.value(#"vm_lat_seconds_bucket{le="0.025"}"#) == 2)
    #expect(try vm.value(#"vm_lat_seconds_bucket{le="+Inf"}"#) == 3)
    #expect(try vm.value("vm_users") == 2)

    // Influx line protocol: <measurement>_<field>, tags as labels, escapes undone.
    #expect(try vm.await(#"{__name__="vm.hits_value",env="ci"}"#) == 7)
    #expect(try vm.value(#"{__name__="vm.temp_value"}"#) == 21.5)
    #expect(try vm.value(#"{__name__="vm.lat_count"}"#) == 3)
    #expect(try vm.value(#"{__name__="vm.lat_sum"}"#) == 330)
    #expect(try vm.value(#"{__name__="vm.lat_max"}"#) == 300)
    #expect(try vm.value(#"{__name__="vm.lat_p90"}"#) == 300)
    #expect(try vm.value(#"{__name__="vm.users_value"}"#) == 2)
    #expect(try vm.value(#"{__name__="vm.odd_value",path="a b=c"}"#) == 1)

    // The Datadog series API: counters as counts, each timer statistic a gauge.
    #expect(try vm.await(#"{__name__="vm.hits",env="ci"}"#) == 7)
    #expect(try vm.value(#"{__name__="vm.lat.mean"}"#) == 110)
    #expect(try vm.value(#"{__name__="vm.users"}"#) == 2)

    // Graphite plaintext, etsy statsd's names, tags as ;k=v.
    #expect(try vm.await(#"{__name__="stats.counters.vm.hits.count",env="ci"}"#) == 7)
    #expect(try vm.value(#"{__name__="stats.gauges.vm.temp"}"#) == 21.5)
    #expect(try vm.value(#"{__name__="stats.sets.vm.users.count"}"#) == 2)
    #expect(try vm.value(#"{__name__="stats.timers.vm.lat.count"}"#) == 3)
    #expect(try vm.value(#"{__name__="stats.timers.vm.lat.sum"}"#) == 330)
    #expect(try vm.value(#"{__name__="stats.timers.vm.lat.mean"}"#) == 110)
    #expect(try vm.value(#"{__name__="stats.timers.vm.lat.median"}"#) == 20)
    #expect(try vm.value(#"{__name__="stats.timers.vm.lat.upper_90"}"#) == 300)
    #expect(try vm.value(#"{__name__="stats.timers.vm.lat.count_90"}"#) == 3)
    #expect(try vm.value(#"{__name__="stats.timers.vm.lat.sum_squares"}"#) == 90_500)
    #expect(try vm.value(#"{__name__="stats.counters.vm.odd.count",path="a_b_c"}"#) == 1)
}

/// `sinks.json.format: "emf"`: the file holds CloudWatch Embedded Metric Format objects.
@Test func theJSONSinkWritesEmbeddedMetricFormatForCloudWatch() throws {
    let dir = try TemporaryDirectory()
    let out = dir.file("emf.json")
    let agent = try StatorProcess(agent: [
        "--flush_interval", "1h", "--sinks.json.path", out, "--sinks.json.format", "emf", "--sinks.json.namespace", "Checkout",
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
