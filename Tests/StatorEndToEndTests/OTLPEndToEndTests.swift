import Foundation
import Glibc
import Testing

/// Decodes OTLP request bodies with the official `opentelemetry-proto` package (scripts/test
/// installs it from PyPI), not with Stator's code, into JSON (protobuf's own mapping: 64-bit
/// integers as strings, fields in camelCase).
private func decodeOTLP(_ bodies: [[UInt8]]) throws -> [[String: Any]] {
    let dir = try TemporaryDirectory()
    var paths: [String] = []
    for (n, body) in bodies.enumerated() {
        let path = dir.file("body\(n).bin")
        try Data(body).write(to: URL(fileURLWithPath: path))
        paths.append(path)
    }
    let script = """
        import json, sys
        from google.protobuf import json_format
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
        out = []
        for path in sys.argv[1:]:
            request = ExportMetricsServiceRequest()
            request.ParseFromString(open(path, "rb").read())
            out.append(json_format.MessageToDict(request))
        print(json.dumps(out))
        """
    let (status, output) = try runProgram(try python(), ["-c", script] + paths)
    guard status == 0, let decoded = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [[String: Any]] else {
        throw TestFailure("the opentelemetry-proto decoder refused the body: \(output)")
    }
    return decoded
}

/// The metrics of a decoded request, by name (several `Metric`s of one name are merged).
private func metrics(_ request: [String: Any]) -> [String: [String: Any]] {
    var result: [String: [String: Any]] = [:]
    for resource in request["resourceMetrics"] as? [[String: Any]] ?? [] {
        for scope in resource["scopeMetrics"] as? [[String: Any]] ?? [] {
            for metric in scope["metrics"] as? [[String: Any]] ?? [] {
                guard let name = metric["name"] as? String else { continue }
                result[name] = metric
            }
        }
    }
    return result
}

private func attributes(_ point: [String: Any]) -> [String: String] {
    var result: [String: String] = [:]
    for kv in point["attributes"] as? [[String: Any]] ?? [] {
        if let key = kv["key"] as? String, let value = (kv["value"] as? [String: Any])?["stringValue"] as? String {
            result[key] = value
        }
    }
    return result
}

/// An agent with one OTLP push of `temporality` to `receiver`, flushing only at shutdown.
private func otlpAgent(pushingTo receiver: TestHTTPReceiver, _ temporality: String) throws -> StatorProcess {
    try StatorProcess(agent: [
        "--flush_interval", untilShutdown, "--sinks.json.path", "", "--sinks.http_push.url",
        "http://127.0.0.1:\(receiver.port)/v1/metrics", "--sinks.http_push.format", "otlp",
        "--sinks.http_push.temporality", temporality,
    ])
}

private func points(_ metric: [String: Any]?, _ kind: String) -> [[String: Any]] {
    (metric?[kind] as? [String: Any])?["dataPoints"] as? [[String: Any]] ?? []
}

