import Foundation
import Testing
@testable import StatorCore

private func request(_ n: Int, size: Int = 10) -> PushRequest {
    PushRequest(format: .json, body: Array(repeating: UInt8(truncatingIfNeeded: n), count: size), series: n)
}

private let quiet = Logger(label: "test", level: .critical)

@Test func spooledRequestsSurviveAReopenInOrder() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("spool-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: dir) }
    do {
        let queue = try PushQueue(spoolDirectory: dir, maxBytes: 1 << 20, logger: quiet)
        for n in 1...3 { #expect(queue.append(request(n)) == .init()) }
        let head = try #require(queue.waitForHead(until: 0))
        queue.removeHead(head.id)  // the first was delivered
    }
    let reopened = try PushQueue(spoolDirectory: dir, maxBytes: 1 << 20, logger: quiet)
    #expect(reopened.count == 2)
    #expect(reopened.queuedBytes == 20)
    var seen: [Int] = []
    while let head = reopened.waitForHead(until: 0) {
        seen.append(head.request.series)
        reopened.removeHead(head.id)
    }
    #expect(seen == [2, 3])
    // New requests continue after the old sequence numbers.
    #expect(reopened.append(request(4)) == .init())
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir).count == 1)
}

@Test func theQueueDropsOldestFirstPastItsBound() throws {
    let queue = try PushQueue(spoolDirectory: nil, maxBytes: 25, logger: quiet)
    #expect(queue.append(request(1)) == .init())
    #expect(queue.append(request(2)) == .init())
    #expect(queue.append(request(3)) == .init(queueFull: 1))  // the oldest (1 series) made room
    #expect(queue.waitForHead(until: 0)?.request.series == 2)
}

@Test(arguments: [nil, "spool"])
func aRequestLargerThanTheWholeBoundIsDroppedAloneAndNeverEmptiesTheQueue(_ spool: String?) throws {
    // max_spool_bytes 1024, three small queued flushes, then one large one: all four were
    // dropped, because the eviction ran before the size check.
    let dir = temporarySpool()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let queue = try PushQueue(spoolDirectory: spool.map { _ in dir }, maxBytes: 1024, logger: quiet)
    for n in 1...3 { #expect(queue.append(request(n, size: 100)) == .init()) }
    #expect(queue.append(request(9, size: 2000)) == .init(tooLarge: 9))
    #expect(queue.count == 3)
    #expect(queue.queuedBytes == 300)
    #expect(queue.waitForHead(until: 0)?.request == request(1, size: 100))
    if spool != nil { #expect(try FileManager.default.contentsOfDirectory(atPath: dir).count == 3) }
}

@Test func theRequestBeingSentIsNeverEvicted() throws {
    // The sender holds the head; a flush that needs room drops the next oldest instead. The
    // head used to be dropped (counted) and then, delivered, counted as sent too.
    let queue = try PushQueue(spoolDirectory: nil, maxBytes: 25, logger: quiet)
    #expect(queue.append(request(1)) == .init())
    #expect(queue.append(request(2)) == .init())
    let sending = try #require(queue.waitForHead(until: 0))
    #expect(sending.request.series == 1)
    #expect(queue.append(request(3)) == .init(queueFull: 2))
    #expect(queue.count == 2)
    queue.removeHead(sending.id)  // delivered
    #expect(queue.count == 1)
    #expect(queue.queuedBytes == 10)
    #expect(queue.waitForHead(until: 0)?.request.series == 3)
}

@Test func theQueueExceedsItsBoundByTheRequestInFlightOnlyUntilItsAttemptFails() throws {
    let queue = try PushQueue(spoolDirectory: nil, maxBytes: 25, logger: quiet)
    #expect(queue.append(request(1, size: 20)) == .init())
    let sending = try #require(queue.waitForHead(until: 0))
    // Room for the new request would take the one in flight: it waits beside it.
    #expect(queue.append(request(2, size: 20)) == .init())
    #expect(queue.queuedBytes == 40)
    // The attempt failed: the oldest (the one that was in flight) now makes room.
    #expect(queue.release(sending.id) == 1)
    #expect(queue.queuedBytes == 20)
    #expect(queue.waitForHead(until: 0)?.request == request(2, size: 20))
}

private func temporarySpool() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("spool-\(UUID().uuidString)").path
}

@Test func spooledBodiesStayOnDiskAndComeBackWhenSent() throws {
    let dir = temporarySpool()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let queue = try PushQueue(spoolDirectory: dir, maxBytes: 1 << 20, logger: quiet)
    for n in 1...5 { #expect(queue.append(request(n, size: 1000)) == .init()) }
    #expect(queue.queuedBytes == 5000)
    #expect(queue.memoryBytes == 0)  // every body is in the spool only
    #expect(queue.unspooledSeries == 0)
    let head = try #require(queue.waitForHead(until: 0))
    #expect(head.request == request(1, size: 1000))
    #expect(queue.memoryBytes == 1000)  // the head, read back while it is being sent
    #expect(queue.waitForHead(until: 0)?.request == request(1, size: 1000))
    queue.removeHead(head.id)
    #expect(queue.memoryBytes == 0)
    #expect(queue.waitForHead(until: 0)?.request.series == 2)
}

@Test func aSpoolOverTheBoundAtStartIsTrimmedOldestFirstAndCounted() throws {
    let dir = temporarySpool()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    do {
        let queue = try PushQueue(spoolDirectory: dir, maxBytes: 1 << 20, logger: quiet)
        for n in 1...5 { #expect(queue.append(request(n, size: 100)) == .init()) }
    }
    // The next run has a smaller bound: the three oldest (1 + 2 + 3 series) go, on disk too.
    let reopened = try PushQueue(spoolDirectory: dir, maxBytes: 250, logger: quiet)
    #expect(reopened.trimmedAtStart == 6)
    #expect(reopened.count == 2)
    #expect(reopened.queuedBytes == 200)
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir).count == 2)
    #expect(reopened.waitForHead(until: 0)?.request == request(4, size: 100))
    #expect(reopened.memoryBytes == 100)
}

@Test func whatTheSpoolCannotHoldIsKeptInMemoryAndCountedAsUnspooled() throws {
    let dir = temporarySpool()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let queue = try PushQueue(spoolDirectory: dir, maxBytes: 1 << 20, logger: quiet)
    #expect(queue.append(request(2)) == .init())
    // The directory is replaced by a file: every spool write fails from now on (as on a full
    // disk, which root cannot be kept from writing otherwise).
    try FileManager.default.removeItem(atPath: dir)
    #expect(FileManager.default.createFile(atPath: dir, contents: Data()))
    #expect(queue.append(request(3)) == .init())
    #expect(queue.append(request(4)) == .init())
    #expect(queue.count == 3)
    #expect(queue.unspooledSeries == 7)
    #expect(queue.memoryBytes == 20)
}

@Test func aPushSinkCountsUnspooledSeriesLostAtShutdown() throws {
    let dir = temporarySpool()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var configuration = HTTPPushConfiguration()
    configuration.url = "http://127.0.0.1:1/"  // nothing listens: every attempt fails and is retried
    configuration.spoolDirectory = dir
    configuration.shutdownGraceMillis = 100
    let metrics = PushMetrics()
    let sink = try HTTPPushSink(configuration: configuration, state: nil, metrics: metrics, logger: quiet)
    try FileManager.default.removeItem(atPath: dir)
    #expect(FileManager.default.createFile(atPath: dir, contents: Data()))
    let counters = (1...3).map { CounterSummary(key: MetricKey(type: .counter, name: "c\($0)"), value: 1, rate: 0.1) }
    try sink.emit(FlushBatch(timestamp: 10_000, interval: 10, percentiles: [], counters: counters))
    sink.shutdown()
    #expect(metrics.droppedSeries(reason: "shutdown") == 3)
    #expect(
        PushMetrics.render([metrics]).contains("stator_push_dropped_series_total{reason=\"shutdown\",sink=\"http_push\"} 3\n"))
}

