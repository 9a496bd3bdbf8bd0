import Foundation
import Testing
@testable import StatorCore

// The roll-up sink's waiting rows: each flush folds some rows into the `rollups` table and
// saves the rest in the same transaction; queries, limits and restarts see both.

private let quiet = Logger(label: "test", level: .critical)

private func removeDatabase(_ path: String) {
    for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
}

/// The `rollups` table alone, without the waiting rows.
private func tableRows(_ sink: RollupSink) throws -> [RollupRow] {
    try sink.store.rows(key: nil, nameGlob: nil, start: "0000-01-01", end: "9999-12-31", after: nil, limit: 10_000)
}

/// A counter of a series numbered as an aggregation table numbers it.
private func numbered(_ name: String, _ value: Double, tenant: String, series: UInt32, incarnation: UInt32 = 1)
    -> CounterSummary
{
    let key = MetricKey(type: .counter, name: name, tags: [("tenant", tenant)])
    return CounterSummary(
        key: MetricKey(bytes: key.bytes, series: SeriesID(index: series, incarnation: incarnation)), value: value,
        rate: value / 10)
}

@Test func everyRowIsExactAfterEachFlushThroughACrashAClockStepAndTheFinalFold() throws {
    let path = rollupDatabasePath()
    defer { removeDatabase(path) }
    var configuration = RollupConfiguration()
    configuration.path = path
    configuration.limits = [.init(match: "api.*", daily: 1000)]
    var sink = try RollupSink(configuration: configuration, metrics: nil, logger: quiet, now: rollupMidnight)
    sink.minimumFold = 4
    var rng = SplitMix64(state: 11)
    // What the rows must hold: (key, day, name) -> sum.
    var model: [String: Double] = [:]
    let names = ["api.calls", "api.bytes", "queue.in"]
    // Flush times: two days, a clock step back over midnight, and the second day again.
    var times: [EpochMillis] = (1...12).map { rollupMidnight + EpochMillis($0) * 10_000 }
    times += (1...12).map { rollupMidnight + 86_400_000 + EpochMillis($0) * 10_000 }
    times += [rollupMidnight + 86_390_000, rollupMidnight + 86_400_000 - 1]  // the step back
    times += (13...20).map { rollupMidnight + 86_400_000 + EpochMillis($0) * 10_000 }
    var sawWaitingRows = false
    for (flush, time) in times.enumerated() {
        var counters: [CounterSummary] = []
        for tenant in 0..<20 {
            for (n, name) in names.enumerated() where rng.next() % 3 != 0 {
                let value = Double(rng.next() % 1000) / 8
                // Series 5 changes hands halfway: a new incarnation is another series.
                let series = UInt32(tenant * names.count + n)
                let incarnation: UInt32 = series == 5 && flush >= 20 ? 2 : 1
                let tenantName = series == 5 && flush >= 20 ? "late" : "t\(tenant)"
                counters.append(numbered(name, value, tenant: tenantName, series: series, incarnation: incarnation))
                let day = RollupSink.day(of: time - 1)
                model["\(tenantName) \(day) \(name)", default: 0] += value
            }
        }
        try sink.emit(FlushBatch(timestamp: time, interval: 10, percentiles: [], counters: counters))
        let rows = try allRollupRows(sink)
        let seen = Dictionary(uniqueKeysWithValues: rows.map { ("\($0.key) \($0.day) \($0.name)", $0.sum ?? .nan) })
        #expect(seen == model, "after flush \(flush)")
        if try tableRows(sink).count < rows.count { sawWaitingRows = true }
        if flush == 15 {
            // kill -9: no shutdown; the last flush's transaction holds everything.
            sink = try RollupSink(configuration: configuration, metrics: nil, logger: quiet, now: time)
            sink.minimumFold = 4
            #expect(try allRollupRows(sink) == rows)
            // The limits' sums count the waiting rows too.
            let day = RollupSink.day(of: time - 1)
            let tenant = try #require((0..<20).first { model["t\($0) \(day) api.calls"] != nil })
            let sum = try #require(model["t\(tenant) \(day) api.calls"])
            #expect(
                sink.renderUsage().contains(
                    "stator_rollup_usage_ratio{key=\"t\(tenant)\",name=\"api.calls\"} \(PrometheusNumber.format(sum / 1000))\n"))
        }
    }
    #expect(sawWaitingRows)
    // SIGTERM folds everything: the table alone holds every row, and nothing waits.
    sink.shutdown()
    let table = try tableRows(sink)
    #expect(Dictionary(uniqueKeysWithValues: table.map { ("\($0.key) \($0.day) \($0.name)", $0.sum ?? .nan) }) == model)
    #expect(try sink.store.unfolded().isEmpty)
}

