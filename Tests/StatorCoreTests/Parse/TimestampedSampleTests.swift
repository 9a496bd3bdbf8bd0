import Testing
@testable import StatorCore

/// SPEC section 15: `|T<unix seconds>` on counters and gauges only.
let timestampCases: [ParseCase] = [
    ParseCase("x:1|c|T1656581400", "x c=1 T=1656581400"),
    ParseCase("x:-3|g|T1656581400", "x g=d-3 T=1656581400"),
    ParseCase("x:1:2|c|@0.5|#k:v|T0", "x{k=v} c=1,2@0.5 T=0"),
    ParseCase("x:1|c:2|g|T7", "x c=1 g=2 T=7"),
    // Past Int64.max the timestamp saturates (and the age bound refuses it).
    ParseCase("x:1|c|T9999999999999999999", "x c=1 T=9223372036854775807"),
    ParseCase("x:1|c|T99999999999999999999", "error:invalid_field"),
    ParseCase("x:1|ms|T1656581400", "error:invalid_field"),
    ParseCase("x:1|h|T1656581400", "error:invalid_field"),
    ParseCase("x:1|d|T1656581400", "error:invalid_field"),
    ParseCase("x:u|s|T1656581400", "error:invalid_field"),
    ParseCase("x:1|c:2|ms|T1656581400", "error:invalid_field"),
    ParseCase("x:1|c|T-5", "error:invalid_field"),
    ParseCase("x:1|c|T1.5", "error:invalid_field"),
]

@Test(arguments: timestampCases)
func parsesTimestamps(_ c: ParseCase) {
    #expect(parseLine(c.line) == c.expected)
}

/// The clock the bounds are read against: now, in whole seconds.
private func nowSeconds() -> Int64 { WallClock.nowMillis().floorDiv(1000) }

@Test func timestampedSamplesArePointsOfTheirOwnNotAggregates() throws {
    let h = Harness()
    let t = nowSeconds() - 600
    let outcomes = h.send(
        "c:1|c", "c:2|c|T\(t)", "c:2|c|T\(t)", "c:3:4|c|@0.5|T\(t + 1)", "g:5|g", "g:-7|g|T\(t)", "g:+2|g|T\(t)",
        "g:1:9|g|T\(t)")
    #expect(outcomes == Array(repeating: "ok", count: 8))
    let batch = h.flush(at: 10_000)
    // The interval's aggregates hold only the lines without `|T`.
    #expect(batch.counter("c")?.value == 1)
    #expect(batch.gauge("g") == 5)
    // Each timestamped line is a point, in arrival order, also a line seen before; a counter's
    // is its rate-scaled sum, a gauge's its last value as written.
    let points = batch.points.map { "\($0.key.name) \($0.key.type) \($0.value) \($0.timestamp)" }
    #expect(
        points == [
            "c counter 2.0 \(t * 1000)", "c counter 2.0 \(t * 1000)", "c counter 14.0 \((t + 1) * 1000)",
            "g gauge -7.0 \(t * 1000)", "g gauge 2.0 \(t * 1000)", "g gauge 9.0 \(t * 1000)",
        ])
    #expect(h.flush(at: 20_000).points.isEmpty)
}

@Test func timestampsOutsideTheBoundsAreRefused() {
    // A fixed clock at 2026-12-07T10:00:00.500Z: an hour back and ten minutes ahead are in,
    // a second further is out.
    var configuration = AggregationConfiguration(shards: 1)
    configuration.clock = { 1_796_637_600_500 }
    let table = ShardedTable(configuration: configuration, seed: 1)
    let now: Int64 = 1_796_637_600
    let outcomes = ingest(
        table,
        [
            "a:1|c|T\(now - 3600)", "a:1|c|T\(now + 600)", "a:1|c|T\(now - 3601)", "a:1|c|T\(now + 601)", "a:1|c|T0",
            "a:1|g|T9999999999999999999",
        ])
    #expect(
        outcomes == [
            "ok", "ok", "error:invalid_timestamp", "error:invalid_timestamp", "error:invalid_timestamp",
            "error:invalid_timestamp",
        ])
    #expect(table.points.drain().map(\.timestamp) == [(now - 3600) * 1000, (now + 600) * 1000])
}

@Test func aPointMakesASeriesThatCountsAndExpiresLikeAnother() throws {
    let h = Harness(maxSeries: 2, ttlMillis: 20_000)
    let t = nowSeconds()
    #expect(
        h.send("p:1|c|T\(t)", "q:1|g|T\(t)", "r:1|c|T\(t)", "r:1|c") == ["ok", "ok", "error:series_limit", "error:series_limit"])
    var batch = h.flush(at: 10_000)
    #expect(batch.points.map(\.key.name) == ["p", "q"])
    #expect(batch.counters.isEmpty && batch.gauges.isEmpty)
    // The points' series are tracked (numbered, for sinks that keep state) and expire by `series_ttl`.
    #expect(batch.points.allSatisfy { $0.key.series != .none })
    batch = h.flush(at: 20_000)
    batch = h.flush(at: 30_000)
    #expect(Set(batch.expired.map(\.name)) == ["p", "q"])
    #expect(h.send("r:1|c|T\(t)") == ["ok"])
}

@Test func theIntervalHoldsAtMostItsCapacityOfPoints() {
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 1, maxSeries: 3), seed: 1)
    let t = nowSeconds()
    #expect(ingest(table, (0..<5).map { "p:\($0)|c|T\(t)" }) == ["ok", "ok", "ok", "error:series_limit", "error:series_limit"])
    #expect(table.points.drain().map(\.value) == [0, 1, 2])
}

@Test func aPointRefusedForCapacityMakesNoSeries() {
    // Points past the interval's capacity must not take places under `max_series`.
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 1, maxSeries: 3), seed: 1)
    let t = nowSeconds()
    let lines = (0..<3).map { "p:\($0)|c|T\(t)" } + ["q:1|c|T\(t)", "s:1|c|T\(t)", "r:1|c"]
    #expect(ingest(table, lines) == ["ok", "ok", "ok", "error:series_limit", "error:series_limit", "ok"])
}

/// `stator send` refuses what the agent would: a timestamp out of the bounds of this machine's clock.
@Test func theClientChecksTheTimestampBounds() {
    let now = nowSeconds()
    #expect(StatsdClient.check(Array("x:1|c|T\(now - 60)".utf8)) == nil)
    #expect(StatsdClient.check(Array("x:1|c|T5".utf8)) == .invalidTimestamp)
    #expect(StatsdClient.check(Array("x:1|c|T\(now + 3600)".utf8)) == .invalidTimestamp)
    #expect(StatsdClient.check(Array("x:1|ms|T\(now)".utf8)) == .invalidField)
}
