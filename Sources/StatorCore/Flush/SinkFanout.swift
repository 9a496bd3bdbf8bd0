/// Hands each batch to every sink, each on its own thread behind a bounded
/// queue, so a slow or failing sink never delays the flush or the others.
public final class SinkFanout: Sendable {
    private struct Worker: Sendable {
        let sink: any Sink
        let queue: BlockingQueue<FlushBatch>
        let thread: WorkerThread
    }

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
        workers = sinks.map { sink in
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

    /// Delivers what is queued, then shuts every sink down.
    /// - Parameter deadline: monotonic seconds; a sink still busy then is abandoned (logged).
    public func shutdown(deadline: Double) {
        for worker in workers { worker.queue.close() }
        for worker in workers {
            if worker.queue.waitUntilDrained(deadline: deadline) {
                worker.thread.join()
                worker.sink.shutdown()
            } else {
                worker.thread.detach()
                logger.error("sink did not finish before the shutdown deadline", metadata: [("sink.name", worker.sink.name)])
            }
        }
    }
}
