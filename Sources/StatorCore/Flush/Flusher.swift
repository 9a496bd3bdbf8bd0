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
///
/// Time (SPEC section 2): the sleep between flushes, the batches' `interval` and `series_ttl`
/// run on the monotonic clock; the wall clock only says where the next boundary is and
/// stamps the batch. A wall-clock step (NTP, a resumed VM) therefore neither stops flushing
/// (a step back of Δ used to wait Δ for the boundary) nor expires live series (a step
/// forward of `series_ttl` used to).
public final class Flusher: Sendable {
    private struct State {
        var generation: UInt32 = 1
        /// Monotonic time of the previous flush (of the start, before the first).
        var previousFlush: Int64
        /// Current value of every live gauge (gauges repeat until they expire), with the lines
        /// of the interval `generation` (the lines of an earlier one are not this batch's).
        var gauges: [MetricKey: GaugeState] = [:]
        /// (generation, monotonic end time) of recent intervals, oldest first, for `series_ttl`.
        var generationEnds: [(UInt32, Int64)] = []
        /// Many series expired recently: hand the freed memory back to the kernel at this many
        /// more flushes, once the sinks have let go of them too (the Prometheus state is
        /// compacted on its own thread, after the flush that expired them).
        var trimsPending = 0
    }

    /// The TTLs in force: `series_ttl`, or a mapping's `defaults.ttl` in its place, and the
    /// `ttl` of each mapping options number that sets one (0: never expires).
    struct TTLs {
        var `default`: Int64
        /// Per options number; empty when no rule sets a ttl (the sweep then reads no keys).
        var mapped: [Int64?] = []

        init(series: Int64, mapping: MappingRules?) {
            `default` = mapping?.current.defaultTTLMillis ?? series
            if let ttls = mapping?.options.ttls(), ttls.contains(where: { $0 != nil }) { mapped = ttls }
        }

        /// The longest TTL, for which the ends of past intervals are kept (0: none expires).
        var longest: Int64 { mapped.reduce(`default`) { max($0, $1 ?? 0) } }
    }

    /// The newest generation that ended `ttl` or longer before `now` (0: none, or `ttl` is 0):
    /// series whose last data came in it or earlier expire.
    static func cutoff(_ ttl: Int64, _ ends: [(UInt32, Int64)], now: Int64) -> UInt32 {
        guard ttl > 0 else { return 0 }
        var cutoff: UInt32 = 0
        for (generation, end) in ends {
            guard end + ttl <= now else { break }
            cutoff = generation
        }
        return cutoff
    }

    /// Expiring at least this many series in one flush returns freed heap to the kernel (`malloc_trim`).
    static let trimAfterExpiring = 10_000
    /// A change of at least this much between the wall and the monotonic clock is a step
    /// (logged; the schedule re-aligns). NTP's slewing moves them apart by at most 0.5 ms/s.
    static let stepMillis: Int64 = 1000

    private let table: ShardedTable
    private let configuration: FlushConfiguration
    private let publish: @Sendable (FlushBatch) -> Void
    private let metrics: SelfMetrics
    private let logger: Logger?
    private let clock: any FlushClock
    private let state: PthreadLock<State>
    private let wake = ConditionLock()
    private let stopping = Atomic<Bool>(false)

    /// - Parameters:
    ///   - table: the aggregation stage to drain.
    ///   - startMillis: when ingestion started, on `clock`'s monotonic clock (the first
    ///     batch's interval counts from it). Tests that call `flush(at:)` with made-up times
    ///     pass the made-up start: both clocks then read alike.
    ///   - clock: the wall and monotonic clocks (`SystemFlushClock` but in tests).
    ///   - publish: receives each batch (normally `SinkFanout.publish`).
    public init(
        table: ShardedTable, configuration: FlushConfiguration, startMillis: Int64, clock: any FlushClock = SystemFlushClock(),
        metrics: SelfMetrics, logger: Logger? = nil, publish: @escaping @Sendable (FlushBatch) -> Void
    ) {
        self.logger = logger
        self.table = table
        self.configuration = configuration
        self.publish = publish
        self.metrics = metrics
        self.clock = clock
        state = PthreadLock(State(previousFlush: startMillis))
    }

