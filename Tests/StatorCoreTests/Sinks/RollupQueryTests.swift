import Foundation
import Testing
@testable import StatorCore

private let quiet = Logger(label: "test", level: .critical)

/// A sink whose table holds `tenants` rows of one day, all folded.
private func filledSink(_ path: String, tenants: Int, metrics: SelfMetrics? = nil) throws -> RollupSink {
    var configuration = RollupConfiguration()
    configuration.path = path
    let sink = try RollupSink(configuration: configuration, metrics: metrics, logger: quiet, now: rollupMidnight)
    sink.minimumFold = tenants  // one flush folds every row
    let counters = (0..<tenants).map { rollupCounter("api.calls", 1, [("tenant", "t\($0)")]) }
    try sink.emit(FlushBatch(timestamp: rollupMidnight + 10_000, interval: 10, percentiles: [], counters: counters))
    return sink
}

/// SQLite stops a statement past the deadline (its progress handler), whatever the scan.
@Test func aTableScanStopsAtTheDeadline() throws {
    let path = rollupDatabasePath()
    defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
    let sink = try filledSink(path, tenants: 5_000)
    let all = { (deadline: Double) throws(SQLiteError) -> [RollupRow] in
        try sink.store.reading(deadline: deadline) { () throws(SQLiteError) -> [RollupRow] in
            try sink.store.rows(
                key: nil, nameGlob: "*x*", start: "0000-01-01", end: "9999-12-31", after: nil, limit: 10_000)
        }
    }
    #expect(try all(.infinity).isEmpty)  // the whole table scanned: no name holds an x
    do {
        _ = try all(WallClock.monotonicSeconds())
        Issue.record("a scan past its deadline went on")
    } catch {
        #expect(error.code == SQLiteDatabase.interrupted)
    }
    // The connection is usable again at once.
    #expect(try sink.rows(key: "t7", nameGlob: "api.*", start: "0000-01-01", end: "9999-12-31", after: nil, limit: 10).count == 1)
}

/// A query past its budget answers 503, counted and with the reason, and the next one is served.
@Test func aQueryPastItsBudgetAnswers503AndIsCounted() throws {
    let path = rollupDatabasePath()
    defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
    let metrics = SelfMetrics(readers: 1)
    let sink = try filledSink(path, tenants: 100, metrics: metrics)
    var head = HTTPRequestHead(method: "GET", path: "/api/v1/rollups", minorVersion: 1, headers: [])
    head.query = "name=*x*"
    sink.queryBudget = 0
    let handed = sink.answer(head)
    let work = try #require(handed.deferred, "the query runs off the server's thread")
    let late = work()
    #expect(late.status == 503)
    #expect(
        String(decoding: late.body.joined(), as: UTF8.self)
            == "the query took longer than its 0 s budget; narrow it (key, name, start, end, limit)\n")
    #expect(metrics.labeledValue(#"stator_rollup_queries_failed_total{reason="timeout"}"#) == 1)
    #expect(sink.renderQueryFailures().contains("stator_rollup_queries_failed_total{reason=\"timeout\"} 1\n"))
    head.query = "start=2026-13-01"
    #expect(sink.answer(head).status == 400)
    #expect(metrics.labeledValue(#"stator_rollup_queries_failed_total{reason="bad_request"}"#) == 1)
    sink.queryBudget = 2
    head.query = "key=t7"
    let query = try #require(sink.answer(head).deferred)
    let served = query()
    #expect(served.status == 200)
    #expect(String(decoding: served.body.joined(), as: UTF8.self).contains(#""key":"t7","name":"api.calls""#))
}

/// Seventy clients looping slow queries held a connection each while waiting for the one
/// worker, until the server's connections were full and `/metrics` answered 503. Past
/// `maxQueriesWaiting` waiting queries, a new one answers 503 at once, counted.
@Test func queriesPastTheWaitingBoundAnswer503AtOnce() throws {
    let path = rollupDatabasePath()
    defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
    let metrics = SelfMetrics(readers: 1)
    let sink = try filledSink(path, tenants: 10, metrics: metrics)
    var head = HTTPRequestHead(method: "GET", path: "/api/v1/rollups", minorVersion: 1, headers: [])
    head.query = "key=t3"
    let waiting = try (0..<RollupSink.maxQueriesWaiting).map { _ in try #require(sink.answer(head).deferred) }
    let refused = sink.answer(head)
    #expect(refused.deferred == nil)
    #expect(refused.status == 503)
    #expect(refused.headers.contains { $0.0 == "Retry-After" && $0.1 == "1" })
    #expect(metrics.labeledValue(#"stator_rollup_queries_failed_total{reason="busy"}"#) == 1)
    // Once one is answered, the next query waits its turn again.
    #expect(waiting[0]().status == 200)
    let next = try #require(sink.answer(head).deferred)
    #expect(next().status == 200)
    for work in waiting.dropFirst() { #expect(work().status == 200) }
}