@Test func foldsSweepTheTagValuesInTheTablesOrder() throws {
    let path = rollupDatabasePath()
    defer { removeDatabase(path) }
    var configuration = RollupConfiguration()
    configuration.path = path
    let sink = try RollupSink(configuration: configuration, metrics: nil, logger: quiet, now: rollupMidnight)
    sink.minimumFold = 3
    // Twelve tenants, named out of order; every flush changes all of them.
    let tenants = (0..<12).map { "t" + String(($0 * 7) % 12 + 10) }
    var folded: [[String]] = []
    for flush in 1...5 {
        let counters = tenants.enumerated().map { numbered("api.calls", 1, tenant: $1, series: UInt32($0)) }
        let before = Set(try tableRows(sink).map(\.key))
        try sink.emit(
            FlushBatch(
                timestamp: rollupMidnight + EpochMillis(flush) * 10_000, interval: 10, percentiles: [], counters: counters))
        folded.append(try tableRows(sink).map(\.key).filter { !before.contains($0) })
    }
    // Three tag values a flush, in byte order, then around again (already in the table).
    #expect(
        folded == [["t10", "t11", "t12"], ["t13", "t14", "t15"], ["t16", "t17", "t18"], ["t19", "t20", "t21"], []])
    // A row in the table holds the flushes up to its last fold: t13's was folded at flush 2.
    let t13 = try #require(try tableRows(sink).first { $0.key == "t13" })
    #expect(t13.sum == 2)
    #expect(try allRollupRows(sink).allSatisfy { $0.sum == 5 })
}

@Test func queriesAddTheWaitingRowsToTheTablesAndPageAcrossBoth() throws {
    let path = rollupDatabasePath()
    defer { removeDatabase(path) }
    var configuration = RollupConfiguration()
    configuration.path = path
    let sink = try RollupSink(configuration: configuration, metrics: nil, logger: quiet, now: rollupMidnight)
    sink.minimumFold = 2
    let tenants = ["a", "b", "c", "d", "e"]
    for flush in 1...3 {
        let counters = tenants.enumerated().flatMap { n, tenant in
            [
                numbered("api.calls", Double(flush), tenant: tenant, series: UInt32(2 * n)),
                numbered("api.bytes", 10, tenant: tenant, series: UInt32(2 * n + 1)),
            ]
        }
        try sink.emit(
            FlushBatch(
                timestamp: rollupMidnight + EpochMillis(flush) * 10_000, interval: 10, percentiles: [], counters: counters))
    }
    #expect(try tableRows(sink).count < 10)
    func get(_ query: String) throws -> [String: Any] {
        var head = HTTPRequestHead(method: "GET", path: "/api/v1/rollups", minorVersion: 1, headers: [])
        head.query = query
        let answer = sink.answer(head)
        let response = answer.deferred?() ?? answer  // the query itself runs on the server's worker
        #expect(response.status == 200)
        return try #require(try JSONSerialization.jsonObject(with: Data(response.body.joined())) as? [String: Any])
    }
    var seen: [String] = []
    var cursor: String?
    for _ in 0..<10 {
        let page = try get("limit=3" + (cursor.map { "&cursor=\($0)" } ?? ""))
        let rows = try #require(page["rows"] as? [[String: Any]])
        seen += rows.map { "\($0["key"] ?? "") \($0["name"] ?? "") \($0["sum"] ?? "")" }
        cursor = page["next"] as? String
        if cursor == nil { break }
    }
    #expect(seen == tenants.flatMap { ["\($0) api.bytes 30", "\($0) api.calls 6"] })
    let one = try #require(try get("key=c&name=api.calls")["rows"] as? [[String: Any]])
    #expect(one.count == 1 && one[0]["sum"] as? Double == 6)
}

