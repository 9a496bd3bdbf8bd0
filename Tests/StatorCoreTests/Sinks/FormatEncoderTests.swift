import Foundation
import Testing
@testable import StatorCore

/// One interval (10 s) of the lines.
private func batch(_ lines: String...) -> FlushBatch {
    let h = Harness(percentiles: [90, 99.9])
    _ = ingest(h.table, lines)
    return h.flush(at: 10_000)
}

@Test func influxLinesEscapeAndCarryEveryStatistic() {
    let b = batch("req:3|c|#env:prod,path:a b=c", "temp:21.5|g", "users:x|s", "lat:10:20|ms", "bad\\name x:1|c")
    let body = InfluxEncoder.requests(b, batchSize: 100, labels: .init([("host", "web-1"), ("env", "other")]))
    #expect(body.count == 1)
    let text = String(decoding: body[0].body, as: UTF8.self)
    let lines: [String] = text.split(separator: "\n").map(String.init).sorted()
    let expected: [String] = [
        #"bad\\name\ x,env=other,host=web-1 value=1,rate=0.1 10000000000"#,
        "lat,env=other,host=web-1 count=2,samples=2,rate=0.2,sum=30,min=10,max=20,mean=15,median=15,stddev=5,p90=20,p99.9=20 10000000000",
        #"req,env=prod,path=a\ b\=c,host=web-1 value=3,rate=0.3 10000000000"#,
        "temp,env=other,host=web-1 value=21.5 10000000000",
        "users,env=other,host=web-1 value=1 10000000000",
    ]
    #expect(lines == expected)
    #expect(text.hasSuffix("\n"))
    #expect(body[0].series == 5)
    // batch_size splits by lines.
    #expect(InfluxEncoder.requests(b, batchSize: 2, labels: .none).map(\.series) == [2, 2, 1])
}

@Test func graphiteLinesAreEtsyStatsdNames() {
    let b = batch("req:3|c|#env:prod,q:a;b", "temp:21.5|g", "users:x|s", "lat:10:20:30:40|ms", "odd name/x*:1|c")
    let lines = String(decoding: GraphiteEncoder.encode(b, prefix: "app", tags: .graphite), as: UTF8.self)
        .split(separator: "\n").map(String.init)
    #expect(
        Set(lines)
            == Set([
                "app.stats.counters.req.count;env=prod;q=a_b 3 10",
                "app.stats.counters.req.rate;env=prod;q=a_b 0.3 10",
                "app.stats.counters.odd_name-x%2A.count 1 10",
                "app.stats.counters.odd_name-x%2A.rate 0.1 10",
                "app.stats.gauges.temp 21.5 10",
                "app.stats.sets.users.count 1 10",
                // etsy: the lowest round(N% of 4) values; 99.9 is written 99_9.
                "app.stats.timers.lat.count_90 4 10", "app.stats.timers.lat.mean_90 25 10",
                "app.stats.timers.lat.upper_90 40 10", "app.stats.timers.lat.sum_90 100 10",
                "app.stats.timers.lat.sum_squares_90 3000 10",
                "app.stats.timers.lat.count_99_9 4 10", "app.stats.timers.lat.mean_99_9 25 10",
                "app.stats.timers.lat.upper_99_9 40 10", "app.stats.timers.lat.sum_99_9 100 10",
                "app.stats.timers.lat.sum_squares_99_9 3000 10",
                "app.stats.timers.lat.std 11.180339887498949 10", "app.stats.timers.lat.upper 40 10",
                "app.stats.timers.lat.lower 10 10", "app.stats.timers.lat.count 4 10",
                "app.stats.timers.lat.count_ps 0.4 10", "app.stats.timers.lat.sum 100 10",
                "app.stats.timers.lat.sum_squares 3000 10", "app.stats.timers.lat.mean 25 10",
                "app.stats.timers.lat.median 25 10",
            ]))
    let untagged = String(decoding: GraphiteEncoder.encode(b, prefix: "", tags: .none), as: UTF8.self)
    #expect(untagged.hasPrefix("stats.counters.req.count 3 10\n"))
    #expect(!untagged.contains(";"))
}

