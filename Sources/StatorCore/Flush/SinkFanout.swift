/// Hands each batch to every sink, each on its own thread behind a bounded
/// queue, so a slow or failing sink never delays the flush or the others.
/// At shutdown every sink drains and shuts down on its own thread at the same time,
/// so dead targets cost one grace period in all, not one each.
public final class SinkFanout: Sendable {
    private struct Worker: Sendable {
        let sink: any Sink
        let queue: BlockingQueue<FlushBatch>
        let thread: WorkerThread
    }

    /// Which sink threads have finished their shutdown, and by when they should.
    private final class ShutdownTally: @unchecked Sendable {
        // SAFETY: `deadline` and `finished` are only touched with `lock` held.
        let lock = ConditionLock()
        var deadline = Double.infinity
        var finished: [Bool]
        /// The series of the batch each sink is emitting now (0: none).
        var emitting: [Int]

        init(count: Int) {
            finished = Array(repeating: false, count: count)
            emitting = Array(repeating: 0, count: count)
        }
    }

    private let tally: ShutdownTally
    /// Per sink: when it last emitted a batch without error (wall-clock ms; 0: never).
    private let lastSuccess: [AtomicCounter]

    private let workers: [Worker]
    private let metrics: SelfMetrics
    private let logger: Logger
    private let overflowLog = RateLimiter(period: 10)

    /// Starts one delivery thread per sink.
    /// - Parameters:
    ///   - sinks: the enabled sinks.
    ///   - queueCapacity: batches a sink may fall behind before new ones are dropped (and counted).
    public init(sinks: [any Sink], queueCapacity: Int = 16, metrics: SelfMetrics, logger: Logger) {
        self.metrics = metrics
        self.logger = logger
        let tally = ShutdownTally(count: sinks.count)
        self.tally = tally
        let lastSuccess = sinks.map { _ in AtomicCounter() }
        self.lastSuccess = lastSuccess
        workers = sinks.enumerated().map { index, sink in
            let queue = BlockingQueue<FlushBatch>(capacity: queueCapacity)
            let errorLog = RateLimiter(period: 10)
            metrics.registerLabeled(SelfMetrics.sinkErrors(sink.name))
            let thread = WorkerThread(name: "sink-\(sink.name)") {
                while let batch = queue.take() {
                    tally.lock.withLock { tally.emitting[index] = batch.seriesCount }
                    defer { tally.lock.withLock { tally.emitting[index] = 0 } }
                    do {
                        try sink.emit(batch)
                        lastSuccess[index].store(UInt64(max(0, WallClock.nowMillis())))
                    } catch {
                        metrics.addLabeled(SelfMetrics.sinkErrors(sink.name))
                        if let suppressed = errorLog.admit() {
                            logger.error(
                                "sink failed to emit a batch",
                                metadata: [
                                    ("sink.name", sink.name), ("error", "\(error)"),
                                    ("suppressed", "\(suppressed)"),
                                ])
                        }
                    }
                }
                // The queue closes only after the deadline is set (`shutdown(deadline:)`).
                sink.shutdown(until: tally.lock.withLock { tally.deadline })
                tally.lock.withLock {
                    tally.finished[index] = true
                    tally.lock.broadcast()
                }
            }
            return Worker(sink: sink, queue: queue, thread: thread)
        }
    }

    /// The sinks, in delivery order.
    public var sinks: [any Sink] { workers.map(\.sink) }

    /// Queues `batch` for every sink; a sink whose queue is full loses it (counted as an error).
    public func publish(_ batch: FlushBatch) {
        for worker in workers where !worker.queue.offer(batch) {
            metrics.addLabeled(SelfMetrics.sinkErrors(worker.sink.name))
            if let suppressed = overflowLog.admit() {
                logger.error(
                    "sink is too slow: its queue is full, batch dropped",
                    metadata: [("sink.name", worker.sink.name), ("suppressed", "\(suppressed)")])
            }
        }
    }

    /// One sink's health, for the page: when it last emitted a batch without error (0: never),
    /// the batches waiting for it, and its errors since start.
    public struct Health: Sendable {
        public let name: String
        public let lastSuccess: EpochMillis
        public let queued: Int
        public let errors: UInt64
    }

    /// Every sink's health, in delivery order.
    public func health() -> [Health] {
        workers.enumerated().map { index, worker in
            Health(
                name: worker.sink.name, lastSuccess: EpochMillis(lastSuccess[index].value), queued: worker.queue.count,
                errors: metrics.labeledValue(SelfMetrics.sinkErrors(worker.sink.name)))
        }
    }

    /// Asks every sink to reopen its files (SIGHUP).
    public func reopen() {
        for worker in workers { worker.sink.reopen() }
    }

    /// Delivers what is queued, then shuts every sink down, all at once.
    /// - Parameters:
    ///   - deadline: monotonic seconds by which each sink is to have delivered or spooled
    ///     what it holds (`Sink.shutdown(until:)`).
    ///   - abandonAfter: how much longer to wait for a sink before leaving its thread
    ///     behind (logged), so that one stuck sink cannot keep the agent from exiting.
    public func shutdown(deadline: Double, abandonAfter: Double = 0.5) {
        tally.lock.withLock { tally.deadline = deadline }
        for worker in workers {
            worker.sink.prepareForShutdown(until: deadline)
            worker.queue.close()
        }
        let giveUp = deadline + abandonAfter
        let (finished, emitting) = tally.lock.withLock {
            while tally.finished.contains(false) && WallClock.monotonicSeconds() < giveUp {
                tally.lock.wait(until: giveUp)
            }
            return (tally.finished, tally.emitting)
        }
        for (index, worker) in workers.enumerated() {
            if finished[index] {
                worker.thread.join()
                continue
            }
            // The log line is the count (the process exits next): the batch it was emitting and
            // those still queued, besides whatever the sink itself held (it could not say).
            worker.thread.detach()
            let waiting = worker.queue.waiting
            let series = emitting[index] + waiting.reduce(0) { $0 + $1.seriesCount }
            logger.error(
                "sink did not finish before the shutdown deadline: what it held is lost",
                metadata: [
                    ("sink.name", worker.sink.name), ("emitting", emitting[index] > 0 ? "yes" : "no"),
                    ("flushes_queued", "\(waiting.count)"), ("series_not_delivered", "\(series)"),
                ])
        }
    }
}