@Test func aVersionOneDatabaseIsMigratedWithItsRows() throws {
    let path = rollupDatabasePath()
    defer { removeDatabase(path) }
    let v1 = try SQLiteDatabase(path: path, flags: SQLiteDatabase.openReadWrite | SQLiteDatabase.openCreate)
    try v1.execute(
        """
        CREATE TABLE schema_version (version INTEGER NOT NULL);
        CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE rollups (key TEXT NOT NULL, day TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,
          sum REAL, count REAL, min REAL, max REAL, last REAL,
          PRIMARY KEY (key, day, name, type)) WITHOUT ROWID;
        CREATE INDEX rollups_day ON rollups (day);
        INSERT INTO schema_version (version) VALUES (1);
        INSERT INTO settings (name, value) VALUES ('by', 'tenant');
        INSERT INTO rollups (key, day, name, type, sum) VALUES ('acme', '2026-12-05', 'api.calls', 'counter', 7);
        """)
    var configuration = RollupConfiguration()
    configuration.path = path
    let sink = try RollupSink(configuration: configuration, metrics: nil, logger: quiet, now: rollupMidnight)
    try sink.emit(
        FlushBatch(
            timestamp: rollupMidnight, interval: 10, percentiles: [],
            counters: [rollupCounter("api.calls", 2, [("tenant", "acme")])]))
    #expect(
        try allRollupRows(sink) == [
            RollupRow(day: "2026-12-05", key: "acme", name: "api.calls", type: "counter", sum: 9)
        ])
    let versions = try v1.prepare("SELECT group_concat(version) FROM schema_version")
    try versions.step()
    #expect(versions.text(0) == "1,2")
}

@Test func savedWaitingRowsThatCannotBeReadStopTheStartNamingTheFile() throws {
    let path = rollupDatabasePath()
    defer { removeDatabase(path) }
    var configuration = RollupConfiguration()
    configuration.path = path
    _ = try RollupSink(configuration: configuration, metrics: nil, logger: quiet)
    let db = try SQLiteDatabase(path: path, flags: SQLiteDatabase.openReadWrite)
    try db.execute("INSERT INTO unfolded (id, format, rows) VALUES (1, 1, x'0102030405')")
    #expect(
        throws: ConfigError(
            "sinks.rollup.path \(path): the unfolded roll-up changes (table unfolded, format 1) cannot be read; restore the file from a backup"
        )
    ) { _ = try RollupSink(configuration: configuration, metrics: nil, logger: quiet) }
}

@Test func theSavedBlobReadsBackAsWritten() throws {
    var rows = UnfoldedRows()
    let g = rows.group(key: "t\u{e9}", name: "api.calls", type: .timer)
    let h = rows.group(key: "", name: "x", type: .gauge)
    rows.add(group: g, day: rows.day("2026-12-06"), RollupValues(sum: 1.5, count: 3, min: -0.0, max: .infinity))
    rows.add(group: h, day: rows.day("2026-12-05"), RollupValues(min: 2, max: 2, last: 2))
    let decoded = try #require(UnfoldedRows.decode(rows.encoded()))
    let all = { (r: UnfoldedRows) in r.rows(key: nil, nameGlob: nil, start: "0000-01-01", end: "9999-12-31", after: nil) }
    #expect(all(decoded) == all(rows))
    #expect(all(decoded).count == 2)
    // Truncated or extended, it is refused.
    let blob = rows.encoded()
    #expect(UnfoldedRows.decode(Array(blob.dropLast())) == nil)
    #expect(UnfoldedRows.decode(blob + [0]) == nil)
}

