import Foundation
import Testing
@testable import StatorCore

private let quiet = Logger(label: "test", level: .critical)

func rollupCounter(_ name: String, _ value: Double, _ tags: [(String, String)]) -> CounterSummary {
    CounterSummary(key: MetricKey(type: .counter, name: name, tags: tags), value: value, rate: value / 10)
}

func rollupDatabasePath() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("rollup-\(UUID().uuidString).db").path
}

/// Midnight UTC of 2026-12-06.
let rollupMidnight: EpochMillis = 1_796_515_200_000

func allRollupRows(_ sink: RollupSink) throws -> [RollupRow] {
    try sink.rows(key: nil, nameGlob: nil, start: "0000-01-01", end: "9999-12-31", after: nil, limit: 1000)
}

@Test func aFlushAtMidnightClosesTheDayBefore() throws {
    let path = rollupDatabasePath()
    defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
    var configuration = RollupConfiguration()
    configuration.path = path
    let sink = try RollupSink(configuration: configuration, metrics: nil, logger: quiet, now: rollupMidnight - 5000)
    let tags = [("tenant", "acme")]
    try sink.emit(
        FlushBatch(timestamp: rollupMidnight - 10_000, interval: 10, percentiles: [], counters: [rollupCounter("calls", 2, tags)])
    )
    try sink.emit(
        FlushBatch(timestamp: rollupMidnight, interval: 10, percentiles: [], counters: [rollupCounter("calls", 3, tags)]))
    try sink.emit(
        FlushBatch(timestamp: rollupMidnight + 10_000, interval: 10, percentiles: [], counters: [rollupCounter("calls", 4, tags)])
    )
    let rows = try allRollupRows(sink)
    #expect(rows.map(\.day) == ["2026-12-05", "2026-12-06"])
    // Created 0640 at most, as every file Stator creates; the write-ahead log takes that mode.
    for file in [path, path + "-wal"] {
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int)
        #expect(mode & 0o027 == 0, "\(file): \(String(mode, radix: 8))")
    }
    #expect(rows.map(\.sum) == [5, 4])
}

@Test func rowsOlderThanTheRetentionAreDeletedOnceADay() throws {
    let path = rollupDatabasePath()
    defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
    var configuration = RollupConfiguration()
    configuration.path = path
    configuration.retentionDays = 3
    let sink = try RollupSink(configuration: configuration, metrics: nil, logger: quiet, now: rollupMidnight)
    let tags = [("tenant", "acme")]
    for day in 0..<5 {
        let at = rollupMidnight + EpochMillis(day) * 86_400_000 + 60_000
        try sink.emit(FlushBatch(timestamp: at, interval: 10, percentiles: [], counters: [rollupCounter("calls", 1, tags)]))
    }
    // Three days kept, today included: the 8th, 9th and 10th.
    #expect(try allRollupRows(sink).map(\.day) == ["2026-12-08", "2026-12-09", "2026-12-10"])
}

@Test func seriesAreRolledUpByTheTagAcrossTheirOtherTagsAndOnlyWhenMatched() throws {
    let path = rollupDatabasePath()
    defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
    var configuration = RollupConfiguration()
    configuration.path = path
    configuration.by = "customer"
    configuration.match = ["api.*", "storage.*"]
    configuration.limits = [.init(match: "api.*", daily: 10)]
    let sink = try RollupSink(configuration: configuration, metrics: nil, logger: quiet, now: rollupMidnight + 1000)
    let batch = FlushBatch(
        timestamp: rollupMidnight + 10_000, interval: 10, percentiles: [],
        counters: [
            rollupCounter("api.calls", 2, [("customer", "acme"), ("route", "/a")]),
            rollupCounter("api.calls", 3, [("customer", "acme"), ("route", "/b")]),
            rollupCounter("api.calls", 1, [("customer", "")]),  // an empty value is no value
            rollupCounter("db.calls", 9, [("customer", "acme")]),  // no glob matches
            rollupCounter("api.calls", 4, [("tenant", "acme")]),  // not the roll-up tag
        ],
        gauges: [
            GaugeSummary(key: MetricKey(type: .gauge, name: "storage.bytes", tags: [("customer", "acme")]), value: 7)
        ])
    try sink.emit(batch)
    let rows = try allRollupRows(sink)
    #expect(
        rows == [
            RollupRow(day: "2026-12-06", key: "acme", name: "api.calls", type: "counter", sum: 5),
            RollupRow(day: "2026-12-06", key: "acme", name: "storage.bytes", type: "gauge", min: 7, max: 7, last: 7),
        ])
    #expect(sink.renderUsage().contains("stator_rollup_usage_ratio{key=\"acme\",name=\"api.calls\"} 0.5\n"))
    #expect(!sink.renderUsage().contains("storage.bytes"))
    // Another Stator reads today's sums back for the limits.
    let reopened = try RollupSink(configuration: configuration, metrics: nil, logger: quiet, now: rollupMidnight + 20_000)
    #expect(reopened.renderUsage().contains("stator_rollup_usage_ratio{key=\"acme\",name=\"api.calls\"} 0.5\n"))
}

