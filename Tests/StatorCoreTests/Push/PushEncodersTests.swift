import Foundation
import Testing
@testable import StatorCore

private func batch() -> FlushBatch {
    let h = Harness(percentiles: [90])
    h.send("a:1|c|#env:prod", "b:2|c", "g:5|g", "u:x|s", "t:10:20|ms|#k:v")
    return h.flush(at: 1_795_287_610_000)
}

@Test func jsonRequestsAreArraysOfSectionThreeObjectsInBatches() throws {
    let b = batch()
    let requests = PushEncoders.json(b, batchSize: 2)
    #expect(requests.map(\.series) == [2, 2, 1])
    var names: [String] = []
    for r in requests {
        let array = try #require(try JSONSerialization.jsonObject(with: Data(r.body)) as? [[String: Any]])
        #expect(array.count == r.series)
        names += array.compactMap { $0["name"] as? String }
    }
    #expect(names.sorted() == ["a", "b", "g", "t", "u"])
    // The objects are exactly the JSON-lines sink's, joined into arrays of two.
    let lines = String(decoding: JSONLinesEncoder.encode(b), as: UTF8.self).split(separator: "\n").map(String.init)
    for (k, r) in requests.enumerated() {
        let chunk = lines[(2 * k)..<min(2 * k + 2, lines.count)]
        #expect(String(decoding: r.body, as: UTF8.self) == "[" + chunk.joined(separator: ",") + "]")
    }
}

@Test func datadogBodiesFollowTheSeriesAPI() throws {
    let requests = PushEncoders.datadog(batch(), batchSize: 100)
    #expect(requests.count == 1)
    let body = try #require(try JSONSerialization.jsonObject(with: Data(requests[0].body)) as? [String: Any])
    let series = try #require(body["series"] as? [[String: Any]])
    func find(_ metric: String) -> [String: Any]? { series.first { $0["metric"] as? String == metric } }
    let a = try #require(find("a"))
    #expect(a["type"] as? String == "count")
    #expect(a["tags"] as? [String] == ["env:prod"])
    #expect(a["interval"] as? Int != nil)  // whole seconds
    let points = try #require(a["points"] as? [[Double]])
    #expect(points == [[1_795_287_610, 1]])
    #expect(find("g")?["type"] as? String == "gauge")
    #expect(find("u")?["type"] as? String == "gauge")
    let stats = ["count", "samples", "rate", "sum", "min", "max", "mean", "median", "stddev", "p90"]
    for stat in stats {
        let s = try #require(find("t.\(stat)"), "t.\(stat)")
        #expect(s["type"] as? String == "gauge")
        #expect(s["tags"] as? [String] == ["k:v"])
    }
    #expect((find("t.sum")?["points"] as? [[Double]])?.first?.last == 30)
    #expect(requests[0].series == 4 + stats.count)
    #expect(PushEncoders.datadog(batch(), batchSize: 5).map(\.series) == [5, 5, 4])
}

@Test func headersSubstituteEnvironmentVariables() throws {
    var c = HTTPPushConfiguration()
    c.headers = ["DD-API-KEY": "${DD_KEY}", "Authorization": "Bearer ${TOKEN}-x", "Plain": "v"]
    try c.resolve(environment: ["DD_KEY": "secret", "TOKEN": "t0k"])
    #expect(c.resolvedHeaders == ["DD-API-KEY": "secret", "Authorization": "Bearer t0k-x", "Plain": "v"])
    c.headers = ["X": "${MISSING}"]
    #expect(throws: ConfigError("sinks.http_push.headers.X: environment variable MISSING is not set")) {
        try c.resolve(environment: [:])
    }
}