@Test func otlpDeltaCarriesEachIntervalUnderTheStatsdNames() throws {
    let receiver = try TestHTTPReceiver()
    let agent = try StatorProcess(agent: [
        "--flush_interval", untilShutdown, "--sinks.json.path", "", "--sinks.http_push.url",
        "http://127.0.0.1:\(receiver.port)/v1/metrics",
        "--sinks.http_push.format", "otlp", "--sinks.http_push.temporality", "delta", "--sinks.http_push.service_name",
        "checkout",
        "--sinks.http_push.external_labels", #"{"region": "eu-1", "env": "default"}"#,
    ])
    try agent.send(
        "otlp.hits:3|c|#env:prod\notlp.hits:2|c|@0.5|#env:prod\notlp.temp:21.5|g\notlp.users:a|s\notlp.lat:4:20:300|ms")
    #expect(try agent.stop() == 0)
    let request = try #require(receiver.requests.first)
    #expect(request.path == "/v1/metrics")
    #expect(request.headers["content-type"] == "application/x-protobuf")
    let decoded = try #require(try decodeOTLP(receiver.requests.map(\.body)).first)
    let resource = try #require((decoded["resourceMetrics"] as? [[String: Any]])?.first?["resource"] as? [String: Any])
    let resourceAttributes = attributes(resource)
    #expect(resourceAttributes["service.name"] == "checkout")
    #expect(resourceAttributes["host.name"] == ProcessInfo.processInfo.hostName)
    let all = metrics(decoded)

    let hits = try #require(all["otlp.hits"]?["sum"] as? [String: Any])
    #expect(hits["aggregationTemporality"] as? String == "AGGREGATION_TEMPORALITY_DELTA")
    #expect(hits["isMonotonic"] as? Bool == true)
    let hit = try #require(points(all["otlp.hits"], "sum").first)
    #expect(hit["asDouble"] as? Double == 7)
    #expect(attributes(hit) == ["env": "prod", "region": "eu-1"])  // the line's tag wins over external_labels
    let start = try #require(UInt64(hit["startTimeUnixNano"] as? String ?? ""))
    let end = try #require(UInt64(hit["timeUnixNano"] as? String ?? ""))
    #expect(start < end && end % 1_000_000 == 0)

    #expect(points(all["otlp.temp"], "gauge").first?["asDouble"] as? Double == 21.5)
    #expect(points(all["otlp.users"], "gauge").first?["asDouble"] as? Double == 1)

    let latency = try #require(all["otlp.lat"])
    #expect(latency["unit"] as? String == "ms")
    let histogram = try #require(points(latency, "histogram").first)
    #expect(histogram["count"] as? String == "3")
    #expect(histogram["sum"] as? Double == 324)
    #expect(histogram["min"] as? Double == 4)
    #expect(histogram["max"] as? Double == 300)
    #expect(histogram["explicitBounds"] as? [Double] == [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000])
    #expect(histogram["bucketCounts"] as? [String] == ["1", "0", "1", "0", "0", "0", "1", "0", "0", "0", "0", "0"])
}

@Test func otlpCumulativeIsTheStateOfMetricsWithOneStartPerSeries() throws {
    let receiver = try TestHTTPReceiver()
    let agent = try StatorProcess(agent: [
        "--flush_interval", "300ms", "--sinks.json.path", "", "--sinks.http_push.url",
        "http://127.0.0.1:\(receiver.port)/v1/metrics",
        "--sinks.http_push.format", "otlp",
    ])
    try agent.send("cumul.hits:3|c|#env:prod\ncumul.lat:10:20|ms")
    try eventually(timeout: 10, "the first OTLP request") { !receiver.requests.isEmpty }
    try agent.send("cumul.hits:4|c|#env:prod\ncumul.lat:30|ms")
    try eventually(timeout: 10, "the second interval's values") {
        let decoded = try decodeOTLP([receiver.requests.last?.body ?? []])
        return points(metrics(decoded.first ?? [:])["cumul.hits"], "sum").first?["asDouble"] as? Double == 7
    }
    #expect(try agent.stop() == 0)
    let decoded = try decodeOTLP(receiver.requests.map(\.body))
    let newest = try #require(decoded.last)
    let first = try #require(points(metrics(decoded[0])["cumul.hits"], "sum").first)
    let last = try #require(points(metrics(newest)["cumul.hits"], "sum").first)
    #expect(last["asDouble"] as? Double == 7)
    #expect(attributes(last) == ["env": "prod"])
    // One start per series: the same in every request, before the first point's time.
    #expect(first["startTimeUnixNano"] as? String == last["startTimeUnixNano"] as? String)
    #expect(UInt64(first["startTimeUnixNano"] as? String ?? "") ?? .max < UInt64(first["timeUnixNano"] as? String ?? "") ?? 0)
    let sum = try #require(metrics(newest)["cumul.hits"]?["sum"] as? [String: Any])
    #expect(sum["aggregationTemporality"] as? String == "AGGREGATION_TEMPORALITY_CUMULATIVE")
    let latency = try #require(metrics(newest)["cumul.lat"])
    #expect(latency["unit"] as? String == "ms")
    let histogram = try #require(points(latency, "histogram").first)
    #expect(histogram["count"] as? String == "3")
    #expect(histogram["sum"] as? Double == 60)
    #expect(histogram["bucketCounts"] as? [String] == ["0", "1", "1", "1", "0", "0", "0", "0", "0", "0", "0", "0"])
}

