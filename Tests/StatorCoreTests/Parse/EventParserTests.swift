import Testing
@testable import StatorCore

/// One row per rule of the Datadog agent's event and service-check grammar (SPEC section 15):
/// the line, then what it parses to, rendered by `describe`, or `error:<reason>`.
let eventCases: [ParseCase] = [
    // events: the lengths must match the bytes
    ParseCase("_e{5,4}:title|text", "event title|text p=normal t=info"),
    ParseCase("_e{21,36}:An exception occurred|Cannot parse CSV file from 10.0.0.17",
              "event An exception occurred|Cannot parse CSV file from 10.0.0.17 p=normal t=info"),
    ParseCase("_e{5,0}:title|", "event title| p=normal t=info"),
    ParseCase("_e{5,3}:title|a|b", "event title|a|b p=normal t=info"),
    ParseCase("_e{5,4}:title|a\\nb|#k:v", "event title|a\nb p=normal t=info #k:v"),
    ParseCase(
        "_e{5,4}:title|text|d:1700000000|h:web-1|k:agg|p:low|s:nagios|t:warning|#env:prod,canary",
        "event title|text d=1700000000 h=web-1 k=agg p=low s=nagios t=warning #env:prod,canary"),
    ParseCase("_e{5,4}:title|text|#dd.internal.entity_id:pod,k:v|c:abc|e:ext|card:x",
              "event title|text p=normal t=info #k:v"),
    ParseCase("_e{6,4}:title|text", "error:invalid_event"),
    ParseCase("_e{4,4}:title|text", "error:invalid_event"),
    ParseCase("_e{5,5}:title|text", "error:invalid_event"),
    ParseCase("_e{5,3}:title|text", "error:invalid_event"),
    ParseCase("_e{0,4}:|text", "error:invalid_event"),
    ParseCase("_e{5,4}title|text", "error:invalid_event"),
    ParseCase("_e{5}:title|text", "error:invalid_event"),
    ParseCase("_e{,4}:title|text", "error:invalid_event"),
    ParseCase("_e{-5,4}:title|text", "error:invalid_event"),
    ParseCase("_e{x,4}:title|text", "error:invalid_event"),
    ParseCase("_e{5,4:title|text", "error:invalid_event"),
    ParseCase("_e{5,4}:title|text|p:urgent", "error:invalid_event"),
    ParseCase("_e{5,4}:title|text|t:fatal", "error:invalid_event"),
    ParseCase("_e{5,4}:title|text|d:soon", "error:invalid_event"),
    ParseCase("_e{5,4}:title|text|h:a|h:b", "error:invalid_event"),
    ParseCase("_e{5,4}:title|text|", "error:invalid_event"),
    ParseCase("_e{5,4}:title|text|zz", "error:invalid_event"),
    // service checks: a name and a status 0-3
    ParseCase("_sc|my.check|0", "service_check my.check status=0"),
    ParseCase(
        "_sc|Redis connection|2|#env:dev|m:Redis connection timed out after 10s",
        "service_check Redis connection status=2 m=Redis connection timed out after 10s #env:dev"),
    ParseCase(
        "_sc|my.check|3|d:1700000000|h:web-1|#canary|m:all good\\nreally m\\: yes",
        "service_check my.check status=3 d=1700000000 h=web-1 m=all good\nreally m: yes #canary"),
    ParseCase("_sc|my.check|1|c:abc|#dd.internal.card:low", "service_check my.check status=1"),
    ParseCase("_sc|my.check|4", "error:invalid_service_check"),
    ParseCase("_sc|my.check|-1", "error:invalid_service_check"),
    ParseCase("_sc|my.check|01", "error:invalid_service_check"),
    ParseCase("_sc|my.check|", "error:invalid_service_check"),
    ParseCase("_sc|my.check", "error:invalid_service_check"),
    ParseCase("_sc||0", "error:invalid_service_check"),
    ParseCase("_sc|my.check|0|d:x", "error:invalid_service_check"),
    ParseCase("_sc|my.check|0|zz", "error:invalid_service_check"),
    ParseCase("_sc|my.check|0|#a|#b", "error:invalid_service_check"),
]