@Test func spooledRequestsForAnotherTargetAreRemovedAtStartAndCounted() throws {
    let dir = temporarySpool()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    do {
        let queue = try PushQueue(spoolDirectory: dir, maxBytes: 1 << 20, target: "http://a/old", logger: quiet)
        #expect(queue.append(request(2)) == .init())
        #expect(queue.append(PushRequest(format: .influx, body: Array("x value=1".utf8), series: 3)) == .init())
    }
    // The same target: both kept, each in the format it was encoded in.
    do {
        let same = try PushQueue(spoolDirectory: dir, maxBytes: 1 << 20, target: "http://a/old", logger: quiet)
        #expect(same.retargetedAtStart == 0)
        #expect(same.count == 2)
        let head = try #require(same.waitForHead(until: 0))
        same.removeHead(head.id)
        #expect(same.waitForHead(until: 0)?.request.format == .influx)
    }
    // Another target: removed, on disk too, and counted.
    let moved = try PushQueue(spoolDirectory: dir, maxBytes: 1 << 20, target: "http://a/new", logger: quiet)
    #expect(moved.retargetedAtStart == 3)
    #expect(moved.count == 0)
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
}

@Test func aSpoolFileFromBeforeTargetsWereRecordedIsKept() throws {
    let dir = temporarySpool()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let file = "\(dir)/00000000000000000007.req"
    #expect(FileManager.default.createFile(atPath: file, contents: Data("STATOR-PUSH 1 json 4\n[]".utf8)))
    let queue = try PushQueue(spoolDirectory: dir, maxBytes: 1 << 20, target: "http://a/", logger: quiet)
    #expect(queue.retargetedAtStart == 0)
    #expect(queue.waitForHead(until: 0)?.request == PushRequest(format: .json, body: Array("[]".utf8), series: 4))
}

@Test func aPushCountsTheSpooledSeriesOfAnotherURLAsTargetChanged() throws {
    let dir = temporarySpool()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    do {
        let old = try PushQueue(spoolDirectory: dir, maxBytes: 1 << 20, target: "http://127.0.0.1:1/old", logger: quiet)
        #expect(old.append(request(5)) == .init())
    }
    var configuration = HTTPPushConfiguration()
    // The password is not part of the target: rotating it keeps the spool.
    configuration.url = "http://user:secret@127.0.0.1:1/new"
    configuration.spoolDirectory = dir
    configuration.shutdownGraceMillis = 100
    let metrics = PushMetrics()
    let sink = try HTTPPushSink(configuration: configuration, state: nil, metrics: metrics, logger: quiet)
    sink.shutdown()
    #expect(metrics.droppedSeries(reason: "target_changed") == 5)
    #expect(
        PushMetrics.render([metrics]).contains(
            "stator_push_dropped_series_total{reason=\"target_changed\",sink=\"http_push\"} 5\n"))
}