@Test func aDatabaseOfAnotherTagOrNoDatabaseAtAllIsRefusedNamingTheFile() throws {
    let path = rollupDatabasePath()
    defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
    var configuration = RollupConfiguration()
    configuration.path = path
    _ = try RollupSink(configuration: configuration, metrics: nil, logger: quiet)
    configuration.by = "customer"
    #expect(
        throws: ConfigError(
            "sinks.rollup.path \(path): the database holds roll-ups by tenant, not by customer (sinks.rollup.by): give it another path"
        )
    ) { _ = try RollupSink(configuration: configuration, metrics: nil, logger: quiet) }
    let junk = rollupDatabasePath()
    defer { try? FileManager.default.removeItem(atPath: junk) }
    try Data(repeating: 0x41, count: 8192).write(to: URL(fileURLWithPath: junk))
    configuration.path = junk
    #expect(throws: ConfigError("sinks.rollup.path \(junk): the file is not an SQLite database (file is not a database)")) {
        _ = try RollupSink(configuration: configuration, metrics: nil, logger: quiet)
    }
}

@Test func theAPIChecksItsParametersAndPagesWithACursor() throws {
    let path = rollupDatabasePath()
    defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
    var configuration = RollupConfiguration()
    configuration.path = path
    let sink = try RollupSink(configuration: configuration, metrics: nil, logger: quiet, now: rollupMidnight)
    let counters = ["acme", "beta", "[odd]"].flatMap { tenant in
        ["api.calls", "api.bytes"].map { rollupCounter($0, 1, [("tenant", tenant)]) }
    }
    try sink.emit(FlushBatch(timestamp: rollupMidnight + 10_000, interval: 10, percentiles: [], counters: counters))
    func get(_ query: String) -> (Int, String) {
        var head = HTTPRequestHead(method: "GET", path: "/api/v1/rollups", minorVersion: 1, headers: [])
        head.query = query
        let answer = sink.answer(head)
        let response = answer.deferred?() ?? answer  // the query itself runs on the server's worker
        return (response.status, String(decoding: response.body.joined(), as: UTF8.self))
    }
    for (query, reason) in [
        ("by=customer", "by must be tenant, the tag roll-ups are kept by (sinks.rollup.by), got customer"),
        ("start=2026-13-01", "start must be a day as YYYY-MM-DD, got 2026-13-01"),
        ("end=yesterday", "end must be a day as YYYY-MM-DD, got yesterday"),
        ("start=2026-12-07&end=2026-12-06", "start 2026-12-07 is after end 2026-12-06"),
        ("limit=0", "limit must be from 1 to 10000, got 0"),
        ("colour=red", "unknown parameter colour (by, key, name, start, end, limit, cursor)"),
        ("key=a&key=b", "key is given twice"), ("cursor=zz", "cursor is not a next value this API gave"),
        ("key=%zz", "the query string is not valid percent-encoded UTF-8"),
    ] {
        #expect(get(query) == (400, reason + "\n"), "\(query)")
    }
    // A glob on the name, and a tag value holding a glob's bracket, taken literally.
    let (status, body) = get("by=tenant&key=%5Bodd%5D&name=api.c*&start=2026-12-06&end=2026-12-06")
    #expect(status == 200)
    #expect(
        body
            == #"{"by":"tenant","rows":[{"day":"2026-12-06","key":"[odd]","name":"api.calls","type":"counter","sum":1,"count":null,"min":null,"max":null,"last":null}],"next":null}"#
            + "\n")
    // Page by page, two rows at a time, every row once, in (key, day, name, type) order.
    var seen: [String] = []
    var cursor: String?
    for _ in 0..<10 {
        let (status, text) = get("limit=2" + (cursor.map { "&cursor=\($0)" } ?? ""))
        #expect(status == 200)
        let page = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let rows = try #require(page["rows"] as? [[String: Any]])
        seen += rows.map { "\($0["key"] ?? "") \($0["name"] ?? "")" }
        cursor = page["next"] as? String
        if cursor == nil { break }
    }
    #expect(
        seen == ["[odd] api.bytes", "[odd] api.calls", "acme api.bytes", "acme api.calls", "beta api.bytes", "beta api.calls"])
}
