import Foundation
import Glibc
import Testing

/// Finds a tool installed by scripts/test (Debian's prometheus package). Missing is a failure, not a skip.
func tool(_ name: String) throws -> String {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") {
        return "\(dir)/\(name)"
    }
    throw TestFailure("\(name) not found: scripts/test installs Debian's prometheus package")
}

/// Every metric type, tags, odd names: what `promtool check metrics` must accept.
private let everyKind = [
    "app.requests:1|c|#env:prod,region:eu\napp.requests:2|c|@0.5|#env:prod,region:eu\nhits_total:3|c",
    "app.temperature.celsius:21.5|g\napp.queue.depth:+3|g|#queue:a b\napp.users:alice|s\napp.users:bob|s",
    "app.latency:12:48:250|ms|#route:/api/v1,method:GET\napp.payload.bytes:512|h\napp.batch.size:3|d|@0.5",
    "9.starts-with.digit:1|c\nodd-name/with spaces:2|g\ntags.escaped:1|c|#q:say \"hi\",back:a\\b,nl:x\\ny",
    "influx.style,host=web1:1|c\nsignalfx.style[host=web2]:1|c\nlibrato.style#host=web3:1|c\nwith.le:1|h|#le:weird",
]

@Test func promtoolFindsNothingToReportOnAPageOfEveryType() throws {
    let promtool = try tool("promtool")
    let agent = try StatorProcess(agent: ["--flush_interval", "100ms", "--sinks.json.path", ""])
    try agent.send(everyKind)
    let page = try scrape(agent, until: "every series on the page") { page in
        page.contains("with_le_bucket") && (page.contains("app_users 2") || page.contains("app_users 0"))
    }
    let (status, report) = try runProgram(promtool, ["check", "metrics"], input: Array(page.utf8))
    #expect(status == 0, "\(report)")
    #expect(report.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(report)\n\(page)")
    for family in [
        "app_requests_total", "hits_total", "app_temperature_celsius", "app_queue_depth", "app_users",
        "app_latency_seconds", "app_payload_bytes", "app_batch_size", "_9_starts_with_digit_total",
        "odd_name_with_spaces", "tags_escaped_total", "influx_style_total", "with_le",
        "stator_lines_received_total", "process_cpu_seconds_total",
    ] {
        #expect(page.contains("# TYPE \(family) "), "\(family) missing")
    }
    #expect(page.contains(#"tags_escaped_total{back="a\\b",nl="x\\ny",q="say \"hi\""} 1"#))
    #expect(try agent.stop() == 0)
}

@Test func gzipScrapesDecodeToThePlainPage() throws {
    let agent = try StatorProcess(agent: ["--flush_interval", "100ms", "--sinks.json.path", ""])
    try agent.send("zipped.counter:4|c")
    try eventually("the counter") { try httpRequest(port: agent.httpPort, "/metrics").body.contains("zipped_counter_total 4") }
    let raw = try rawHTTPBytes(
        port: agent.httpPort, "GET /metrics HTTP/1.1\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n")
    let split = try #require(raw.firstRange(of: Array("\r\n\r\n".utf8)))
    let head = String(decoding: raw[..<split.lowerBound], as: UTF8.self)
    #expect(head.contains("Content-Encoding: gzip"))
    #expect(head.contains("Vary: Accept-Encoding"))
    let body = try gunzipBytes(Array(raw[split.upperBound...]))
    #expect(String(decoding: body, as: UTF8.self).contains("zipped_counter_total 4\n"))
    #expect(String(decoding: body, as: UTF8.self).contains("stator_lines_received_total{input=\"udp\"} 1\n"))
    #expect(try agent.stop() == 0)
}

/// A real `prometheus` on a free loopback port with a temporary data directory, ready when
/// made; stopped on deinit.
final class PrometheusServer {
    let port: UInt16
    private let peer: PeerProcess
    private let dir: TemporaryDirectory
    var process: Process { peer.process }
    var log: PipeCollector { peer.log }

