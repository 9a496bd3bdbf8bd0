import Testing
@testable import StatorCore

struct ParseCase: Sendable, CustomTestStringConvertible {
    var line: String
    var expected: String
    var testDescription: String { "\"\(line)\" -> \(expected)" }
    init(_ line: String, _ expected: String) {
        self.line = line
        self.expected = expected
    }
}

/// One row per rule of SPEC section 1, and every rejection reason.
let parseCases: [ParseCase] = [
    // name, value, type
    ParseCase("api.requests:1|c", "api.requests c=1"),
    ParseCase("api.latency:12.5|ms", "api.latency ms=12.5"),
    ParseCase("x:1|g", "x g=1"),
    ParseCase("x:3|h", "x h=3"),
    ParseCase("x:3|d", "x d=3"),
    ParseCase("users:alice|s", "users s=alice"),
    ParseCase("héllo.wörld:1|c", "héllo.wörld c=1"),
    ParseCase("odd name-with/chars:1|c", "odd name-with/chars c=1"),
    ParseCase(":1|c", "error:empty_name"),
    ParseCase("a|b:1|c", "error:invalid_name"),
    ParseCase("a\u{0}b:1|c", "error:invalid_name"),
    ParseCase("no-colon-here", "error:missing_colon"),
    ParseCase("no-type:1", "error:missing_type"),
    ParseCase("no-type:1|", "error:missing_type"),
    ParseCase("bad-type:1|x", "error:unknown_type"),
    ParseCase("bad-type:1|cc", "error:unknown_type"),
    ParseCase("bad-type:1|MS", "error:unknown_type"),
    // values
    ParseCase("v:-2.5|ms", "v ms=-2.5"),
    ParseCase("v:1e3|ms", "v ms=1000"),
    ParseCase("v:1E-2|ms", "v ms=0.01"),
    ParseCase("v:.5|ms", "v ms=0.5"),
    ParseCase("v:5.|ms", "v ms=5"),
    ParseCase("v:-0|ms", "v ms=0"),
    ParseCase("v:+7|c", "v c=7"),
    ParseCase("v:|c", "error:invalid_value"),
    ParseCase("v:NaN|ms", "error:invalid_value"),
    ParseCase("v:nan|ms", "error:invalid_value"),
    ParseCase("v:inf|ms", "error:invalid_value"),
    ParseCase("v:+Inf|ms", "error:invalid_value"),
    ParseCase("v:-Infinity|g", "error:invalid_value"),
    ParseCase("v:1e400|ms", "error:invalid_value"),
    ParseCase("v:0x10|c", "error:invalid_value"),
    ParseCase("v:1_000|c", "error:invalid_value"),
    ParseCase("v:1.2.3|c", "error:invalid_value"),
    ParseCase("v:1e|c", "error:invalid_value"),
    ParseCase("v: 1|c", "error:invalid_value"),
    ParseCase("v:-|c", "error:invalid_value"),
    // several values (DogStatsD 1.1)
    ParseCase("t:1:2:3|ms", "t ms=1,2,3"),
    ParseCase("t:1:2:3|ms|@0.5|#k:v", "t{k=v} ms=1,2,3@0.5"),
    // Empty packed items are skipped (SPEC section 15); a line of only empty items is refused.
    ParseCase("t:1::3|ms", "t ms=1,3"),
    ParseCase("x:1.1234:41:|d", "x d=1.1234,41"),
    ParseCase("f:3:|g", "f g=3"),
    ParseCase("f::+3|g", "f g=d+3"),
    ParseCase("x::|d", "error:invalid_value"),
    ParseCase("x:::|c|#k:v", "error:invalid_value"),
    ParseCase("m:1|c::250:|ms", "m c=1 ms=250"),
    ParseCase("m:1|c:|ms", "error:invalid_value"),
    ParseCase("s:a:|s", "s s=a"),
    ParseCase("s::|s", "error:invalid_value"),
    ParseCase("s:a:b|s", "error:multiple_set_values"),
    ParseCase("s:|s", "error:invalid_value"),
    // etsy multi form
    ParseCase("m:1|c:250|ms", "m c=1 ms=250"),
    ParseCase("m:1|c|@0.5:250|ms|#env:prod", "m{env=prod} c=1@0.5 ms=250"),
    // `|@rate` right after a group's type is that group's own rate, also for the last group.
    ParseCase("m:1|c:250|ms|@0.25", "m c=1 ms=250@0.25"),
    ParseCase("m:1|c:250|ms|@0.25|#k:v", "m{k=v} c=1 ms=250@0.25"),
    ParseCase("m:1|c:-1|c", "error:negative_counter"),
    ParseCase("m:1|c:x|ms", "error:invalid_value"),
    ParseCase("m:1|c:2", "error:missing_type"),
    // sample rates
    ParseCase("r:2|c|@0.5", "r c=2@0.5"),
    ParseCase("r:2|c|@1", "r c=2"),
    ParseCase("r:2|ms|@0.1", "r ms=2@0.1"),
    ParseCase("r:2|g|@0.5", "r g=2@0.5"),
    ParseCase("r:a|s|@0.5", "r s=a@0.5"),
    ParseCase("r:2|c|@0", "error:invalid_sample_rate"),
    ParseCase("r:2|c|@-0.5", "error:invalid_sample_rate"),
    ParseCase("r:2|c|@1.5", "error:invalid_sample_rate"),
    ParseCase("r:2|c|@x", "error:invalid_sample_rate"),
    ParseCase("r:2|c|@", "error:invalid_sample_rate"),
    ParseCase("r:2|c|@0.5|@0.5", "error:invalid_field"),
    // a rate-scaled contribution that is not finite (SPEC section 1, "Bounds")
    ParseCase("tiny.c:1|c|@1e-310", "error:invalid_sample_rate"),
    ParseCase("tiny.t:0|ms|@1e-310", "error:invalid_sample_rate"),
    ParseCase("tiny.g:1|g|@1e-310", "error:invalid_sample_rate"),
    ParseCase("x:1e308|c|@0.5", "error:invalid_sample_rate"),
    ParseCase("x:1|c:1e308|c|@0.5", "error:invalid_sample_rate"),
    ParseCase("x:1e308|c", "x c=1e+308"),
    ParseCase("x:1e308|ms|@0.5", "x ms=1e+308@0.5"),
    ParseCase("r:2|c|@3e-308", "r c=2@3e-308"),
    // gauge deltas
    ParseCase("g:+3|g", "g g=d+3"),
    ParseCase("g:-3|g", "g g=d-3"),
    ParseCase("g:3|g", "g g=3"),
    ParseCase("g:+1:-2:5|g", "g g=d+1,d-2,5"),
    // negative counter
    ParseCase("c:-1|c", "error:negative_counter"),
    // DogStatsD tags
    ParseCase("t:1|c|#env:prod,region:eu", "t{env=prod,region=eu} c=1"),
    ParseCase("t:1|c|#env:prod,bare", "t{env=prod,bare} c=1"),
    ParseCase("t:1|c|#k:1,k:2", "t{k=1,k=2} c=1"),
    ParseCase("t:1|c|#url:http://x", "t{url=http://x} c=1"),
    ParseCase("t:1|c|#k:", "t{k=} c=1"),
    ParseCase("t:1|c|#", "t c=1"),
    ParseCase("t:1|c|#a:b|#c:d", "error:invalid_field"),
    // name tags
    ParseCase("influx,env=prod,region=eu:1|c", "influx{env=prod,region=eu} c=1"),
    ParseCase("librato#env=prod,region=eu:1|c", "librato{env=prod,region=eu} c=1"),
    ParseCase("signalfx[env=prod,region=eu]:1|c", "signalfx{env=prod,region=eu} c=1"),
    ParseCase("signalfx[env=prod:1|c", "error:invalid_tags"),
    ParseCase("signalfx[env=[x]]:1|c", "error:invalid_tags"),
    ParseCase("influx,bare,k=v:1|c", "influx{k=v} c=1"),
    ParseCase(",k=v:1|c", "error:empty_name"),
    // mixing
    ParseCase("influx,env=prod:1|c|#region:eu", "error:mixed_tags"),
    // container id, timestamp, extensions
    ParseCase("x:1|c|c:abc123", "x c=1"),
    ParseCase("x:1|c|T1656581400", "x c=1 T=1656581400"),
    ParseCase("x:1|c|#k:v|T1656581400|c:abc", "x{k=v} c=1 T=1656581400"),
    ParseCase("x:1|c|e:foo", "x c=1"),
    ParseCase("x:1|c|card:high", "x c=1"),
    ParseCase("x:1|c|Tabc", "error:invalid_field"),
    ParseCase("x:1|c|T", "error:invalid_field"),
    ParseCase("x:1|c|c:a|c:b", "error:invalid_field"),
    ParseCase("x:1|c|T1|T2", "error:invalid_field"),
    ParseCase("x:1|c|zzz", "error:invalid_field"),
    ParseCase("x:1|c||#k:v", "error:invalid_field"),
    ParseCase("x:1|c|", "error:invalid_field"),
    ParseCase("x:1|c|1:2", "error:invalid_field"),
    // events and service checks
    ParseCase("_e{5,4}:title|text", "event"),
    ParseCase("_e{5,4}:title|text|#k:v", "event"),
    ParseCase("_sc|my.check|0", "event"),
    ParseCase("_e", "error:missing_colon"),
]