/// etsy dropped every byte outside `[a-zA-Z0-9_.-]`: `café` and `cafè` both became `caf`, and
/// a tag named `name` replaced Graphite's own (the path).
@Test func graphiteEscapesWhatEtsyDropsAndRenamesANameTag() {
    let b = batch("café:1|c", "cafè:2|c", "a*b:3|c", "ab:4|c", "p%:5|c", "web:6|c|#name:x,tag_name:y,z:1")
    let lines = String(decoding: GraphiteEncoder.encode(b, prefix: "", tags: .graphite), as: UTF8.self)
        .split(separator: "\n").filter { $0.contains(".count ") || $0.contains(".count;") }.map(String.init)
    #expect(
        Set(lines)
            == Set([
                "stats.counters.caf%C3%A9.count 1 10", "stats.counters.caf%C3%A8.count 2 10",
                "stats.counters.a%2Ab.count 3 10", "stats.counters.ab.count 4 10", "stats.counters.p%25.count 5 10",
                "stats.counters.web.count;tag_tag_name=x;tag_name=y;z=1 6 10",
            ]))
}

@Test func emfObjectsGroupByTagsWithUnitsAndLimits() throws {
    var lines = ["req:3|c|#env:prod", "lat:10:20|ms|#env:prod", "temp:21.5|g", "env:1|c|#env:prod"]
    lines.append("wide:1|c|" + "#" + (1...31).map { "k\($0):v" }.joined(separator: ","))
    lines += (1...101).map { "many.\($0):1|c|#batch:big" }
    let h = Harness(percentiles: [90])
    _ = ingest(h.table, lines)
    let b = h.flush(at: 10_000)
    var w = JSONWriter()
    let skipped = EMFEncoder.encode(b, namespace: "Shop", into: &w)
    #expect(skipped == .init(tooManyDimensions: 1))  // `wide`
    let objects = try String(decoding: w.bytes, as: UTF8.self).split(separator: "\n").map {
        try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
    }
    func directive(_ o: [String: Any]) -> [String: Any]? {
        ((o["_aws"] as? [String: Any])?["CloudWatchMetrics"] as? [[String: Any]])?.first
    }
    for o in objects {
        #expect((o["_aws"] as? [String: Any])?["Timestamp"] as? Int == 10_000)
        #expect(directive(o)?["Namespace"] as? String == "Shop")
        #expect((directive(o)?["Metrics"] as? [Any])?.count ?? 0 <= 100)
    }
    let prod = try #require(objects.first { $0["env"] as? String == "prod" })
    #expect(directive(prod)?["Dimensions"] as? [[String]] == [["env"]])
    #expect(prod["req"] as? Double == 3)
    #expect(prod["lat.p90"] as? Double == 20)
    let metrics = try #require(directive(prod)?["Metrics"] as? [[String: String]])
    #expect(metrics.first { $0["Name"] == "req" }?["Unit"] == "Count")
    #expect(metrics.first { $0["Name"] == "lat.count" }?["Unit"] == "Count")
    #expect(metrics.first { $0["Name"] == "lat.mean" }?["Unit"] == "Milliseconds")
    let untagged = try #require(objects.first { $0["temp"] != nil })
    #expect(directive(untagged)?["Dimensions"] as? [[String]] == [[]])
    #expect((directive(untagged)?["Metrics"] as? [[String: String]])?.first?["Unit"] == "None")
    // 101 metrics of one tag set: two objects, 100 and 1.
    let big = objects.filter { $0["batch"] as? String == "big" }
    #expect(big.map { (directive($0)?["Metrics"] as? [Any])?.count ?? 0 } == [100, 1])
}

/// EMF objects from lines with a raised `max_name_bytes` and `max_tag_bytes`, as parsed dictionaries
/// and as text.
private func emf(_ lines: [String], percentiles: [Double] = []) throws -> (EMFEncoder.Skipped, [[String: Any]], String) {
    let table = ShardedTable(
        configuration: AggregationConfiguration(
            shards: 1, maxSeries: 1000, maxSamplesPerSeries: 100,
            lineLimits: LineLimits(maxNameBytes: 1000, maxTags: 40, maxTagBytes: 3000)),
        seed: 42)
    let flusher = Flusher(
        table: table,
        configuration: FlushConfiguration(
            intervalMillis: 10_000, seriesTTLMillis: 300_000, percentiles: percentiles.map(Percentile.init)),
        startMillis: 0, metrics: SelfMetrics(readers: 1)
    ) { _ in }
    #expect(ingest(table, lines) == lines.map { _ in "ok" })
    var w = JSONWriter()
    let skipped = EMFEncoder.encode(flusher.flush(at: 10_000), namespace: "Shop", into: &w)
    let text = String(decoding: w.bytes, as: UTF8.self)
    let objects = try text.split(separator: "\n").map {
        try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
    }
    return (skipped, objects, text)
}

