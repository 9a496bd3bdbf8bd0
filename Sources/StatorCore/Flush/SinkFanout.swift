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

        init(count: Int) { finished = Array(repeating: false, count: count) }
    }

    private let tally: ShutdownTally

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
        workers = sinks.enumerated().map { index, sink in
            let queue = BlockingQueue<FlushBatch>(capacity: queueCapacity)
            let errorLog = RateLimiter(period: 10)
            metrics.registerLabeled(SelfMetrics.sinkErrors(sink.name))
            let thread = WorkerThread(name: "sink-\(sink.name)") {
                while let batch = queue.take() {
                    do {
                        try sink.emit(batch)
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
        for worker in workers { worker.queue.close() }
        let giveUp = deadline + abandonAfter
        let finished = tally.lock.withLock {
            while tally.finished.contains(false) && WallClock.monotonicSeconds() < giveUp {
                tally.lock.wait(until: giveUp)
            }
            return tally.finished
        }
        for (worker, isFinished) in zip(workers, finished) {
            if isFinished {
                worker.thread.join()
            } else {
                worker.thread.detach()
                logger.error("sink did not finish before the shutdown deadline", metadata: [("sink.name", worker.sink.name)])
            }
        }
    }
}
