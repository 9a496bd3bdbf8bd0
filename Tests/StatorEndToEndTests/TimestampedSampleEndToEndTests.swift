import Foundation
import Testing

/// Now in whole Unix seconds, and a time ten minutes before it: within the hour `|T` may reach back.
private func times() -> (now: Int64, point: Int64) {
    let now = Int64(Date().timeIntervalSince1970)
    return (now, now - 600)
}

/// The traffic of the tests below: an interval's counter beside a timestamped one, a timestamped
/// gauge, and three lines refused by the bounds and the types.
private func traffic(now: Int64, point: Int64) -> String {
    [
        "ts.hits:5|c|#env:prod|T\(point)", "ts.hits:1|c|#env:prod", "ts.temp:-3|g|T\(point)",
        "ts.old:1|c|T\(now - 7200)", "ts.ahead:1|g|T\(now + 3600)", "ts.lat:1|ms|T\(point)",
    ].joined(separator: "\n")
}

/// JSON lines write the point at its own time; `/metrics` adds a counter's to its total and
/// shows no timestamped gauge; the bounds and the types refuse by reason (SPEC section 15).
@Test func aTimestampedSampleIsAPointInJSONLinesAndACounterTotalOnThePage() throws {
    let dir = try TemporaryDirectory()
    let out = dir.file("out.json")
    let (now, point) = times()
    let agent = try StatorProcess(agent: ["--flush_interval", "100ms", "--sinks.json.path", out])
    try agent.send(traffic(now: now, point: point))
    let page = try scrape(agent, until: "the counter's total") { sample($0, #"ts_hits_total{env="prod"}"#) == 6 }
    #expect(!page.contains("ts_temp"))
    #expect(!page.contains("ts_old") && !page.contains("ts_ahead") && !page.contains("ts_lat"))
    #expect(try selfMetric(agent, #"stator_lines_invalid_total{input="udp",reason="invalid_timestamp"}"#) == 2)
    #expect(try selfMetric(agent, #"stator_lines_invalid_total{input="udp",reason="invalid_field"}"#) == 1)
    #expect(try agent.stop() == 0)

    let objects = try jsonLines(readFile(out)).filter { ($0["name"] as? String)?.hasPrefix("ts.") == true }
    let stamped = objects.filter { $0["timestamped"] as? Bool == true }
    let pointTime = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(point)))
        .replacingOccurrences(of: "Z", with: ".000Z")
    #expect(stamped.count == 2)
    let hits = try #require(stamped.first { $0["name"] as? String == "ts.hits" })
    #expect(hits["ts"] as? String == pointTime)
    #expect(hits["value"] as? Double == 5)
    #expect(hits["tags"] as? [String: String] == ["env": "prod"])
    #expect(hits["rate"] == nil)
    let temp = try #require(stamped.first { $0["name"] as? String == "ts.temp" })
    #expect(temp["ts"] as? String == pointTime)
    #expect(temp["value"] as? Double == -3)
    #expect(temp["type"] as? String == "gauge")
    // The interval's own counter holds only the line without `|T`; no gauge object repeats the point.
    let interval = objects.filter { $0["timestamped"] == nil }
    #expect(interval.map { $0["name"] as? String } == ["ts.hits"])
    #expect(interval.first?["value"] as? Double == 1)
}

extension HeavyEndToEndTests {
    /// Remote write and Influx into one real VictoriaMetrics: the gauge's point at its own time
    /// in both, the counter's in Influx at its time and in remote write's total.
    // Budget: about 1.5 s plain (2026-12-07); bound by VictoriaMetrics' start (30 s allowed), and
    // each wait allows 20 s.
    @Test func timestampedSamplesReachVictoriaMetricsAtTheirOwnTime() throws {
        let vm = try VictoriaMetricsServer()
        let (now, point) = times()
        let agent = try vm.pushingAgent([
            #"{"name": "rw", "url": "\#(vm.base)/api/v1/write", "format": "remote_write"}"#,
            #"{"name": "influx", "url": "\#(vm.base)/write", "format": "influx"}"#,
        ])
        try agent.send(traffic(now: now, point: point))
        #expect(try agent.stop() == 0)

        /// The value of `query` at `time`, once VictoriaMetrics has it.
        func value(_ query: String, at time: Int64) throws -> Double? {
            var found: Double?
            try eventually(timeout: 20, "\(query) at \(time)") {
                found = try vm.value(query, at: Double(time))
                return found != nil
            }
            return found
        }
        // Remote write: the gauge's point at its time; the counter's in the total sent at the flush.
        #expect(try value("ts_temp", at: point) == -3)
        #expect(try vm.value("ts_temp", at: Double(point - 1)) == nil)
        #expect(try vm.await(#"ts_hits_total{env="prod"}"#) == 6)
        // Influx: each at its own time; the interval's counter at the flush.
        #expect(try value(#"{__name__="ts.hits_value",env="prod"}"#, at: point) == 5)
        #expect(try value(#"{__name__="ts.temp_value"}"#, at: point) == -3)
        #expect(try value(#"{__name__="ts.hits_rate",env="prod"}"#, at: Int64(Date().timeIntervalSince1970)) != nil)
        #expect(try vm.value(#"{__name__="ts.hits_value",env="prod"}"#, at: Double(point - 1)) == nil)
        for name in ["ts_old_total", "ts_ahead", "ts.old_value", "ts.ahead_value", "ts_lat", "ts.lat_count"] {
            #expect(try vm.value(#"count({__name__="\#(name)"})"#) == nil, "\(name)")
        }
    }
}

/// Remote write does not send a gauge point dated after the flush (Prometheus would then refuse
/// the gauge's own samples until that time, and whole requests with them): it counts it.
@Test func remoteWriteCountsAGaugePointFromTheFutureInsteadOfSendingIt() throws {
    let receiver = try TestHTTPReceiver()
    let (now, point) = times()
    let agent = try StatorProcess(agent: [
        "--flush_interval", "100ms", "--sinks.json.path", "", "--sinks.http_push.url",
        "http://127.0.0.1:\(receiver.port)/api/v1/write", "--sinks.http_push.format", "remote_write",
    ])
    try agent.send("ahead:1|g|T\(now + 300)\nbehind:2|g|T\(point)")
    let dropped = #"stator_push_dropped_series_total{reason="future_point",sink="http_push"}"#
    try eventually("the future point counted", seen: "\((try? selfMetric(agent, dropped)) ?? -1)") {
        try selfMetric(agent, dropped) == 1
    }
    try eventually("the past point sent") { receiver.requests.count >= 1 }
    #expect(try agent.stop() == 0)
}
