import Foundation
import Glibc
import Testing

/// SPEC section 13 in remote write: each histogram series' native histogram goes out as a
/// `prompb.Histogram`, beside the classic series, in the same requests.

/// Schema 3 (the default): 0.05 s is in bucket -34, (2^(-35/8), 2^(-34/8)]; 0.5 s closes
/// bucket -8; 0 is in the zero bucket. `@0.4` counts 2.5: a float histogram.
private let workload = "nh.lat:50|ms\nnh.lat:500|ms|@0.5\nnh.lat:0|ms\nnh.f:1|h|@0.4\nnh.f:0|h\nnh.f:-2|h\nnh.hits:1|c"

/// The buckets of the native histogram an instant query returns, as Prometheus' API lists
/// them: `[boundary rule, lower, upper, count]`.
private func buckets(_ prometheus: PrometheusServer, _ promql: String) throws -> [(lower: Double, upper: Double, count: Double)] {
    let encoded = promql.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? promql
    let reply = try httpRequest(port: prometheus.port, "/api/v1/query?query=\(encoded)")
    guard let json = try JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [String: Any],
        let result = (json["data"] as? [String: Any])?["result"] as? [[String: Any]],
        let histogram = (result.first?["histogram"] as? [Any])?.last as? [String: Any],
        let rows = histogram["buckets"] as? [[Any]]
    else { throw TestFailure("no native histogram for \(promql): \(reply.body)") }
    return rows.compactMap { row in
        guard row.count == 4, let l = Double(row[1] as? String ?? ""), let u = Double(row[2] as? String ?? ""),
            let c = Double(row[3] as? String ?? "")
        else { return nil }
        return (l, u, c)
    }
}

private func close(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= 1e-12 * max(abs(a), abs(b)) }

extension HeavyEndToEndTests {
    // Budget: about 0.5 s plain (2026-12-07); its waits are 30 s.
    @Test func aRealPrometheusReceivesNativeHistogramsByRemoteWrite() throws {
        // Prometheus 2.42 (Debian's) stores remote-written native histograms only with the
        // feature on; without it, it answers 500 to the whole request.
        let prometheus = try PrometheusServer(extraFlags: [
            "--web.enable-remote-write-receiver", "--enable-feature=native-histograms",
        ])
        let agent = try StatorProcess(agent: [
            "--flush_interval", "300ms", "--sinks.json.path", "", "--histograms.native", "true",
            "--sinks.http_push.format", "remote_write", "--sinks.http_push.url",
            "http://127.0.0.1:\(prometheus.port)/api/v1/write", "--sinks.http_push.batch_size", "5",
        ])
        try agent.send(workload)
        try eventually(timeout: 30, "remote-written native histograms") {
            (try? prometheus.query("histogram_count(nh_lat_seconds)")) == 4
                && (try? prometheus.query("histogram_count(nh_f)")) == 4.5 && (try? prometheus.query("nh_hits_total")) == 1
        }
        #expect(try prometheus.query("histogram_sum(nh_lat_seconds)") == 1.05)
        #expect(try prometheus.query("histogram_sum(nh_f)") == 0.5)
        // The classic series go on beside the native one.
        #expect(try prometheus.query("nh_lat_seconds_count") == 4)
        #expect(try prometheus.query("nh_lat_seconds_bucket{le=\"0.05\"}") == 2)
        #expect(try prometheus.query("nh_f_sum") == 0.5)
        let lat = try buckets(prometheus, "nh_lat_seconds")
        #expect(lat.map(\.count) == [1, 1, 2])
        #expect(lat.count == 3 && close(lat[0].upper, 0x1p-128) && close(lat[0].lower, -0x1p-128))
        #expect(lat.count == 3 && close(lat[1].lower, exp2(-35 / 8)) && close(lat[1].upper, exp2(-34 / 8)))
        #expect(lat.count == 3 && close(lat[2].lower, exp2(-9 / 8)) && lat[2].upper == 0.5)
        // Negative buckets first: -2 closes negative bucket 8, [-2, -2^(7/8)); 1 closes bucket 0.
        let f = try buckets(prometheus, "nh_f")
        #expect(f.map(\.count) == [1, 1, 2.5])
        #expect(f.count == 3 && f[0].lower == -2 && close(f[0].upper, -exp2(7 / 8)) && f[2].upper == 1)
        let page = try httpRequest(port: agent.httpPort, "/metrics").body
        #expect(sample(page, "stator_push_requests_total{result=\"retry\",sink=\"http_push\"}") == 0)
        #expect(sample(page, "stator_push_requests_total{result=\"rejected\",sink=\"http_push\"}") == 0)
        #expect(try agent.stop() == 0)
    }

    // Budget: about 1.5 s plain (2026-12-07), VictoriaMetrics' start; its waits are 20 s.
    @Test func victoriaMetricsTakesTheClassicSeriesOfANativeHistogramPush() throws {
        // Debian's VictoriaMetrics (1.79) reads no `histograms` field of a remote-write time
        // series: the native series is dropped, the rest of the request is stored.
        let vm = try VictoriaMetricsServer()
        let agent = try StatorProcess(agent: [
            "--flush_interval", untilShutdown, "--sinks.json.path", "", "--histograms.native", "true",
            "--sinks.http_push.format", "remote_write", "--sinks.http_push.url", "http://127.0.0.1:\(vm.port)/api/v1/write",
        ])
        try agent.send(workload)
        #expect(try agent.stop() == 0)
        #expect(!agent.stderr.text.contains("\"level\":\"warning\""), "\(agent.stderr.text)")
        #expect(try vm.await("nh_hits_total") == 1)
        #expect(try vm.await("nh_lat_seconds_count") == 4)
        #expect(try vm.await("nh_lat_seconds_sum") == 1.05)
        #expect(try vm.await("nh_f_count") == 4.5)
        #expect(try vm.query(#"{__name__="nh_lat_seconds"}"#).isEmpty)
    }
}
