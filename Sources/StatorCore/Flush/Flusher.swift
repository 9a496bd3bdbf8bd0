import CStatorSys
import Synchronization

/// Configuration of the flush stage.
public struct FlushConfiguration: Sendable {
    /// Milliseconds between flushes (`flush_interval`).
    public var intervalMillis: Int64 = 10_000
    /// Milliseconds without data before a series is forgotten (`series_ttl`); 0 = never.
    public var seriesTTLMillis: Int64 = 300_000
    /// Percentiles for timers, histograms and distributions.
    public var percentiles: [Percentile] = [Percentile(90), Percentile(95), Percentile(99)]

    public init(
        intervalMillis: Int64 = 10_000, seriesTTLMillis: Int64 = 300_000,
        percentiles: [Percentile] = [Percentile(90), Percentile(95), Percentile(99)]
    ) {
        self.intervalMillis = intervalMillis
        self.seriesTTLMillis = seriesTTLMillis
        self.percentiles = percentiles
    }
}

/// Closes intervals: at each wall-clock multiple of `flush_interval` it swaps
/// out every shard, builds one immutable `FlushBatch`, and publishes it.
public final class Flusher: Sendable {
    private struct State {
        var generation: UInt32 = 1
        var previousFlush: EpochMillis
        /// Current value of every live gauge (gauges repeat until they expire).
        var gauges: [MetricKey: Double] = [:]
        /// (generation, end time) of recent intervals, oldest first, for `series_ttl`.
        var generationEnds: [(UInt32, EpochMillis)] = []
        /// Many series expired recently: hand the freed memory back to the kernel at this many
        /// more flushes, once the sinks have let go of them too (the Prometheus state is
        /// compacted on its own thread, after the flush that expired them).
        var trimsPending = 0
    }

    /// Expiring at least this many series in one flush returns freed heap to the kernel (`malloc_trim`).
    static let trimAfterExpiring = 10_000

    private let table: ShardedTable
    private let configuration: FlushConfiguration
    private let publish: @Sendable (FlushBatch) -> Void
    private let metrics: SelfMetrics
    private let logger: Logger?
    private let state: PthreadLock<State>
    private let wake = ConditionLock()
    private let stopping = Atomic<Bool>(false)

    /// - Parameters:
    ///   - table: the aggregation stage to drain.
    ///   - startMillis: when ingestion started (the first batch's interval counts from it).
    ///   - publish: receives each batch (normally `SinkFanout.publish`).
    public init(
        table: ShardedTable, configuration: FlushConfiguration, startMillis: EpochMillis,
        metrics: SelfMetrics, logger: Logger? = nil, publish: @escaping @Sendable (FlushBatch) -> Void
    ) {
        self.logger = logger
        self.table = table
        self.configuration = configuration
        self.publish = publish
        self.metrics = metrics
        state = PthreadLock(State(previousFlush: startMillis))
    }

    /// The next wall-clock multiple of the interval strictly after `now`.
    public static func nextBoundary(after now: EpochMillis, intervalMillis: Int64) -> EpochMillis {
        (now.floorDiv(intervalMillis) + 1) * intervalMillis
    }

    /// Flushes at every boundary until `stop()`; run it on a dedicated thread.
    public func runLoop() {
        var boundary = Flusher.nextBoundary(after: WallClock.nowMillis(), intervalMillis: configuration.intervalMillis)
        while !stopping.load(ordering: .acquiring) {
            let now = WallClock.nowMillis()
            if now < boundary {
                let deadline = WallClock.monotonicSeconds() + Double(boundary - now) / 1000
                wake.withLock {
                    if !stopping.load(ordering: .acquiring) { wake.wait(until: deadline) }
                }
                continue
            }
            flush(at: boundary)
            // If a flush ran long (or the clock jumped), skip to the next boundary still ahead.
            boundary = Flusher.nextBoundary(
                after: max(boundary, WallClock.nowMillis()),
                intervalMillis: configuration.intervalMillis)
        }
    }

    /// Makes `runLoop()` return promptly.
    public func stop() {
        stopping.store(true, ordering: .releasing)
        wake.withLock { wake.broadcast() }
    }

    /// Closes the interval ending at `timestamp` and publishes its batch.
    /// - Returns: the batch (also handed to `publish`).
    @discardableResult
    public func flush(at timestamp: EpochMillis) -> FlushBatch {
        let started = WallClock.monotonicSeconds()
        let batch = state.withLock { s -> FlushBatch in
            let interval = Double(timestamp - s.previousFlush) / 1000
            s.previousFlush = timestamp
            let closing = s.generation
            s.generation &+= 1
            let parts = table.drainAll(nextGeneration: s.generation)
            if s.trimsPending > 0 {
                // glibc keeps freed small blocks in its arenas; after a mass expiry (a
                // cardinality bomb passing) that would keep the peak resident for good.
                _ = CStatorSys_release_free_memory()
                s.trimsPending -= 1
            }
            s.generationEnds.append((closing, timestamp))

            var counters: [CounterSummary] = []
            var sets: [SetSummary] = []
            var samples: [SampleSummary] = []
            for part in parts {
                for c in part.counters {
                    counters.append(CounterSummary(key: c.key, value: c.sum, rate: interval > 0 ? c.sum / interval : 0))
                }
                for g in part.gauges { s.gauges[g.key] = g.resolve(previous: s.gauges[g.key] ?? 0).withoutNaN }
                for set in part.sets { sets.append(SetSummary(key: set.key, value: Double(set.members.count))) }
                for t in part.samples {
                    samples.append(SampleStatistics.summarize(t, percentiles: configuration.percentiles, interval: interval))
                }
            }

            // series_ttl: forget series whose last data is older than the TTL.
            var expired: [MetricKey] = []
            if configuration.seriesTTLMillis > 0 {
                var cutoff: UInt32 = 0
                while let first = s.generationEnds.first, first.1 + configuration.seriesTTLMillis <= timestamp {
                    cutoff = first.0
                    s.generationEnds.removeFirst()
                }
                if cutoff > 0 {
                    expired = table.expire(cutoff: cutoff)
                    if expired.count >= Self.trimAfterExpiring { s.trimsPending = 3 }
                    for key in expired where key.type == .gauge { s.gauges[key] = nil }
                    if s.gauges.capacity >= 1024, s.gauges.count * 4 < s.gauges.capacity {
                        s.gauges = Dictionary(uniqueKeysWithValues: s.gauges.map { ($0.key, $0.value) })
                    }
                }
            } else {
                s.generationEnds.removeAll()
            }
            let gauges = s.gauges.map { GaugeSummary(key: $0.key, value: $0.value) }
            return FlushBatch(
                sequence: UInt64(closing), timestamp: timestamp, interval: interval, percentiles: configuration.percentiles,
                counters: counters, gauges: gauges, sets: sets, samples: samples, expired: expired)
        }
        publish(batch)
        let duration = WallClock.monotonicSeconds() - started
        metrics.flushes.add(1)
        metrics.lastFlushDurationBits.store(duration.bitPattern)
        logger?.debug("flushed", metadata: [("series", "\(batch.seriesCount)"), ("duration_s", "\(duration)")])
        return batch
    }
}
