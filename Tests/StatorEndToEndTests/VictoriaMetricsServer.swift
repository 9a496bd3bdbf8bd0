import Foundation
import Glibc

/// A real VictoriaMetrics (Debian's `victoria-metrics`) on free loopback ports with a
/// temporary data directory: one HTTP port takes remote write (`/api/v1/write`), Influx
/// (`/write`) and the Datadog series API (`/datadog/api/v1/series`), and serves the
/// Prometheus query API; one TCP port takes Graphite plaintext. Stopped on deinit.
final class VictoriaMetricsServer {
    let port: UInt16
    let graphitePort: UInt16
    private let peer: PeerProcess
    let dir: TemporaryDirectory

    init() throws {
        let dir = try TemporaryDirectory()
        peer = try PeerProcess("/usr/bin/victoria-metrics", ports: 2) { ports in
            [
                "-storageDataPath=\(dir.file("data"))", "-httpListenAddr=127.0.0.1:\(ports[0])",
                "-graphiteListenAddr=127.0.0.1:\(ports[1])", "-loggerLevel=WARN",
                // Fresh samples are queryable at once, and no query result is cached while a test polls.
                "-search.latencyOffset=0s", "-search.disableCache", "-retentionPeriod=100y",
            ]
        } ready: { ports in
            (try? httpRequest(port: ports[0], "/health").status) == 200
        }
        self.dir = dir
        (port, graphitePort) = (peer.ports[0], peer.ports[1])
    }

    /// Every series an instant query returns: its labels and value.
    func query(_ promql: String, at time: Double? = nil) throws -> [(labels: [String: String], value: Double)] {
        _ = try? httpRequest(port: port, "/internal/force_flush")
        let encoded = promql.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? promql
        let at = time.map { "&time=\($0)" } ?? ""
        let reply = try httpRequest(port: port, "/api/v1/query?query=\(encoded)\(at)")
        guard reply.status == 200,
            let json = try JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [String: Any],
            let data = json["data"] as? [String: Any], let result = data["result"] as? [[String: Any]]
        else { throw TestFailure("query \(promql): \(reply.status) \(reply.body)") }
        return result.compactMap { series in
            guard let labels = series["metric"] as? [String: String], let value = series["value"] as? [Any],
                value.count == 2, let text = value[1] as? String, let number = Double(text)
            else { return nil }
            return (labels, number)
        }
    }

    /// The value of the one series a query returns, or nil when it returns none.
    func value(_ promql: String, at time: Double? = nil) throws -> Double? {
        let result = try query(promql, at: time)
        guard result.count <= 1 else { throw TestFailure("query \(promql) returned \(result.count) series: \(result)") }
        return result.first?.value
    }

    /// Waits until `promql` returns a value (rows reach queries a moment after they are
    /// written). Every push of the test must be complete before: the value is then final.
    @discardableResult
    func await(_ promql: String, timeout: Double = 20) throws -> Double {
        var found: Double?
        try eventually(timeout: timeout, "\(promql) in victoria-metrics") {
            found = try? value(promql)
            return found != nil
        }
        return found ?? .nan
    }
}

extension VictoriaMetricsServer {
    /// Starts an agent that pushes into this server and flushes only at shutdown: JSON lines
    /// off, each of `pushes` an `http_push` entry (JSON; `base` is this server's URL), and
    /// Graphite to this server when `graphite` is set. Its configuration file lives in the
    /// server's directory, as long as the server.
    func pushingAgent(_ pushes: [String], graphite: Bool = false) throws -> StatorProcess {
        let config = dir.file("stator-\(UUID().uuidString).json")
        let graphiteSink = graphite ? #""graphite": {"address": "127.0.0.1:\#(graphitePort)"},"# : ""
        try """
        {"sinks": {"json": {"path": ""}, \(graphiteSink)
          "http_push": [\(pushes.joined(separator: ",\n"))]
        }}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        return try StatorProcess(agent: ["--config", config, "--flush_interval", untilShutdown])
    }

    /// This server's URL, for the pushes of `pushingAgent`.
    var base: String { "http://127.0.0.1:\(port)" }
}