@Test func anOTLPPartialSuccessIsLoggedAndCounted() throws {
    // ExportMetricsServiceResponse { partial_success { rejected_data_points: 3, error_message: "bad" } }
    let partial = String(decoding: [0x0A, 0x07, 0x08, 0x03, 0x12, 0x03] + Array("bad".utf8), as: UTF8.self)
    let receiver = try TestHTTPReceiver(script: [
        .init(status: 200, headers: [("Content-Type", "application/x-protobuf")], body: partial)
    ])
    let agent = try StatorProcess(agent: [
        "--flush_interval", "200ms", "--sinks.json.path", "", "--sinks.http_push.url",
        "http://127.0.0.1:\(receiver.port)/v1/metrics", "--sinks.http_push.format", "otlp",
    ])
    try agent.send("partial.hits:1|c")
    try scrape(agent, until: "the partial success counted") {
        sample($0, #"stator_push_dropped_series_total{reason="partial_success",sink="http_push"}"#) == 3
    }
    #expect(try agent.stop() == 0)
    #expect(agent.stderr.text.contains(#""msg":"OTLP receiver accepted the request partly""#))
    #expect(agent.stderr.text.contains(#""rejected_data_points":"3","message":"bad""#))
}

@Test(arguments: ["cumulative", "delta"])
func otlpAttributeKeysAreTheTagKeysAsSentUnderBothTemporalities(_ temporality: String) throws {
    // Cumulative sent the Prometheus label names (`sp_ace`, `__in` dropped, `exported_le`),
    // delta the tags as sent: one stream changed its attributes with the temporality.
    let receiver = try TestHTTPReceiver()
    let agent = try otlpAgent(pushingTo: receiver, temporality)
    try agent.send("keys.hits:1|c|#sp ace:x,__in:y,ok:z\nkeys.lat:5|ms|#le:a\nkeys.plain:1|c|#env:prod")
    #expect(try agent.stop() == 0)
    let decoded = try decodeOTLP(receiver.requests.map(\.body))
    var all: [String: [String: Any]] = [:]
    for request in decoded { all.merge(metrics(request)) { $1 } }
    #expect(points(all["keys.hits"], "sum").map(attributes) == [["sp ace": "x", "__in": "y", "ok": "z"]])
    #expect(points(all["keys.lat"], "histogram").map(attributes) == [["le": "a"]])
    #expect(points(all["keys.plain"], "sum").map(attributes) == [["env": "prod"]])
}

/// An exponential histogram's buckets as decoded: the offset (0, left out of the JSON, when
/// absent) and the counts.
private func exponentialBuckets(_ point: [String: Any], _ sign: String) -> (offset: Int, counts: [String])? {
    guard let buckets = point[sign] as? [String: Any] else { return nil }
    return ((buckets["offset"] as? Int) ?? 0, buckets["bucketCounts"] as? [String] ?? [])
}

// Schema 3: Prometheus' bucket i is (2^((i-1)/8), 2^(i/8)], OTLP's index i-1. 50 ms is in
// Prometheus' bucket 46, 500 ms in 72, 1 closes bucket 0, 3 is in bucket 13, 8 closes bucket 24.

@Test func otlpDeltaSendsNativeHistogramsAsExponentialHistograms() throws {
    let receiver = try TestHTTPReceiver()
    let agent = try StatorProcess(agent: [
        "--flush_interval", untilShutdown, "--sinks.json.path", "", "--histograms.native", "true",
        "--sinks.http_push.url", "http://127.0.0.1:\(receiver.port)/v1/metrics", "--sinks.http_push.format", "otlp",
        "--sinks.http_push.temporality", "delta",
    ])
    try agent.send("nh.lat:50|ms\nnh.lat:500|ms|@0.5\nnh.lat:0|ms\nnh.h:3|h\nnh.h:-3|h\nnh.h:1|h|@0.4")
    #expect(try agent.stop() == 0)
    var all: [String: [String: Any]] = [:]
    for request in try decodeOTLP(receiver.requests.map(\.body)) { all.merge(metrics(request)) { $1 } }

    let latency = try #require(all["nh.lat"])
    #expect(latency["histogram"] == nil)  // instead of the explicit histogram, not beside it
    #expect(latency["unit"] as? String == "ms")
    let data = try #require(latency["exponentialHistogram"] as? [String: Any])
    #expect(data["aggregationTemporality"] as? String == "AGGREGATION_TEMPORALITY_DELTA")
    let lat = try #require(points(latency, "exponentialHistogram").first)
    #expect(lat["scale"] as? Int == 3)
    #expect(lat["count"] as? String == "4")
    #expect(lat["sum"] as? Double == 1050)
    #expect(lat["zeroCount"] as? String == "1")
    #expect(lat["zeroThreshold"] as? Double == 0x1p-128)
    #expect(lat["min"] as? Double == 0)
    #expect(lat["max"] as? Double == 500)
    let positive = try #require(exponentialBuckets(lat, "positive"))
    #expect(positive.offset == 45)
    #expect(positive.counts == ["1"] + Array(repeating: "0", count: 25) + ["2"])
    #expect(exponentialBuckets(lat, "negative") == nil)

    // 1 at rate 0.4 counts 2.5, sent as 3: count is the total of what is sent.
    let h = try #require(points(all["nh.h"], "exponentialHistogram").first)
    #expect(all["nh.h"]?["unit"] == nil)
    #expect(h["count"] as? String == "5")
    #expect(h["sum"] as? Double == 2.5)
    #expect(h["zeroCount"] == nil)  // zero, left out
    #expect(h["min"] as? Double == -3)
    #expect(h["max"] as? Double == 3)
    let hPositive = try #require(exponentialBuckets(h, "positive"))
    #expect(hPositive.offset == -1)
    #expect(hPositive.counts == ["3"] + Array(repeating: "0", count: 12) + ["1"])
    let hNegative = try #require(exponentialBuckets(h, "negative"))
    #expect(hNegative.offset == 12)
    #expect(hNegative.counts == ["1"])
}

@Test func otlpCumulativeSendsNativeHistogramsAsExponentialHistograms() throws {
    let receiver = try TestHTTPReceiver()
    let agent = try StatorProcess(agent: [
        "--flush_interval", "300ms", "--sinks.json.path", "", "--histograms.native", "true",
        "--sinks.http_push.url", "http://127.0.0.1:\(receiver.port)/v1/metrics", "--sinks.http_push.format", "otlp",
    ])
    try agent.send("nhc.lat:50|ms\nnhc.h:1|h")
    try eventually(timeout: 10, "the first OTLP request") { !receiver.requests.isEmpty }
    try agent.send("nhc.lat:500|ms|@0.5\nnhc.h:8|h\nnhc.h:8|h")
    try eventually(timeout: 10, "the second interval's values") {
        let decoded = try decodeOTLP([receiver.requests.last?.body ?? []])
        return points(metrics(decoded.first ?? [:])["nhc.lat"], "exponentialHistogram").first?["count"] as? String == "3"
    }
    #expect(try agent.stop() == 0)
    let newest = metrics(try #require(try decodeOTLP([receiver.requests.last?.body ?? []]).first))
    let latency = try #require(newest["nhc.lat"])
    #expect(latency["unit"] as? String == "ms")
    let data = try #require(latency["exponentialHistogram"] as? [String: Any])
    #expect(data["aggregationTemporality"] as? String == "AGGREGATION_TEMPORALITY_CUMULATIVE")
    let lat = try #require(points(latency, "exponentialHistogram").first)
    #expect(lat["scale"] as? Int == 3)
    #expect(lat["count"] as? String == "3")
    #expect(lat["sum"] as? Double == 1050)
    #expect(lat["min"] == nil && lat["max"] == nil)  // the cumulative state keeps neither
    let positive = try #require(exponentialBuckets(lat, "positive"))
    #expect(positive.offset == 45)
    #expect(positive.counts == ["1"] + Array(repeating: "0", count: 25) + ["2"])
    let h = try #require(points(newest["nhc.h"], "exponentialHistogram").first)
    #expect(h["count"] as? String == "3")
    #expect(h["sum"] as? Double == 17)
    let hPositive = try #require(exponentialBuckets(h, "positive"))
    #expect(hPositive.offset == -1)
    #expect(hPositive.counts == ["1"] + Array(repeating: "0", count: 23) + ["2"])
}

@Test func otlpCumulativeSendsMappedNativeHistogramsAsOnMetrics() throws {
    // Mapped series are in the unit of /metrics: a timer in seconds (unit `s`), a scaled
    // histogram scaled. A mapped summary stays a Summary.
    let dir = try TemporaryDirectory()
    let mapping = dir.file("mapping.yml")
    try """
    mappings:
    - match: "mt.*"
      name: "mt_seconds"
      labels: {op: "$1"}
    - match: "bytes.*"
      name: "transferred_kibibytes"
      scale: 0.0009765625
    - match: "sm.*"
      name: "sm_seconds"
      observer_type: summary
    """.write(toFile: mapping, atomically: true, encoding: .utf8)
    let receiver = try TestHTTPReceiver()
    let agent = try StatorProcess(agent: [
        "--mapping_config", mapping, "--flush_interval", untilShutdown, "--sinks.json.path", "", "--histograms.native",
        "true", "--sinks.http_push.url", "http://127.0.0.1:\(receiver.port)/v1/metrics", "--sinks.http_push.format", "otlp",
    ])
    try agent.send("mt.get:500|ms\nbytes.in:2048|h\nsm.x:100|ms")
    #expect(try agent.stop() == 0)
    var all: [String: [String: Any]] = [:]
    for request in try decodeOTLP(receiver.requests.map(\.body)) { all.merge(metrics(request)) { $1 } }
    // 0.5 s closes Prometheus' bucket -8, OTLP's -9; 2 KiB closes bucket 8, OTLP's 7.
    #expect(all["mt_seconds"]?["unit"] as? String == "s")
    let timer = try #require(points(all["mt_seconds"], "exponentialHistogram").first)
    #expect(attributes(timer) == ["op": "get"])
    #expect(timer["count"] as? String == "1")
    #expect(timer["sum"] as? Double == 0.5)
    #expect(exponentialBuckets(timer, "positive")?.offset == -9)
    #expect(exponentialBuckets(timer, "positive")?.counts == ["1"])
    let scaled = try #require(points(all["transferred_kibibytes"], "exponentialHistogram").first)
    #expect(scaled["sum"] as? Double == 2)
    #expect(exponentialBuckets(scaled, "positive")?.offset == 7)
    #expect(all["sm_seconds"]?["summary"] != nil)
    #expect(all["sm_seconds"]?["exponentialHistogram"] == nil)
}

/// `|T` through OTLP (SPEC section 15): delta sends each point at its own time (a counter's
/// `Sum` point starting there too); cumulative adds a counter's to its total and sends a
/// gauge's at its own time.
@Test(arguments: ["delta", "cumulative"])
func otlpCarriesTimestampedSamples(_ temporality: String) throws {
    let receiver = try TestHTTPReceiver()
    let agent = try otlpAgent(pushingTo: receiver, temporality)
    let point = Int64(Date().timeIntervalSince1970) - 600
    try agent.send("ts.hits:5|c|T\(point)\nts.hits:1|c\nts.temp:-3|g|T\(point)")
    #expect(try agent.stop() == 0)
    var sums: [(value: Double, start: String?, time: String?)] = []
    var gauges: [(value: Double, time: String?)] = []
    // Every `Metric` of each name (a point may be a `Metric` of its own beside the interval's).
    for request in try decodeOTLP(receiver.requests.map(\.body)) {
        for resource in request["resourceMetrics"] as? [[String: Any]] ?? [] {
            for scope in resource["scopeMetrics"] as? [[String: Any]] ?? [] {
                for metric in scope["metrics"] as? [[String: Any]] ?? [] {
                    if metric["name"] as? String == "ts.hits" {
                        for p in points(metric, "sum") {
                            sums.append(
                                (p["asDouble"] as? Double ?? -1, p["startTimeUnixNano"] as? String, p["timeUnixNano"] as? String))
                        }
                    }
                    if metric["name"] as? String == "ts.temp" {
                        for p in points(metric, "gauge") {
                            gauges.append((p["asDouble"] as? Double ?? -1, p["timeUnixNano"] as? String))
                        }
                    }
                }
            }
        }
    }
    let nanos = String(point * 1_000_000_000)
    #expect(gauges.map(\.value) == [-3])
    #expect(gauges.first?.time == nanos)
    if temporality == "delta" {
        #expect(Set(sums.map(\.value)) == [1, 5])
        let stamped = try #require(sums.first { $0.value == 5 })
        #expect(stamped.start == nanos && stamped.time == nanos)
    } else {
        #expect(sums.map(\.value) == [6])
    }
}