    /// The next wall-clock multiple of the interval strictly after `now`.
    public static func nextBoundary(after now: EpochMillis, intervalMillis: Int64) -> EpochMillis {
        (now.floorDiv(intervalMillis) + 1) * intervalMillis
    }

    /// Flushes at every boundary until `stop()`; run it on a dedicated thread.
    ///
    /// Each sleep is on the monotonic clock, until the monotonic time that corresponds to the
    /// next wall-clock boundary. When it ends, the flush happens whatever the wall clock says
    /// then; if the wall clock stepped meanwhile (the two clocks moved apart by
    /// `stepMillis` or more), the step is logged once, that flush is stamped with the wall
    /// time it happened at, and the next flush is at the next boundary of the new wall time.
    public func runLoop() {
        let interval = configuration.intervalMillis
        var wall = clock.wallMillis()
        var monotonic = clock.monotonicMillis()
        var offset = wall - monotonic
        var stamp = wall
        var stepped = false
        while !stopping.load(ordering: .acquiring) {
            // Schedule: the next boundary still ahead of the wall clock (a flush that ran long
            // skips those it missed; after a step, the first of the new wall time).
            let boundary = Flusher.nextBoundary(after: stepped ? wall : max(stamp, wall), intervalMillis: interval)
            let due = monotonic + (boundary - wall)
            while !stopping.load(ordering: .acquiring), clock.monotonicMillis() < due {
                wake.withLock {
                    if !stopping.load(ordering: .acquiring) { clock.wait(untilMonotonic: due, on: wake) }
                }
            }
            if stopping.load(ordering: .acquiring) { return }
            wall = clock.wallMillis()
            monotonic = clock.monotonicMillis()
            stepped = noteStep(wall: wall, monotonic: monotonic, offset: &offset, expected: boundary)
            stamp = stepped ? wall : boundary
            flush(at: stamp, monotonic: monotonic)
            wall = clock.wallMillis()
            monotonic = clock.monotonicMillis()
            if noteStep(wall: wall, monotonic: monotonic, offset: &offset, expected: nil) { stepped = true }
        }
    }

    /// Whether the wall clock stepped since `offset` (wall minus monotonic) was noted: the two
    /// clocks moved apart by `stepMillis` or more. A step is logged once and becomes the new offset.
    private func noteStep(wall: EpochMillis, monotonic: Int64, offset: inout Int64, expected: EpochMillis?) -> Bool {
        let step = (wall - monotonic) - offset
        guard abs(step) >= Self.stepMillis else { return false }
        offset = wall - monotonic
        var metadata = [("step_ms", "\(step)"), ("now", WallClock.rfc3339(wall))]
        if let expected { metadata.append(("boundary_due", WallClock.rfc3339(expected))) }
        logger?.warning("the wall clock stepped: flushing goes on and re-aligns at the next boundary", metadata: metadata)
        return true
    }

    /// Makes `runLoop()` return promptly.
    public func stop() {
        stopping.store(true, ordering: .releasing)
        wake.withLock { wake.broadcast() }
    }

    /// Closes the interval now (the last, partial one at shutdown), stamped with the wall time.
    @discardableResult
    public func flushNow() -> FlushBatch {
        flush(at: clock.wallMillis(), monotonic: clock.monotonicMillis())
    }