    init(scrapeTargets: [UInt16] = [], scrapeInterval: String = "1s", extraFlags: [String] = []) throws {
        let dir = try TemporaryDirectory()
        let config = dir.file("prometheus.yml")
        var yaml = "global:\n  scrape_interval: \(scrapeInterval)\n  evaluation_interval: 1s\n"
        if !scrapeTargets.isEmpty {
            yaml += "scrape_configs:\n  - job_name: stator\n    static_configs:\n      - targets: ["
            yaml += scrapeTargets.map { "\"127.0.0.1:\($0)\"" }.joined(separator: ", ") + "]\n"
        }
        try yaml.write(toFile: config, atomically: true, encoding: .utf8)
        peer = try PeerProcess(try tool("prometheus"), ports: 1) { ports in
            [
                "--config.file=\(config)", "--storage.tsdb.path=\(dir.file("data"))",
                "--web.listen-address=127.0.0.1:\(ports[0])", "--log.level=warn",
            ] + extraFlags
        } ready: { ports in
            (try? httpRequest(port: ports[0], "/-/ready").status) == 200
        }
        self.dir = dir
        port = peer.ports[0]
    }

    /// Runs an instant query and returns the first result's value.
    func query(_ promql: String) throws -> Double? {
        let encoded = promql.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? promql
        let reply = try httpRequest(port: port, "/api/v1/query?query=\(encoded)")
        guard reply.status == 200,
            let json = try JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [String: Any],
            let data = json["data"] as? [String: Any], let result = data["result"] as? [[String: Any]],
            let value = result.first?["value"] as? [Any], value.count == 2, let text = value[1] as? String
        else { return nil }
        return Double(text)
    }

}

extension HeavyEndToEndTests {
    // Budget: 0.5 s plain and under TSan (2026-12-07); its waits are 30 s.
    @Test func aRealPrometheusReceivesRemoteWriteWithExpectedValues() throws {
        let prometheus = try PrometheusServer(extraFlags: ["--web.enable-remote-write-receiver"])
        let agent = try StatorProcess(agent: [
            "--flush_interval", "300ms", "--sinks.json.path", "", "--sinks.http_push.format", "remote_write",
            "--sinks.http_push.url", "http://127.0.0.1:\(prometheus.port)/api/v1/write", "--sinks.http_push.batch_size", "5",
        ])
        try agent.send("rw.hits:2|c|#env:ci\nrw.hits:3|c|#env:ci\nrw.temp:21.5|g\nrw.lat:100|ms\nrw.lat:100|ms\nrw.lat:300|ms")
        // One flush is four requests (batch_size 5): wait until the last of them has landed too.
        try eventually(timeout: 30, "remote-written samples") {
            (try? prometheus.query("rw_hits_total{env=\"ci\"}")) == 5 && (try? prometheus.query("rw_temp")) == 21.5
                && (try? prometheus.query("rw_lat_seconds_count")) == 3
        }
        #expect(try prometheus.query("rw_temp") == 21.5)
        #expect(try prometheus.query("rw_lat_seconds_count") == 3)
        #expect(try prometheus.query("rw_lat_seconds_sum") == 0.5)
        #expect(try prometheus.query("rw_lat_seconds_bucket{le=\"0.1\"}") == 2)
        #expect(try prometheus.query("rw_lat_seconds_bucket{le=\"0.5\"}") == 3)
        #expect(try prometheus.query("rw_lat_seconds_bucket{le=\"+Inf\"}") == 3)
        // The agent's own metrics are not remote-written.
        #expect(try prometheus.query("stator_lines_received_total") == nil)
        let page = try httpRequest(port: agent.httpPort, "/metrics").body
        #expect((sample(page, "stator_push_requests_total{result=\"success\"}") ?? 0) >= 1)
        #expect(sample(page, "stator_push_requests_total{result=\"rejected\"}") == 0)
        #expect(try agent.stop() == 0)
    }
}