@Test func expandedHeaderValuesLoseOneTrailingNewlineAndRejectOtherControlBytes() throws {
    var c = HTTPPushConfiguration()
    c.headers = ["Authorization": "Bearer ${TOKEN}", "X-Key": "${KEY}"]
    // A secret mounted from a file ends with a newline: one is trimmed, LF or CRLF.
    try c.resolve(environment: ["TOKEN": "t0k\n", "KEY": "k\r\n"])
    #expect(c.resolvedHeaders == ["Authorization": "Bearer t0k", "X-Key": "k"])
    // Anything else that would split or end the header is an error naming the header only.
    for secret in ["t0k\n\n", "t0k\nX-Injected: 1", "t0k\r", "t\u{0}k", "\nt0k"] {
        c.headers = ["Authorization": "Bearer ${TOKEN}"]
        let message = #"sinks.http_push.headers.Authorization: the value holds a CR, LF or NUL byte after ${VAR} expansion"#
        #expect(throws: ConfigError(message)) { try c.resolve(environment: ["TOKEN": secret]) }
    }
}

@Test func retryAfterParsesSecondsAndDates() {
    #expect(PushHTTPClient.retryAfter("3") == 3)
    #expect(PushHTTPClient.retryAfter(" 0 ") == 0)
    #expect(PushHTTPClient.retryAfter("soon") == nil)
    #expect(PushHTTPClient.retryAfter(nil) == nil)
    let past = PushHTTPClient.retryAfter("Wed, 21 Oct 2015 07:28:00 GMT")
    #expect(past == 0)
}

@Test func outcomesClassifyRetries() {
    #expect(PushOutcome.failure("refused").isRetryable)
    #expect(PushOutcome.response(status: 503, retryAfter: nil, bodyStart: "").isRetryable)
    #expect(PushOutcome.response(status: 429, retryAfter: 1, bodyStart: "").isRetryable)
    #expect(!PushOutcome.response(status: 400, retryAfter: nil, bodyStart: "").isRetryable)
    #expect(!PushOutcome.response(status: 404, retryAfter: nil, bodyStart: "").isRetryable)
    #expect(PushOutcome.response(status: 204, retryAfter: nil, bodyStart: "").isSuccess)
}

struct HeaderCase: Sendable, CustomTestStringConvertible {
    var format: PushFormat
    var authorization: String?
    var configured: [String: String]
    var expected: [String]
    var testDescription: String { "\(format) \(configured)" }
}

@Test(arguments: [
    HeaderCase(
        format: .json, configured: [:],
        expected: ["Content-Type: application/json", "User-Agent: stator/\(statorVersion)"]),
    // Configured headers replace the defaults of the same name, whatever its case: Content-Type
    // used to be sent twice.
    HeaderCase(
        format: .json, configured: ["content-type": "application/json; charset=utf-8", "X-Scope-OrgID": "t1"],
        expected: ["User-Agent: stator/\(statorVersion)", "X-Scope-OrgID: t1", "content-type: application/json; charset=utf-8"]),
    HeaderCase(
        format: .remoteWrite, configured: ["User-Agent": "edge/2", "CONTENT-ENCODING": "snappy"],
        expected: [
            "Content-Type: application/x-protobuf", "X-Prometheus-Remote-Write-Version: 0.1.0", "CONTENT-ENCODING: snappy",
            "User-Agent: edge/2",
        ]),
    // The URL's credentials are a default too: a configured Authorization wins.
    HeaderCase(
        format: .influx, authorization: "Basic YTpi", configured: [:],
        expected: ["Content-Type: text/plain; charset=utf-8", "User-Agent: stator/\(statorVersion)", "Authorization: Basic YTpi"]),
    HeaderCase(
        format: .otlp, authorization: "Basic YTpi", configured: ["authorization": "Bearer t"],
        expected: ["Content-Type: application/x-protobuf", "User-Agent: stator/\(statorVersion)", "authorization: Bearer t"]),
])
func configuredHeadersReplaceTheDefaultsOfTheSameName(_ c: HeaderCase) {
    let headers = c.format.requestHeaders(authorization: c.authorization, configured: c.configured)
    #expect(headers.map { "\($0.0): \($0.1)" } == c.expected)
}
