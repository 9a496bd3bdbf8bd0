import Glibc
import Synchronization
@testable import StatorCore

/// Records every batch it receives (like swift-metrics' TestMetrics).
final class RecordingSink: Sink {
    let name: String
    let batches = PthreadLock<[FlushBatch]>([])
    init(name: String = "recording") { self.name = name }
    func emit(_ batch: FlushBatch) throws { batches.withLock { $0.append(batch) } }
    var count: Int { batches.withLock { $0.count } }
}

/// Fails every emit.
final class FailingSink: Sink {
    struct Failure: Error {}
    let name = "failing"
    func emit(_ batch: FlushBatch) throws { throw Failure() }
}

/// Blocks in emit until released.
final class StuckSink: Sink {
    let name = "stuck"
    let released = Atomic<Bool>(false)
    let entered = Atomic<Int>(0)
    func emit(_ batch: FlushBatch) throws {
        entered.wrappingAdd(1, ordering: .relaxed)
        while !released.load(ordering: .relaxed) { usleep(1000) }
    }
}