extension HeavyEndToEndTests {
    // Budget: 5.9 s plain, 6.1 s under TSan (2026-12-07), mostly Prometheus' 1 s scrapes; its waits are 30-45
    // s.
    @Test func aRealPrometheusScrapesTheAgentAndQueriesExpectedValues() throws {
        let agent = try StatorProcess(agent: ["--flush_interval", "200ms", "--sinks.json.path", ""])
        try agent.send("e2e.hits:2|c|#env:ci\ne2e.hits:3|c|#env:ci\ne2e.temp:21.5|g\ne2e.lat:100|ms\ne2e.lat:100|ms\ne2e.lat:300|ms")
        try eventually("the flush") { try httpRequest(port: agent.httpPort, "/metrics").body.contains("e2e_lat_seconds_count 3") }
        let prometheus = try PrometheusServer(scrapeTargets: [agent.httpPort])
        var hits: Double?
        try eventually(timeout: 45, "prometheus to scrape the agent") {
            hits = try? prometheus.query("e2e_hits_total{env=\"ci\",job=\"stator\"}")
            return hits != nil || !prometheus.process.isRunning
        }
        #expect(prometheus.process.isRunning, "prometheus exited: \(prometheus.log.text)")
        #expect(hits == 5)
        #expect(try prometheus.query("e2e_temp") == 21.5)
        #expect(try prometheus.query("e2e_lat_seconds_count") == 3)
        #expect(try prometheus.query("e2e_lat_seconds_sum") == 0.5)
        #expect(try prometheus.query("e2e_lat_seconds_bucket{le=\"0.1\"}") == 2)
        #expect(try prometheus.query("e2e_lat_seconds_bucket{le=\"0.25\"}") == 2)
        #expect(try prometheus.query("e2e_lat_seconds_bucket{le=\"0.5\"}") == 3)
        #expect(try prometheus.query("up{job=\"stator\"}") == 1)
        #expect(try prometheus.query("stator_lines_received_total") == 6)
        #expect(try agent.stop() == 0)
    }
}

extension HeavyEndToEndTests {
    // Plain pass only: the page must pass 8 MB, which a tenth of the series would not.
    @Test(.enabled(if: !TestBuild.isSanitized, "a page over 8 MB: plain pass only"))
    func aLargePagesPlainScrapeIsStreamedWhole() throws {
        // 60,000 series: over 8 MB of text, so the page is kept gzipped only and a plain-text
        // scrape is inflated slice by slice while it is written.
        // The lines go over TCP, which a loaded machine cannot drop as it can UDP datagrams.
        let agent = try StatorProcess(
            agent: [
                "--flush_interval", "1s", "--sinks.json.path", "", "--log.level", "debug", "--tcp.address", "127.0.0.1:0",
            ])
        // A request first, as a scraper's: from then on each flush renders the page.
        #expect(try httpRequest(port: agent.httpPort, "/metrics", method: "HEAD").status == 200)
        let client = try TCPClient(port: agent.tcpPort)
        try client.send((0..<60_000).map { "streamed.page.series.number.\($0):1|c\n" }.joined())
        // Wait for the sink's log of a page that big (cheaper than scraping 8 MB until it shows,
        // which matters under the sanitizers).
        _ = try agent.waitFor(timeout: 90) { log in
            log.split(separator: "\n").first { line in
                guard line.contains("\"msg\":\"page rendered\""), let range = line.range(of: "\"text_bytes\":\"") else {
                    return false
                }
                return (Int(line[range.upperBound...].prefix { $0.isNumber }) ?? 0) > 8_000_000
            }
        }
        // Five clients ask for the plain page and read none of it; others are served meanwhile.
        var idle: [Int32] = []
        defer { for fd in idle { close(fd) } }
        for _ in 0..<5 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            #expect(withSocketAddress("127.0.0.1", agent.httpPort) { connect(fd, $0, $1) } == 0)
            _ = send(fd, "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", 35, Int32(MSG_NOSIGNAL))
            idle.append(fd)
        }
        let started = Date()
        #expect(try httpRequest(port: agent.httpPort, "/healthz").status == 200)
        #expect(Date().timeIntervalSince(started) < 1)
        // A plain scrape read to the end is the whole page: Content-Length and body agree
        // (a stream that ended short would close the connection early), and the live part
        // follows the streamed statsd part. (The unit test compares the stream with the page.)
        let reply = try rawHTTPBytes(port: agent.httpPort, "GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
        let separator = try #require(reply.firstRange(of: Array("\r\n\r\n".utf8)))
        let head = String(decoding: reply[..<separator.lowerBound], as: UTF8.self).lowercased()
        let body = reply[separator.upperBound...]
        #expect(head.hasPrefix("http/1.1 200"))
        #expect(head.contains("content-length: \(body.count)\r\n") || head.hasSuffix("content-length: \(body.count)"))
        #expect(body.count > 8_000_000)
        let tail = String(decoding: body.suffix(200_000), as: UTF8.self)
        #expect(tail.contains("_total 1\n# HELP stator_packets_received_total"))
        #expect(tail.contains("stator_lines_received_total{input=\"tcp\"} 60000\n"))
        #expect(try agent.stop() == 0)
    }
}