@Test func flushesOfOneDayAddUpWhenEveryRowIsFoldedEachTime() throws {
    let path = rollupDatabasePath()
    defer { removeDatabase(path) }
    var configuration = RollupConfiguration()
    configuration.path = path
    let sink = try RollupSink(configuration: configuration, metrics: nil, logger: quiet, now: rollupMidnight)
    for flush in 1...4 {
        let counters = (0..<3).map { numbered("api.calls", Double(flush), tenant: "t\($0)", series: UInt32($0)) }
        try sink.emit(
            FlushBatch(
                timestamp: rollupMidnight + EpochMillis(flush) * 10_000, interval: 10, percentiles: [], counters: counters))
        // Few rows: each flush folds them all, and nothing waits.
        #expect(try sink.store.unfolded().isEmpty)
    }
    #expect(try tableRows(sink).map(\.sum) == [10, 10, 10])
}

@Test func anInternerNumbersStringsByTheirBytes() {
    var interner = Interner()
    let nfc = "t\u{e9}"  // é, one scalar
    let nfd = "te\u{301}"  // e and a combining accent: equal as Swift strings, not as bytes
    #expect(nfc == nfd)
    #expect(interner.id(nfc) == 0)
    #expect(interner.id(nfd) == 1)
    #expect(interner.id("") == 2)
    let long = String(repeating: "tenant-", count: 20)  // not a small string
    #expect(interner.id(long) == 3)
    // Through many growths of the table, each string keeps its number.
    let numbers = (0..<10_000).map { interner.id("t\($0)") }
    #expect(numbers == (4..<10_004).map { Int32($0) })
    #expect(interner.id(nfc) == 0)
    #expect(interner.lookup(nfd) == 1)
    #expect(interner.lookup("") == 2)
    #expect(interner.lookup(long) == 3)
    #expect(interner.lookup("t9999") == 10_003)
    #expect(interner.lookup("t10000") == nil)
    #expect(Array("t42".utf8).withUnsafeBytes { interner.id($0) } == 46)
    #expect(Array(interner[1].utf8) == Array(nfd.utf8))
    #expect(interner.count == 10_004)
}

@Test func twoSpellingsOfOneTenantAreTwoRowsAsInTheTable() throws {
    let path = rollupDatabasePath()
    defer { removeDatabase(path) }
    var configuration = RollupConfiguration()
    configuration.path = path
    let sink = try RollupSink(configuration: configuration, metrics: nil, logger: quiet, now: rollupMidnight)
    let counters = [
        rollupCounter("calls", 1, [("tenant", "t\u{e9}")]), rollupCounter("calls", 2, [("tenant", "te\u{301}")]),
    ]
    try sink.emit(FlushBatch(timestamp: rollupMidnight + 10_000, interval: 10, percentiles: [], counters: counters))
    let waiting = try allRollupRows(sink)
    #expect(waiting.map { Array($0.key.utf8) } == [Array("te\u{301}".utf8), Array("t\u{e9}".utf8)])  // byte order
    #expect(waiting.map { $0.values.sum } == [2, 1])
    sink.shutdown()  // folds both into the table
    let reopened = try RollupSink(configuration: configuration, metrics: nil, logger: quiet, now: rollupMidnight)
    defer { reopened.shutdown() }
    #expect(try allRollupRows(reopened) == waiting)
}

@Test func aGroupIndexKeepsEachGroupsNumberThroughGrowth() {
    var index = GroupIndex()
    var made: [(Int32, Int32, Int32)] = []  // by number
    func number(_ key: Int32, _ name: Int32, _ type: Int32, next: Int32) -> (number: Int32, inserted: Bool) {
        index.number(key: key, name: name, type: type, next: next) { made[Int($0)] == (key, name, type) }
    }
    // Triples that differ in one number only, made in turn: each gets the number it was given.
    for key in Int32(0)..<200 {
        for name in Int32(-1)..<20 {
            for type in Int32(0)..<3 {
                let next = Int32(made.count)
                let found = number(key, name, type, next: next)
                #expect(found.inserted && found.number == next)
                made.append((key, name, type))
            }
        }
    }
    #expect(index.count == made.count)
    let again = made.map { number($0.0, $0.1, $0.2, next: -7) }
    #expect(again.map(\.number) == (0..<Int32(made.count)).map { $0 })
    #expect(again.allSatisfy { !$0.inserted })
    index.removeAll()
    #expect(index.count == 0)
    made = [(0, -1, 0)]
    #expect(number(0, -1, 0, next: 0) == (0, true))
}
