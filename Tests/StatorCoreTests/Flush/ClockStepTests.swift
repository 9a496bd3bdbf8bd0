import Foundation
import Glibc
import Synchronization
import Testing

@testable import StatorCore

/// Wall and monotonic clocks a test moves by hand. `wait` does not wait: it moves both clocks
/// to the deadline at once, applying the scripted wall-clock steps it passes on the way.
final class ManualFlushClock: FlushClock {
    private struct State {
        var wall: EpochMillis
        var monotonic: Int64
        /// (monotonic time, wall step) still to come, in time order.
        var steps: [(at: Int64, by: Int64)]
    }
    private let state: Mutex<State>

    init(wall: EpochMillis, monotonic: Int64, steps: [(at: Int64, by: Int64)] = []) {
        state = Mutex(State(wall: wall, monotonic: monotonic, steps: steps))
    }

    func wallMillis() -> EpochMillis { state.withLock { $0.wall } }
    func monotonicMillis() -> Int64 { state.withLock { $0.monotonic } }

    func wait(untilMonotonic deadline: Int64, on lock: ConditionLock) {
        state.withLock { s in
            while let step = s.steps.first, step.at <= deadline {
                s.wall += step.at - s.monotonic + step.by
                s.monotonic = step.at
                s.steps.removeFirst()
            }
            s.wall += max(0, deadline - s.monotonic)
            s.monotonic = max(s.monotonic, deadline)
        }
    }
}

/// A log output into a temporary file, read back as text.
private final class CapturedLog: Sendable {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("log-\(UUID().uuidString)").path
    let fd: Int32
    init() { fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) }
    deinit {
        close(fd)
        unlink(path)
    }
    var text: String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
}

@Test func wallClockStepsNeitherStopFlushingNorBendIntervals() throws {
    // Start 3 s after a boundary B. The wall clock steps back an hour at monotonic 25 s, then
    // forward two hours at 45 s. Flushes must go on every 10 s of real time; the flush that
    // meets a step is stamped with the wall time then, and the next is on a boundary again.
    let hour: Int64 = 3_600_000
    let b: EpochMillis = 1_764_000_000_000
    let clock = ManualFlushClock(wall: b + 3_000, monotonic: 5_000, steps: [(25_000, -hour), (45_000, 2 * hour)])
    let log = CapturedLog()
    let batches = Mutex<[(ts: EpochMillis, interval: Double)]>([])
    let flusherBox = Mutex<Flusher?>(nil)
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 1), seed: 1)
    let flusher = Flusher(
        table: table, configuration: FlushConfiguration(intervalMillis: 10_000), startMillis: 5_000, clock: clock,
        metrics: SelfMetrics(readers: 1), logger: Logger(label: "test", output: Logger.Output(fd: log.fd))
    ) { batch in
        let count = batches.withLock { b in
            b.append((batch.timestamp, batch.interval))
            return b.count
        }
        if count == 6 { flusherBox.withLock { $0?.stop() } }
    }
    flusherBox.withLock { $0 = flusher }
    flusher.runLoop()  // returns once the sixth batch stops it
    let seen = batches.withLock { $0 }
    #expect(seen.map(\.ts) == [b + 10_000, b + 20_000, b + 30_000 - hour, b + 40_000 - hour, b + 50_000 + hour, b + 60_000 + hour])
    #expect(seen.map(\.interval) == [7, 10, 10, 10, 10, 10])
    #expect(clock.monotonicMillis() == 62_000)
    let warnings = log.text.split(separator: "\n").filter { $0.contains("the wall clock stepped") }
    #expect(warnings.count == 2)
    #expect(warnings.first?.contains(#""step_ms":"-3600000""#) == true)
}

@Test func aForwardStepOfTheWallClockExpiresNoLiveSeries() throws {
    // series_ttl 5 min runs on the monotonic clock: a wall clock jumping a day ahead between
    // two flushes 10 s apart must not forget the gauge that got data in the first.
    let table = ShardedTable(configuration: AggregationConfiguration(shards: 1), seed: 1)
    let flusher = Flusher(
        table: table, configuration: FlushConfiguration(intervalMillis: 10_000, seriesTTLMillis: 300_000),
        startMillis: 0, metrics: SelfMetrics(readers: 1)
    ) { _ in }
    ingest(table, ["g:5|g"])
    let day: Int64 = 86_400_000
    #expect(flusher.flush(at: 1_000_000_010_000, monotonic: 10_000).gauges.count == 1)
    let after = flusher.flush(at: 1_000_000_020_000 + day, monotonic: 20_000)
    #expect(after.expired.isEmpty)
    #expect(after.gauges.first?.value == 5)
    #expect(after.interval == 10)
    // Real time passing does expire it.
    #expect(flusher.flush(at: 1_000_000_320_000 + day, monotonic: 320_000).expired.map(\.name) == ["g"])
}
