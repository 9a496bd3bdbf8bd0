import Testing

@testable import StatorCore

/// `/metrics` content negotiation (SPEC section 13): the format with the highest q among the
/// two served, the earlier range on a tie, text when in doubt.
private let protobuf = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"

@Test(arguments: [
    // What Prometheus sends with native histograms on: 2.42, then later versions.
    (
        "\(protobuf),application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,"
            + "text/plain;version=0.0.4;q=0.5,*/*;q=0.1", ExpositionFormat.protobuf
    ),
    ("\(protobuf);q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.2", .protobuf),
    // What it sends without them: no protobuf offered.
    (
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
            + "text/plain;version=0.0.4;q=0.5,*/*;q=0.1", .text
    ),
    ("text/plain;version=0.0.4;q=0.9,\(protobuf);q=0.5", .text),
    // q=0: not acceptable, whatever the order.
    ("\(protobuf);q=0,text/plain;q=0.1", .text),
    ("\(protobuf);q=0", .text),
    ("\(protobuf);q=0.000", .text),
    // The text page refused: the protobuf page, even at a low q.
    ("text/plain;q=0,\(protobuf);q=0.01", .protobuf),
    // Ties: the range listed first.
    ("\(protobuf);q=0.5,text/plain;q=0.5", .protobuf),
    ("text/plain;q=0.5,\(protobuf);q=0.5", .text),
    ("*/*;q=0.5,\(protobuf);q=0.5", .text),
    ("\(protobuf),*/*", .protobuf),
    // Missing, empty, wildcard: text.
    ("", .text),
    ("*/*", .text),
    ("text/*", .text),
    ("application/*", .text),
    ("application/json", .text),
    // The most specific range sets the text page's q.
    ("text/plain;q=0.1,*/*;q=1,\(protobuf);q=0.5", .protobuf),
    ("text/*;q=0.2,\(protobuf);q=0.5", .protobuf),
    // Another text version is not our text page.
    ("text/plain;version=1.0.0,\(protobuf);q=0.5", .protobuf),
    // The protobuf range needs both parameters, and the delimited encoding.
    ("application/vnd.google.protobuf;encoding=delimited", .text),
    ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text", .text),
    ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily", .text),
    ("application/vnd.google.protobuf;proto=io.prometheus.client.metricfamily;encoding=delimited", .text),
    // Types and parameter names ignore case, spaces around the parts, and quoted values.
    (
        "Application/Vnd.Google.Protobuf; Proto=io.prometheus.client.MetricFamily; ENCODING=Delimited; Q=0.6 , text/plain;q=0.4",
        .protobuf
    ),
    ("application/vnd.google.protobuf;proto=\"io.prometheus.client.MetricFamily\";encoding=\"delimited\"", .protobuf),
    ("TEXT/PLAIN;VERSION=0.0.4;q=0.9,\(protobuf);q=0.8", .text),
    // Garbage: a q that is no number from 0 to 1 is not acceptable; a range without a slash is skipped.
    ("\(protobuf);q=high,text/plain;q=0.1", .text),
    ("\(protobuf);q=1.5,text/plain;q=0.1", .text),
    ("\(protobuf);q=-1", .text),
    ("garbage,;;,\(protobuf)", .protobuf),
    ("/,\(protobuf);q=0.3", .protobuf),
    (";q=1,,,", .text),
])
func negotiation(accept: String, expected: ExpositionFormat) {
    #expect(ExpositionFormat.negotiate(accept: [accept]) == expected, "\(accept)")
}

@Test func noAcceptHeaderGetsTextAndSeveralHeadersAreOneList() {
    #expect(ExpositionFormat.negotiate(accept: []) == .text)
    #expect(ExpositionFormat.negotiate(accept: ["text/plain;q=0.2", "\(protobuf);q=0.4"]) == .protobuf)
    let head = HTTPRequestHead(
        method: "GET", path: "/metrics", headers: [("accept", "text/plain;q=0.5"), ("accept", "\(protobuf);q=0.5")])
    #expect(ExpositionFormat.negotiate(head) == .text)
    #expect(ExpositionFormat.negotiate(HTTPRequestHead(method: "GET", path: "/metrics")) == .text)
}
