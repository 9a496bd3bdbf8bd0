/// Every path the HTTP server answers, and the methods each takes. The router
/// (`Agent.route`) dispatches on this table alone, so a path not in it is 404; the
/// `http.address` help, the start-up warning and the tests read it too, and the tests
/// check that docs/security.md names every route: a new page cannot be served undocumented.
public enum HTTPRoute: String, CaseIterable, Sendable {
    /// The statsd series as of the last flush, then the agent's own metrics.
    case metrics = "/metrics"
    /// `ok` while the agent runs.
    case healthz = "/healthz"
    /// Re-reads `mapping_config` (as SIGHUP does).
    case reload = "/-/reload"
    /// Every tenant's daily usage (docs/rollups.md); 404 unless `sinks.rollup.path` is set.
    case rollups = "/api/v1/rollups"
    /// The names, tag keys and refused lines that make the traffic (docs/operating.md).
    case top = "/api/v1/top"
    /// The page that shows `/api/v1/top` (docs/operating.md), and its script and style sheet.
    case page = "/"
    case pageScript = "/ui/app.js"
    case pageStyle = "/ui/app.css"

    /// The methods the route takes; any other is answered 405 with these in `Allow`.
    public var methods: [String] { self == .reload ? ["POST"] : ["GET", "HEAD"] }

    /// The route as a client calls it: its main method and its path (`GET /metrics`).
    public var request: String { "\(methods[0]) \(rawValue)" }

    /// Every route, for a sentence: "GET /metrics, GET /healthz, ... and GET /api/v1/rollups".
    static func list(_ routes: [HTTPRoute] = allCases) -> String {
        let requests = routes.map(\.request)
        guard requests.count > 1 else { return requests.joined() }
        return requests.dropLast().joined(separator: ", ") + " and " + (requests.last ?? "")
    }
}
