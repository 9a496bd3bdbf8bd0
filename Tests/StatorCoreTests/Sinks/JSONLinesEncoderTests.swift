import Testing
@testable import StatorCore

@Test func encodesEveryTypeExactly() {
    let h = Harness(percentiles: [90, 99.9])
    h.send(
        "api.requests:1|c|#env:prod", "api.requests:2|c|@0.5|#env:prod", "temp:21.5|g", "users:a|s", "users:b|s",
        "api.latency:10:20:30:40|ms|#env:prod,region:eu", "q\"uo\\te:1|h")
    let text = String(decoding: JSONLinesEncoder.encode(h.flush(at: 20_000)), as: UTF8.self)
    let lines = text.split(separator: "\n").map(String.init).sorted()
    let ts = "\"ts\":\"1970-01-01T00:00:20.000Z\",\"interval\":20"
    #expect(
        lines
            == [
                "{\(ts),\"name\":\"api.latency\",\"type\":\"timer\",\"tags\":{\"env\":\"prod\",\"region\":\"eu\"},\"count\":4,\"samples\":4,\"rate\":0.2,\"sum\":100,\"min\":10,\"max\":40,\"mean\":25,\"median\":25,\"stddev\":11.180339887498949,\"p90\":40,\"p99.9\":40}",
                "{\(ts),\"name\":\"api.requests\",\"type\":\"counter\",\"tags\":{\"env\":\"prod\"},\"value\":5,\"rate\":0.25}",
                "{\(ts),\"name\":\"q\\\"uo\\\\te\",\"type\":\"histogram\",\"tags\":{},\"count\":1,\"samples\":1,\"rate\":0.05,\"sum\":1,\"min\":1,\"max\":1,\"mean\":1,\"median\":1,\"stddev\":0,\"p90\":1,\"p99.9\":1}",
                "{\(ts),\"name\":\"temp\",\"type\":\"gauge\",\"tags\":{},\"value\":21.5}",
                "{\(ts),\"name\":\"users\",\"type\":\"set\",\"tags\":{},\"value\":2}",
            ].sorted())
}

@Test func escapesNamesAndWritesInfinityAsNull() {
    let key = MetricKey(type: .gauge, name: "q\"uo\\te\u{1}é", tags: [("k\"", "v\n")])
    let batch = FlushBatch(
        timestamp: 1_795_287_610_123, interval: 10, percentiles: [],
        gauges: [GaugeSummary(key: key, value: .infinity)])
    let text = String(decoding: JSONLinesEncoder.encode(batch), as: UTF8.self)
    #expect(
        text
            == "{\"ts\":\"2026-11-21T19:00:10.123Z\",\"interval\":10,\"name\":\"q\\\"uo\\\\te\\u0001é\",\"type\":\"gauge\",\"tags\":{\"k\\\"\":\"v\\n\"},\"value\":null}\n"
    )
}

@Test(arguments: [
    (0.0, "0"), (-0.0, "0"), (1.0, "1"), (-2.0, "-2"), (2.5, "2.5"), (0.1, "0.1"), (1e21, "1e+21"),
    (123456789012.0, "123456789012"), (1e-7, "1e-07"), (Double.nan, "null"), (-Double.infinity, "null"),
])
func writesPlainJSONNumbers(_ value: Double, _ expected: String) {
    var w = JSONWriter()
    w.number(value)
    #expect(String(decoding: w.bytes, as: UTF8.self) == expected)
}

@Test func formatsRFC3339WithMilliseconds() {
    #expect(WallClock.rfc3339(0) == "1970-01-01T00:00:00.000Z")
    #expect(WallClock.rfc3339(1_795_287_610_000) == "2026-11-21T19:00:10.000Z")
    #expect(WallClock.rfc3339(951_782_400_007) == "2000-02-29T00:00:00.007Z")
}

@Test(arguments: [
    (Int64(0), "0"), (7, "7"), (-7, "-7"), (10, "10"), (1_000_000, "1000000"),
    (Int64.max, "9223372036854775807"), (Int64.min, "-9223372036854775808"),
])
func writesIntegers(_ value: Int64, _ expected: String) {
    var w = JSONWriter()
    w.raw("[")
    w.integer(value)
    #expect(String(decoding: w.bytes, as: UTF8.self) == "[" + expected)
}

@Test(arguments: [
    ("", #""""#), ("plain.name_1", #""plain.name_1""#), ("\"", #""\"""#), ("a\\", #""a\\""#),
    ("\ttab\r\n", #""\ttab\r\n""#), ("\u{0}\u{1F}\u{7F}", #""\u0000\u001f\u007f""#),
    ("é ü\u{1F600}", "\"é ü\u{1F600}\""), ("x\"y\\z", #""x\"y\\z""#),
])
func escapesStringsByteByByteAndCopiesRunsWhole(_ text: String, _ expected: String) {
    var w = JSONWriter()
    w.string(text)
    #expect(String(decoding: w.bytes, as: UTF8.self) == expected)
}

@Test func theWriterGrowsPastItsCapacityKeepingEveryByte() {
    // It starts at 16 bytes and doubles (or more, for one large piece) as pieces arrive.
    var w = JSONWriter(capacity: 1)
    var expected = ""
    for n in 0..<500 {
        let piece = String(repeating: "x", count: n % 37) + "\(n)"
        w.string(piece)
        w.raw(UInt8(ascii: ","))
        w.integer(Int64(-n))
        expected += "\"\(piece)\",\(-n)"
    }
    let large = String(repeating: "y", count: 100_000)
    w.text(large)
    expected += large
    #expect(w.count == expected.utf8.count)
    #expect(String(decoding: w.bytes, as: UTF8.self) == expected)
    #expect(w.withBytes { Array($0) } == w.bytes)
    // Reused for the next batch: emptied, the large buffer given up, writing on as before.
    for limit in [1 << 20, 16] {
        w.removeAll(keepingCapacityUpTo: limit)
        #expect(w.count == 0 && w.bytes.isEmpty)
        w.string("again")
        w.integer(42)
        #expect(String(decoding: w.bytes, as: UTF8.self) == #""again"42"#)
    }
}
