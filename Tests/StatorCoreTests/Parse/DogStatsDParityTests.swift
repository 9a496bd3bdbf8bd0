import Testing
@testable import StatorCore

/// SPEC section 15: bare tags and origin fields, as the Datadog agent reads them.
let dogStatsDTagCases: [ParseCase] = [
    // Bare tags are part of the identity (shown here as the key alone).
    ParseCase("t:1|c|#canary", "t{canary} c=1"),
    ParseCase("t:1|c|#canary,env:prod", "t{canary,env=prod} c=1"),
    ParseCase("t:1|c|#a,,b", "t{a,b} c=1"),
    ParseCase("t:1|c|#:v,k:w", "t{k=w} c=1"),
    ParseCase("t:1|c|#canary,canary:x", "t{canary,canary=x} c=1"),
    // Origin fields are not tags.
    ParseCase("t:1|c|#dd.internal.entity_id:pod-1,env:prod", "t{env=prod} c=1"),
    ParseCase("t:1|c|#dd.internal.card:high,k:v|c:abc|e:ext", "t{k=v} c=1"),
    ParseCase("t:1|c|#env:prod,dd.internal.entity_id:pod-1,dd.internal.card:low", "t{env=prod} c=1"),
    ParseCase("t:1|c|#dd.internal.entity_idx:1", "t{dd.internal.entity_idx=1} c=1"),
    ParseCase("t:1|c|#dd.internal.cards:1,dd.internal.car:2", "t{dd.internal.cards=1,dd.internal.car=2} c=1"),
    ParseCase("t:1|c|#dd.internal.entity_id", "t{dd.internal.entity_id} c=1"),
    // Name tags keep their rule: a pair without `=` is ignored.
    ParseCase("influx,bare,k=v:1|c", "influx{k=v} c=1"),
]

@Test(arguments: dogStatsDTagCases)
func parsesDogStatsDTags(_ c: ParseCase) {
    #expect(parseLine(c.line) == c.expected)
}

private func parse(_ text: String, _ limits: LineLimits) -> String {
    Array(text.utf8).withUnsafeBytes { raw in
        var line = ParsedLine(limits: limits)
        switch StatsdParser.parse(raw, 0..<raw.count, into: &line) {
        case .metric: return render(line, raw)
        case .event: return "event"
        case .failure(let reason): return "error:\(reason)"
        }
    }
}

/// `dogstatsd.origin_tags`: the entity id, else the container id, as one `container_id` tag.
@Test func originTagsKeepTheEntityElseTheContainerID() {
    let on = LineLimits(originTags: true)
    #expect(parse("t:1|c|#dd.internal.entity_id:pod-1,k:v|c:abc", on) == "t{k=v,container_id=pod-1} c=1")
    #expect(parse("t:1|c|c:abc|#k:v", on) == "t{k=v,container_id=abc} c=1")
    #expect(parse("t:1|c|#dd.internal.card:high|e:ext", on) == "t c=1")
    #expect(parse("t:1|c|c:", on) == "t c=1")
    #expect(parse("t:1|c|#dd.internal.entity_id:", on) == "t c=1")
    #expect(parse("t:1|c|#dd.internal.entity_id:pod-1|c:abc", LineLimits()) == "t c=1")
    // Bounded as `container_id:<id>`, and counted in `max_tags`.
    let strict = LineLimits(maxTags: 1, maxTagBytes: 16, originTags: true)
    #expect(parse("t:1|c|c:abc", strict) == "t{container_id=abc} c=1")
    #expect(parse("t:1|c|c:abcd", strict) == "error:tags_too_long")
    #expect(parse("t:1|c|#k:v|c:abc", strict) == "error:tags_too_long")
}

@Test func aBareTagHasAKeyOfItsOwnThatReadsTrue() throws {
    let h = Harness()
    h.send("a:1|c|#canary", "a:2|c", "a:4|c|#canary", "a:8|c|#canary:true")
    let batch = h.flush(at: 10_000)
    #expect(batch.counters.count == 3)
    let bare = try #require(batch.counters.first { $0.value == 5 })
    #expect(bare.key.tags.map { "\($0.key)=\($0.value)" } == ["canary=true"])
    var marked: [String] = []
    bare.key.forEachTagMarkingBare { k, v, isBare in
        marked.append("\(String(decoding: k, as: UTF8.self)):\(String(decoding: v, as: UTF8.self)):\(isBare)")
    }
    #expect(marked == ["canary:true:true"])
    #expect(try #require(batch.counter("a")).value == 2)
    #expect(try #require(batch.counter("a", [("canary", "true")])).value == 8)
}

@Test func originFieldsNeverSplitASeries() throws {
    let h = Harness()
    h.send(
        "a:1|c|#env:prod,dd.internal.entity_id:pod-1", "a:1|c|#env:prod,dd.internal.entity_id:pod-2",
        "a:1|c|#dd.internal.card:high,env:prod|c:abc", "a:1|c|#env:prod|e:it-false,cn-x")
    let batch = h.flush(at: 10_000)
    #expect(batch.counters.count == 1)
    #expect(try #require(batch.counter("a", [("env", "prod")])).value == 4)

    let on = Harness(lineLimits: LineLimits(originTags: true))
    on.send(
        "a:1|c|#zz:1,dd.internal.entity_id:pod-1", "a:2|c|#zz:1,dd.internal.entity_id:pod-1|c:abc",
        "a:4|c|#zz:1|c:abc", "a:8|c|#zz:1")
    let tagged = on.flush(at: 10_000)
    #expect(tagged.counters.count == 3)
    #expect(try #require(tagged.counter("a", [("container_id", "pod-1"), ("zz", "1")])).value == 3)
    #expect(try #require(tagged.counter("a", [("container_id", "abc"), ("zz", "1")])).value == 4)
    #expect(try #require(tagged.counter("a", [("zz", "1")])).value == 8)
}

/// A bare tag reads `canary` = `true` in key=value sinks and goes bare in the Datadog push.
@Test func aBareTagIsTrueInKeyValueSinksAndBareInTheDatadogPush() throws {
    let h = Harness()
    h.send("a:1|c|#canary,env:prod")
    let batch = h.flush(at: 10_000)
    let json = String(decoding: JSONLinesEncoder.encode(batch), as: UTF8.self)
    #expect(json.contains(#""tags":{"canary":"true","env":"prod"}"#))
    let body = try #require(PushEncoders.datadog(batch, batchSize: 100).first?.body)
    #expect(String(decoding: body, as: UTF8.self).contains(#""tags":["canary","env:prod"]"#))
}
