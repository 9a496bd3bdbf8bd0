import Synchronization
import Glibc
import Testing
@testable import StatorCore

private func batch(_ ts: EpochMillis) -> FlushBatch {
    FlushBatch(
        timestamp: ts, interval: 10, percentiles: [],
        counters: [CounterSummary(key: MetricKey(type: .counter, name: "c"), value: 1, rate: 0.1)])
}

private func waitUntil(_ condition: () -> Bool) -> Bool {
    for _ in 0..<2000 {
        if condition() { return true }
        usleep(1000)
    }
    return condition()
}

@Test func aFailingSinkIsCountedAndTheOthersStillGetEveryBatch() {
    let metrics = SelfMetrics(readers: 1)
    let recording = RecordingSink()
    let fanout = SinkFanout(sinks: [FailingSink(), recording], metrics: metrics, logger: Logger(label: "test", level: .critical))
    for n in 1...3 { fanout.publish(batch(EpochMillis(n) * 10_000)) }
    fanout.shutdown(deadline: WallClock.monotonicSeconds() + 5)
    #expect(recording.batches.withLock { $0.map(\.timestamp) } == [10_000, 20_000, 30_000])
    #expect(metrics.labeledValue(SelfMetrics.sinkErrors("failing")) == 3)
    #expect(metrics.labeledValue(SelfMetrics.sinkErrors("recording")) == 0)
}

@Test func aStuckSinkDelaysNeitherPublishingNorTheOtherSinks() {
    let metrics = SelfMetrics(readers: 1)
    let stuck = StuckSink()
    let recording = RecordingSink()
    let fanout = SinkFanout(
        sinks: [stuck, recording], queueCapacity: 2, metrics: metrics,
        logger: Logger(label: "test", level: .critical))
    let started = WallClock.monotonicSeconds()
    fanout.publish(batch(10_000))
    #expect(waitUntil { stuck.entered.load(ordering: .relaxed) == 1 && recording.count == 1 })
    for n in 2...6 {
        fanout.publish(batch(EpochMillis(n) * 10_000))
        #expect(waitUntil { recording.count == n })  // the healthy sink keeps up
    }
    #expect(WallClock.monotonicSeconds() - started < 2)
    // The stuck sink holds one batch, queues two, and the other three are dropped and counted.
    #expect(waitUntil { metrics.labeledValue(SelfMetrics.sinkErrors("stuck")) == 3 })
    // Shutdown gives up on the stuck sink at the deadline instead of hanging.
    let shutdownStarted = WallClock.monotonicSeconds()
    fanout.shutdown(deadline: WallClock.monotonicSeconds() + 0.3)
    #expect(WallClock.monotonicSeconds() - shutdownStarted < 2)
    stuck.released.store(true, ordering: .relaxed)
}

@Test func flusherPublishesOneBatchPerFlushWithTheBoundaryTimestamp() throws {
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 2))
    let recording = RecordingSink()
    let flusher = Flusher(
        table: table, configuration: FlushConfiguration(intervalMillis: 1000), startMillis: 500,
        metrics: SelfMetrics(readers: 1)
    ) { try? recording.emit($0) }
    ingest(table, ["a:1|c"])
    flusher.flush(at: 1000)
    flusher.flush(at: 2000)
    let batches = recording.batches.withLock { $0 }
    #expect(batches.map(\.timestamp) == [1000, 2000])
    #expect(batches.map(\.interval) == [0.5, 1])
    #expect(batches.map(\.counters.count) == [1, 0])
}

@Test(
    arguments: [
        (0, 10_000, 10_000), (9_999, 10_000, 10_000), (10_000, 10_000, 20_000), (1_795_287_607_123, 10_000, 1_795_287_610_000),
    ]
        as [(EpochMillis, Int64, EpochMillis)])
func nextBoundaryIsTheNextWallClockMultiple(_ now: EpochMillis, _ interval: Int64, _ expected: EpochMillis) {
    #expect(Flusher.nextBoundary(after: now, intervalMillis: interval) == expected)
}

/// The system's clocks, saying when the flusher begins to wait (an explicit signal instead of
/// a sleep long enough for the thread to get there).
private final class WaitSignallingClock: FlushClock {
    let waiting = Atomic<Bool>(false)
    private let system = SystemFlushClock()
    func wallMillis() -> EpochMillis { system.wallMillis() }
    func monotonicMillis() -> Int64 { system.monotonicMillis() }
    func wait(untilMonotonic deadline: Int64, on lock: ConditionLock) {
        waiting.store(true, ordering: .releasing)
        system.wait(untilMonotonic: deadline, on: lock)
    }
}

@Test func flusherLoopStopsPromptly() {
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 1))
    let clock = WaitSignallingClock()
    let flusher = Flusher(
        table: table, configuration: FlushConfiguration(intervalMillis: 3_600_000), startMillis: 0, clock: clock,
        metrics: SelfMetrics(readers: 1)
    ) { _ in }
    let thread = WorkerThread(name: "flush-test") { flusher.runLoop() }
    #expect(waitUntil { clock.waiting.load(ordering: .acquiring) })  // asleep until the next hour's boundary
    let started = WallClock.monotonicSeconds()
    flusher.stop()
    thread.join()
    #expect(WallClock.monotonicSeconds() - started < 1)
}
