import Foundation
import Glibc
import Testing

/// What a DogStatsD client sends by default (SPEC section 15): bare tags, origin fields on
/// every line, packed values with empty items.
private let dogStatsDTraffic = [
    "dd.req:1|c|#canary,env:prod,dd.internal.entity_id:pod-1\ndd.req:2|c|#env:prod,dd.internal.entity_id:pod-2",
    "dd.req:4|c|#env:prod,canary,dd.internal.card:high|c:ci-1|e:it-false\ndd.req:8|c|#env:prod|c:ci-2",
    "dd.lat:1.5:41:|d|#canary\ndd.gauge:3:|g|#dd.internal.entity_id:pod-1",
]

/// The tags of a JSON-lines object.
private func tags(_ object: [String: Any]) -> [String: String] { object["tags"] as? [String: String] ?? [:] }

/// Bare tags are part of the identity and read `true` on the page and in JSON lines, bare in
/// the Datadog push; origin fields are in none of them; empty packed items are skipped.
@Test func bareTagsAndOriginFieldsReachEverySinkAsTheDatadogAgentReadsThem() throws {
    let dir = try TemporaryDirectory()
    let out = dir.file("out.json")
    let receiver = try TestHTTPReceiver()
    let agent = try StatorProcess(agent: [
        "--flush_interval", untilShutdown, "--sinks.json.path", out, "--sinks.http_push.url",
        "http://127.0.0.1:\(receiver.port)/api/v1/series", "--sinks.http_push.format", "datadog",
    ])
    try agent.send(dogStatsDTraffic)
    #expect(try agent.stop() == 0)
    #expect(!readFile(out).contains("dd.internal"))

    let objects = try jsonLines(readFile(out))
    let requests = objects.filter { $0["name"] as? String == "dd.req" }
    #expect(requests.count == 2)
    #expect(requests.first { tags($0) == ["canary": "true", "env": "prod"] }?["value"] as? Double == 5)
    #expect(requests.first { tags($0) == ["env": "prod"] }?["value"] as? Double == 10)
    let latency = try #require(objects.first { $0["name"] as? String == "dd.lat" })
    #expect(tags(latency) == ["canary": "true"])
    #expect(latency["count"] as? Double == 2)
    #expect(latency["sum"] as? Double == 42.5)
    #expect(try #require(objects.first { $0["name"] as? String == "dd.gauge" })["value"] as? Double == 3)

    let body = try #require(receiver.requests.first).body
    let sent = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
    let series = try #require(sent["series"] as? [[String: Any]])
    let tagLists = Set(series.filter { $0["metric"] as? String == "dd.req" }.compactMap { $0["tags"] as? [String] })
    #expect(tagLists == [["canary", "env:prod"], ["env:prod"]])
    #expect(!String(decoding: body, as: UTF8.self).contains("dd.internal"))
}

/// On the Prometheus page a bare tag is a label `canary="true"`, a series of its own.
@Test func aBareTagIsALabelOnThePage() throws {
    let agent = try StatorProcess(agent: ["--flush_interval", "100ms", "--sinks.json.path", ""])
    try agent.send(dogStatsDTraffic)
    let page = try scrape(agent, until: "both dd.req series") {
        sample($0, #"dd_req_total{canary="true",env="prod"}"#) == 5 && sample($0, #"dd_req_total{env="prod"}"#) == 10
    }
    #expect(!page.contains("dd_internal"))
    #expect(!page.contains("container_id"))
    #expect(try agent.stop() == 0)
}

/// `dogstatsd.origin_tags: true`: the entity id, else the container id, is one `container_id` tag.
@Test func originTagsKeepTheEntityOrContainerIDAsOneTag() throws {
    let dir = try TemporaryDirectory()
    let out = dir.file("out.json")
    let agent = try StatorProcess(agent: [
        "--flush_interval", untilShutdown, "--sinks.json.path", out, "--dogstatsd.origin_tags", "true",
    ])
    try agent.send(dogStatsDTraffic)
    #expect(try agent.stop() == 0)
    let requests = try jsonLines(readFile(out)).filter { $0["name"] as? String == "dd.req" }
    let byTags = Dictionary(uniqueKeysWithValues: requests.map { (tags($0), $0["value"] as? Double ?? -1) })
    #expect(
        byTags == [
            ["canary": "true", "env": "prod", "container_id": "pod-1"]: 1, ["env": "prod", "container_id": "pod-2"]: 2,
            ["canary": "true", "env": "prod", "container_id": "ci-1"]: 4, ["env": "prod", "container_id": "ci-2"]: 8,
        ])
    #expect(!readFile(out).contains("dd.internal"))
}

extension HeavyEndToEndTests {
    /// Bare tags and origin fields through remote write, Influx, Datadog and Graphite into one
    /// real VictoriaMetrics: `canary="true"` everywhere, no origin field anywhere.
    // Budget: 1.2 s plain with other builds running (2026-12-07), not yet timed under TSan; it sends six
    // datagrams, so it is bound by VictoriaMetrics' start (30 s allowed), and each wait allows 20 s.
    @Test func bareTagsAndOriginFieldsThroughEveryPushFormat() throws {
        let vm = try VictoriaMetricsServer()
        let agent = try vm.pushingAgent(
            [
                #"{"name": "rw", "url": "\#(vm.base)/api/v1/write", "format": "remote_write"}"#,
                #"{"name": "influx", "url": "\#(vm.base)/write", "format": "influx"}"#,
                #"{"name": "dd", "url": "\#(vm.base)/datadog/api/v1/series", "format": "datadog", "headers": {"DD-API-KEY": "k"}}"#,
            ], graphite: true)
        try agent.send(dogStatsDTraffic)
        #expect(try agent.stop() == 0)

        #expect(try vm.await(#"dd_req_total{canary="true",env="prod"}"#) == 5)
        #expect(try vm.await(#"dd_req_total{canary="",env="prod"}"#) == 10)
        #expect(try vm.await(#"{__name__="dd.req_value",canary="true",env="prod"}"#) == 5)
        #expect(try vm.await(#"{__name__="dd.req_value",canary="",env="prod"}"#) == 10)
        // The Datadog push sends `canary` bare; VictoriaMetrics gives a bare tag a value of its own.
        #expect(try vm.await(#"{__name__="dd.req",canary!="",env="prod"}"#) == 5)
        #expect(try vm.await(#"{__name__="dd.req",canary="",env="prod"}"#) == 10)
        #expect(try vm.await(#"{__name__="stats.counters.dd.req.count",canary="true",env="prod"}"#) == 5)
        #expect(try vm.await(#"{__name__="stats.counters.dd.req.count",canary="",env="prod"}"#) == 10)
        // No origin field split a series in any format: two series each, not one per pod or container.
        for name in ["dd_req_total", "dd.req_value", "dd.req", "stats.counters.dd.req.count"] {
            #expect(try vm.await(#"count({__name__="\#(name)"})"#) == 2, "\(name)")
        }
    }
}