@Test(arguments: parseCases)
func parsesLine(_ c: ParseCase) {
    #expect(parseLine(c.line) == c.expected)
}

@Test func rejectsInvalidUTF8InName() {
    #expect(parseLine([0x61, 0xFF, 0x62] + Array(":1|c".utf8)) == "error:invalid_utf8")
    #expect(parseLine([0xC0, 0xAF] + Array(":1|c".utf8)) == "error:invalid_utf8")  // overlong '/'
    #expect(parseLine([0xED, 0xA0, 0x80] + Array(":1|c".utf8)) == "error:invalid_utf8")  // surrogate
    #expect(parseLine([0xE2, 0x82] + Array(":1|c".utf8)) == "error:invalid_utf8")  // truncated
}

@Test func rejectsInvalidUTF8InTags() {
    #expect(parseLine(Array("x:1|c|#k:".utf8) + [0xFF]) == "error:invalid_utf8")
    #expect(parseLine(Array("x,k=".utf8) + [0xFF] + Array(":1|c".utf8)) == "error:invalid_utf8")
}

@Test func everyReasonHasADistinctLabel() {
    let labels = ParseFailure.allCases.map(\.description)
    #expect(Set(labels).count == labels.count)
    #expect(labels.allSatisfy { $0.allSatisfy { $0 == "_" || $0.isNumber || ($0.isLowercase && $0.isASCII) } })
}