private func dimensions(_ object: [String: Any]) -> [[String]]? {
    (((object["_aws"] as? [String: Any])?["CloudWatchMetrics"] as? [[String: Any]])?.first)?["Dimensions"] as? [[String]]
}

/// A tag named `_aws` wrote a second `_aws` key, which lost the metadata; a metric named like
/// a tag key of its series was skipped.
@Test func emfRenamesATagNamedAwsOrLikeAMetricBesideIt() throws {
    let (skipped, objects, text) = try emf([
        "awsdim:1|c|#_aws:oops", "env:2|c|#env:prod", "req:3|c|#env:prod", "lat:5|ms|#lat.max:x,tag_lat.max:y",
    ])
    #expect(skipped == .init())
    #expect(text.components(separatedBy: #""_aws":"#).count - 1 == objects.count)  // one `_aws` key in each
    let aws = try #require(objects.first { $0["awsdim"] != nil })
    #expect(dimensions(aws) == [["tag__aws"]])
    #expect(aws["tag__aws"] as? String == "oops")
    // `env` goes in an object of its own with its tag renamed; `req` keeps `env` as it is.
    let env = try #require(objects.first { $0["env"] as? Double == 2 })
    #expect(dimensions(env) == [["tag_env"]])
    #expect(env["tag_env"] as? String == "prod")
    #expect(env["req"] == nil)
    let req = try #require(objects.first { $0["req"] != nil })
    #expect(dimensions(req) == [["env"]])
    #expect(req["env"] as? String == "prod")
    // The renamed key steps over another tag's key: `tag_lat.max` is taken, so `tag_tag_lat.max`.
    let max = try #require(objects.first { $0["lat.max"] is Double })
    #expect(dimensions(max) == [["tag_tag_lat.max", "tag_lat.max"]])
    #expect(max["tag_tag_lat.max"] as? String == "x")
    #expect(max["tag_lat.max"] as? String == "y")
    let count = try #require(objects.first { $0["lat.count"] != nil })
    #expect(dimensions(count) == [["lat.max", "tag_lat.max"]])
}

/// CloudWatch takes names and dimension names of at most 255 bytes, dimension values of at
/// most 1,024 and objects of at most 256 KB.
@Test func emfCutsNamesAndValuesToCloudWatchLimitsAndObjectsTo256KB() throws {
    let longName = String(repeating: "n", count: 254) + "é" + "tail"  // the cut falls inside é
    let longKey = String(repeating: "k", count: 300)
    let longValue = String(repeating: "v", count: 1023) + "ü"
    let (skipped, objects, _) = try emf([
        "\(longName):1|c|#\(longKey):\(longValue)",
        "t\(longName):4|ms",
    ])
    #expect(skipped == .init())
    let counter = try #require(objects.first { $0[String(repeating: "n", count: 254)] != nil })
    #expect(dimensions(counter) == [[String(repeating: "k", count: 255)]])
    #expect(counter[String(repeating: "k", count: 255)] as? String == String(repeating: "v", count: 1023))
    // A statistic's suffix stays whole: the name before it is cut.
    let timer = try #require(objects.first { $0.keys.contains { $0.hasSuffix(".count") } })
    let name = try #require(timer.keys.first { $0.hasSuffix(".count") })
    #expect(name.utf8.count <= 255)
    #expect(name == "t" + String(repeating: "n", count: 248) + ".count")

    // 100 metrics of 255-byte names escaped six times over (control bytes) pass 256 KB: split.
    let control = String(repeating: "\u{1}", count: 240)
    let many = (100..<200).map { "\(control)\($0):1|c|#env:prod" }
    let (skippedMany, big, text) = try emf(many)
    #expect(skippedMany == .init())
    #expect(big.count == 2)
    #expect(big.reduce(0) { $0 + $1.count } == 100 + 2 * 2)  // each object: `_aws` and `env`
    for line in text.split(separator: "\n") { #expect(line.utf8.count <= 256 * 1024) }

    // Thirty 255-byte keys and 1,024-byte values that escape six times over cannot fit in one object.
    let control255 = String(repeating: "\u{2}", count: 253)
    let wide = (10..<40).map { "\(control255)\($0):" + String(repeating: "\u{2}", count: 1024) }.joined(separator: ",")
    let (skippedWide, none, _) = try emf(["w:1|c|#" + wide])
    #expect(skippedWide == .init(tooLarge: 1))
    #expect(none.isEmpty)
}