    /// Closes the interval ending at `timestamp` and publishes its batch.
    /// - Returns: the batch (also handed to `publish`).
    /// - Parameters:
    ///   - timestamp: the batch's `ts` (wall clock).
    ///   - monotonic: now on the monotonic clock, for `interval` and `series_ttl`; by default
    ///     `timestamp` (tests that drive both clocks alike).
    @discardableResult
    public func flush(at timestamp: EpochMillis, monotonic: Int64? = nil) -> FlushBatch {
        let started = WallClock.monotonicSeconds()
        let now = monotonic ?? timestamp
        let batch = state.withLock { s -> FlushBatch in
            let interval = Double(max(0, now - s.previousFlush)) / 1000
            s.previousFlush = now
            let closing = s.generation
            s.generation &+= 1
            let parts = table.drainAll(nextGeneration: s.generation)
            let events = table.events.drain()
            let points = table.points.drain()
            if s.trimsPending > 0 {
                // glibc keeps freed small blocks in its arenas; after a mass expiry (a
                // cardinality bomb passing) that would keep the peak resident for good.
                _ = CStatorSys_release_free_memory()
                s.trimsPending -= 1
            }
            s.generationEnds.append((closing, now))

            var counters: [CounterSummary] = []
            var sets: [SetSummary] = []
            var samples: [SampleSummary] = []
            for part in parts {
                for c in part.counters {
                    counters.append(
                        CounterSummary(
                            key: c.key, value: c.sum, rate: interval > 0 ? c.sum / interval : 0, lines: Int(c.lines)))
                }
                for g in part.gauges {
                    s.gauges[g.key, default: GaugeState()].update(g, generation: closing)
                }
                for set in part.sets { sets.append(SetSummary(key: set.key, value: set.members.distinct, lines: Int(set.lines))) }
                for t in part.samples {
                    samples.append(SampleStatistics.summarize(t, percentiles: configuration.percentiles, interval: interval))
                }
            }

            // series_ttl: forget series whose last data is older than the TTL (a mapping's
            // defaults.ttl replaces it, and a rule's ttl for the series it names).
            var expired: [MetricKey] = []
            let ttl = TTLs(series: configuration.seriesTTLMillis, mapping: table.configuration.mapping)
            if ttl.longest > 0 {
                // Intervals that ended longer ago than the longest TTL are no longer needed.
                while s.generationEnds.count > 1, s.generationEnds[1].1 + ttl.longest <= now {
                    s.generationEnds.removeFirst()
                }
                let cutoff = Self.cutoff(ttl.default, s.generationEnds, now: now)
                // (Once per distinct TTL: a file may have many rules, with few TTLs among them.)
                var byTTL: [Int64: UInt32] = [:]
                let ends = s.generationEnds
                let mapped = ttl.mapped.map { t in
                    t.map { t in
                        if let known = byTTL[t] { return known }
                        let c = Self.cutoff(t, ends, now: now)
                        byTTL[t] = c
                        return c
                    }
                }
                if cutoff > 0 || mapped.contains(where: { ($0 ?? 0) > 0 }) {
                    expired = table.expire(cutoff: cutoff, mappedCutoffs: mapped)
                    if expired.count >= Self.trimAfterExpiring { s.trimsPending = 3 }
                    for key in expired where key.type == .gauge { s.gauges[key] = nil }
                    if s.gauges.capacity >= 1024, s.gauges.count * 4 < s.gauges.capacity {
                        s.gauges = Dictionary(uniqueKeysWithValues: s.gauges.map { ($0.key, $0.value) })
                    }
                }
            } else {
                s.generationEnds.removeAll()
            }
            if let limits = table.configuration.tagPolicy?.limits {
                limits.release(expired)
                limits.sweep(now: now, ttl: ttl.default)
            }
            let gauges = s.gauges.map {
                GaugeSummary(key: $0.key, value: $0.value.value, lines: $0.value.lines(in: closing))
            }
            return FlushBatch(
                sequence: UInt64(closing), timestamp: timestamp, interval: interval, percentiles: configuration.percentiles,
                counters: counters, gauges: gauges, sets: sets, samples: samples, expired: expired, events: events,
                points: points)
        }
        publish(batch)
        let duration = WallClock.monotonicSeconds() - started
        metrics.flushes.add(1)
        metrics.lastFlushDurationBits.store(duration.bitPattern)
        logger?.debug("flushed", metadata: [("series", "\(batch.seriesCount)"), ("duration_s", "\(duration)")])
        return batch
    }
}

/// A live gauge between flushes: its value, and the lines of the last interval that had some.
struct GaugeState {
    var value: Double = 0
    var lines: UInt32 = 0
    var generation: UInt32 = 0

    /// Applies the interval `generation`'s aggregate.
    mutating func update(_ g: GaugeAggregate, generation: UInt32) {
        value = g.resolve(previous: value).withoutNaN
        lines = generation == self.generation ? lines &+ g.lines : g.lines
        self.generation = generation
    }

    /// The lines of the interval `generation` (0 when the gauge only repeats in it).
    func lines(in generation: UInt32) -> Int { self.generation == generation ? Int(lines) : 0 }
}