/// `max_name_bytes`, `max_tags` and `max_tag_bytes` at their defaults (256, 32, 256) and set lower.
@Test func namesAndTagsAreBounded() {
    let name256 = String(repeating: "n", count: 256)
    #expect(parseLine(name256 + ":1|c") == "\(name256) c=1")
    #expect(parseLine(name256 + "x:1|c") == "error:name_too_long")
    // The name is measured before its name tags; a multi-byte character counts its bytes.
    #expect(parseLine(name256 + ",k=v:1|c") == "\(name256){k=v} c=1")
    #expect(parseLine(String(repeating: "é", count: 129) + ":1|c") == "error:name_too_long")
    // 32 tags pass, 33 do not, in each tag form; bare tags count (SPEC section 15).
    let tags32 = (0..<32).map { "k\($0):v" }.joined(separator: ",")
    #expect(parseLine("t:1|c|#" + tags32).hasPrefix("t{k0=v"))
    #expect(parseLine("t:1|c|#" + tags32 + ",k32:v") == "error:tags_too_long")
    #expect(parseLine("t:1|c|#" + tags32 + ",bare") == "error:tags_too_long")
    let named33 = (0..<33).map { "k\($0)=v" }.joined(separator: ",")
    #expect(parseLine("t," + named33 + ":1|c") == "error:tags_too_long")
    #expect(parseLine("t[" + named33 + "]:1|c") == "error:tags_too_long")
    // A tag is `key:value` as sent: 256 bytes pass, 257 do not.
    let value254 = String(repeating: "v", count: 254)
    #expect(parseLine("t:1|c|#k:" + value254) == "t{k=\(value254)} c=1")
    #expect(parseLine("t:1|c|#k:" + value254 + "v") == "error:tags_too_long")
    #expect(parseLine("t,k=" + value254 + "v:1|c") == "error:tags_too_long")

    let strict = LineLimits(maxNameBytes: 3, maxTags: 1, maxTagBytes: 5)
    func parse(_ text: String) -> String {
        Array(text.utf8).withUnsafeBytes { raw in
            var line = ParsedLine(limits: strict)
            switch StatsdParser.parse(raw, 0..<raw.count, into: &line) {
            case .metric: return render(line, raw)
            case .event: return "event"
            case .failure(let reason): return "error:\(reason)"
            }
        }
    }
    #expect(parse("abc:1|c|#k:vvv") == "abc{k=vvv} c=1")
    #expect(parse("abcd:1|c") == "error:name_too_long")
    #expect(parse("abc:1|c|#k:vvvv") == "error:tags_too_long")
    #expect(parse("abc:1|c|#k:v,j:w") == "error:tags_too_long")
    #expect(strict.longestKeyBytes == 1 + 2 + 3 + 1 * (2 + 2 + 5 - 1))
}

@Test func survivesHostileLines() {
    // A 64 KiB name, 10,000 tags, NUL bytes and random bytes: no crash, bounded answer.
    #expect(parseLine(String(repeating: "a", count: 65_000) + ":1|c") == "error:name_too_long")
    let tags = (0..<10_000).map { "k\($0):v" }.joined(separator: ",")
    #expect(parseLine("many:1|c|#" + tags) == "error:tags_too_long")
    #expect(parseLine([0, 0, 0, 0x3A, 0x31, 0x7C, 0x63]) == "error:invalid_name")
    var rng = SystemRandomNumberGenerator()
    for _ in 0..<2000 {
        let n = Int.random(in: 0..<200, using: &rng)
        let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
        _ = parseLine(bytes)
    }
}

@Test func parsingReusesScratchAcrossLines() {
    // The same ParsedLine serves consecutive lines without leaking state between them.
    let lines = ["a:1|c|#k:v", "b:2:3|ms", "c,x=y:1|g", "bad"]
    var line = ParsedLine()
    var seen: [String] = []
    for text in lines {
        Array(text.utf8).withUnsafeBytes { raw in
            if case .metric = StatsdParser.parse(raw, 0..<raw.count, into: &line) {
                seen.append(render(line, raw))
            } else {
                seen.append("rejected")
            }
        }
    }
    #expect(seen == ["a{k=v} c=1", "b ms=2,3", "c{x=y} g=1", "rejected"])
}