/// An event or check in one line: kind, title|text, then the fields that were sent.
func describe(_ e: DogEvent) -> String {
    var out = e.kind == .event ? "event \(e.title)|\(e.text)" : "service_check \(e.title) status=\(e.status)"
    if let t = e.timestamp { out += " d=\(t)" }
    if let h = e.hostname { out += " h=\(h)" }
    if let k = e.aggregationKey { out += " k=\(k)" }
    if let p = e.priority { out += " p=\(p)" }
    if let s = e.sourceType { out += " s=\(s)" }
    if let t = e.alertType { out += " t=\(t)" }
    if e.kind == .serviceCheck, !e.text.isEmpty { out += " m=\(e.text)" }
    if !e.tags.isEmpty { out += " #" + e.tags.joined(separator: ",") }
    return out
}

func parseEvent(_ text: String, limits: LineLimits = LineLimits()) -> String {
    Array(text.utf8).withUnsafeBytes { raw in
        switch EventParser.parse(raw, 0..<raw.count, limits: limits) {
        case .parsed(let e): return describe(e)
        case .failure(let reason): return "error:\(reason)"
        }
    }
}

@Test(arguments: eventCases)
func parsesEventsAndServiceChecks(_ c: ParseCase) {
    #expect(parseEvent(c.line) == c.expected)
}

/// Titles and names are bounded by `max_name_bytes`, text by 4 KB, tags as on metric lines.
@Test func eventsAreBoundedLikeLines() {
    let strict = LineLimits(maxNameBytes: 5, maxTags: 1, maxTagBytes: 3)
    #expect(parseEvent("_e{5,1}:title|x", limits: strict) == "event title|x p=normal t=info")
    #expect(parseEvent("_e{6,1}:titles|x", limits: strict) == "error:name_too_long")
    #expect(parseEvent("_sc|check|0", limits: strict) == "service_check check status=0")
    #expect(parseEvent("_sc|checks|0", limits: strict) == "error:name_too_long")
    #expect(parseEvent("_sc|check|0|#k:v,j:w", limits: strict) == "error:tags_too_long")
    #expect(parseEvent("_e{5,1}:title|x|#k:vv", limits: strict) == "error:tags_too_long")
    let text = String(repeating: "t", count: 4096)
    #expect(parseEvent("_e{5,4096}:title|" + text).hasPrefix("event title|ttt"))
    #expect(parseEvent("_e{5,4097}:title|" + text + "t") == "error:invalid_event")
    #expect(parseEvent("_sc|c|0|m:" + text + "t") == "error:invalid_service_check")
    #expect(Array("_e{5,1}:ti".utf8 + [0xFF] + "le|x".utf8).withUnsafeBytes { raw in
        EventParser.parse(raw, 0..<raw.count, limits: LineLimits()) == .failure(.invalidUTF8)
    })
}

/// `stator send` refuses what the agent refuses, events and service checks included.
@Test func statorSendChecksEventsAndServiceChecks() {
    #expect(StatsdClient.check(Array("_e{5,4}:title|text".utf8)) == nil)
    #expect(StatsdClient.check(Array("_e{6,4}:title|text".utf8)) == .invalidEvent)
    #expect(StatsdClient.check(Array("_sc|x|9".utf8)) == .invalidServiceCheck)
}

/// A `datadog` push's events and service checks go next to its series URL, query kept.
@Test func eventAPIsAreNextToTheSeriesURL() {
    #expect(HTTPPushSink.sibling("https://api.datadoghq.com/api/v1/series", "events") == "https://api.datadoghq.com/api/v1/events")
    #expect(
        HTTPPushSink.sibling("http://127.0.0.1:8428/datadog/api/v1/series?api_key=k", "check_run")
            == "http://127.0.0.1:8428/datadog/api/v1/check_run?api_key=k")
    #expect(HTTPPushSink.sibling("http://h:1", "events") == "http://h:1/events")
}
