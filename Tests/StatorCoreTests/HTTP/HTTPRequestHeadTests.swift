import Testing
@testable import StatorCore

private func parse(_ text: String, limit: Int = 8192) -> HTTPRequestHead.ParseResult {
    HTTPRequestHead.parse(Array(text.utf8)[...], limit: limit)
}

@Test func parsesAGetWithHeaders() throws {
    let result = parse("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip, deflate\r\n\r\nGET /next")
    guard case .complete(let head, let consumed) = result else {
        Issue.record("not complete: \(result)")
        return
    }
    #expect(head.method == "GET")
    #expect(head.path == "/metrics")
    #expect(head.header("host") == "a")
    #expect(head.keepAlive)
    #expect(head.acceptsGzip)
    #expect(!head.hasBody)
    #expect(consumed == 70)  // 27 + 9 + 32 + 2
}

@Test(arguments: [
    ("GET / HTTP/1.1\r\nHost: a\r\n", HTTPRequestHead.ParseResult.incomplete),
    ("GET / HTTP/1.1\r\n", .incomplete),
    ("", .incomplete),
    ("GARBAGE\r\n\r\n", .invalid),
    ("GET / HTTP/2.0\r\n\r\n", .invalid),
    ("get / HTTP/1.1\r\n\r\n", .invalid),
    ("GET / HTTP/1.1\r\nNo colon here\r\n\r\n", .invalid),
    ("\u{0}\u{1}\u{2}\r\n\r\n", .invalid),
    // Framing two parsers could read differently, and header names that are not tokens.
    ("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", .invalid),
    ("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", .invalid),
    ("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", .invalid),
    ("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", .invalid),
    ("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", .invalid),
    ("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", .invalid),
    ("HEAD / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", .invalid),
    ("GET / HTTP/1.1\r\nHost : a\r\n\r\n", .invalid),
    ("GET / HTTP/1.1\r\nX(y): a\r\n\r\n", .invalid),
    ("GET / HTTP/1.1\r\nX\u{7F}: a\r\n\r\n", .invalid),
    ("GET / HTTP/1.1\r\n: a\r\n\r\n", .invalid),
    ("GET / HTTP/1.1\r\nnäme: a\r\n\r\n", .invalid),
])
func rejectsOrWaits(_ text: String, _ expected: HTTPRequestHead.ParseResult) {
    #expect(parse(text) == expected)
}

@Test func oversizedHeadsAreTooLarge() {
    let big = "GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 9000) + "\r\n\r\n"
    #expect(parse(big) == .tooLarge)
    #expect(parse(String(repeating: "a", count: 8192)) == .tooLarge)
    #expect(parse(String(repeating: "a", count: 8191)) == .incomplete)
}

@Test func connectionSemantics() throws {
    func head(_ text: String) throws -> HTTPRequestHead {
        guard case .complete(let h, _) = parse(text) else { throw ConfigError("incomplete") }
        return h
    }
    #expect(try !head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keepAlive)
    #expect(try !head("GET / HTTP/1.0\r\n\r\n").keepAlive)
    #expect(try head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keepAlive)
    #expect(try head("GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n").hasBody)
    #expect(try !head("GET / HTTP/1.1\r\nAccept-Encoding: gzip;q=0\r\n\r\n").acceptsGzip)
    #expect(try !head("GET / HTTP/1.1\r\nAccept-Encoding: br\r\n\r\n").acceptsGzip)
}

@Test func routesKnownPathsAndMethods() {
    let metrics = SelfMetrics(readers: 1)
    let page = SelfMetricsPage(metrics: metrics, table: ShardedTable(configuration: AggregationConfiguration()))
    let prometheus = PrometheusSink(configuration: PrometheusConfiguration(), metrics: metrics, reservedNames: [])
    func status(_ method: String, _ path: String) -> Int {
        let head = HTTPRequestHead(method: method, path: path, minorVersion: 1, headers: [])
        return Agent.route(head, page: page, prometheus: prometheus).status
    }
    #expect(status("GET", "/healthz") == 200)
    #expect(status("HEAD", "/metrics") == 200)
    #expect(status("POST", "/metrics") == 405)
    #expect(status("DELETE", "/healthz") == 405)
    #expect(status("GET", "/nope") == 404)
    #expect(status("POST", "/nope") == 404)
    // Without a mapping file a reload is refused; without sinks.rollup.path there is no roll-up API.
    #expect(status("POST", "/-/reload") == 400)
    #expect(status("GET", "/-/reload") == 405)
    #expect(status("GET", "/api/v1/rollups") == 404)
}
