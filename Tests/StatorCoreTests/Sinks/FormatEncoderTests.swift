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
                "app.stats.counters.odd_name-x.count 1 10",
                "app.stats.counters.odd_name-x.rate 0.1 10",
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

@Test func emfObjectsGroupByTagsWithUnitsAndLimits() throws {
    var lines = ["req:3|c|#env:prod", "lat:10:20|ms|#env:prod", "temp:21.5|g", "env:1|c|#env:prod"]
    lines.append("wide:1|c|" + "#" + (1...31).map { "k\($0):v" }.joined(separator: ","))
    lines += (1...101).map { "many.\($0):1|c|#batch:big" }
    let h = Harness(percentiles: [90])
    _ = ingest(h.table, lines)
    let b = h.flush(at: 10_000)
    var w = JSONWriter()
    let skipped = EMFEncoder.encode(b, namespace: "Shop", into: &w)
    #expect(skipped == .init(tooManyDimensions: 1, nameConflicts: 1))  // `wide`, and `env` among dimension env
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
