import Glibc
import Synchronization

/// Daily roll-ups by one tag, kept in SQLite (SPEC section 11): at each flush, every series
/// whose name a `match` glob accepts and that carries the `by` tag adds to its row of (UTC
/// day, tag value, name, type). Counters add `sum`; timers, histograms and distributions add
/// `count` and `sum` and widen `min` and `max`; gauges keep `last`, `min` and `max`. Sets are
/// not rolled up.
///
/// - A flush's changes are merged into the rows waiting to be folded (`UnfoldedRows`). Then
///   one transaction folds some of them into the `rollups` table (`foldCount`: those of the
///   next tag values in the table's order, at least 5,000 rows or a sixty-fourth of those
///   waiting) and saves the rest as one blob. So a flush writes a bounded number of table
///   rows however many tenants send, a row reaches the table within one sweep of the tag
///   values (about 64 flushes), and a crash loses at most the interval being written. Queries and
///   the limits add the waiting rows; SIGTERM folds them all.
/// - A flush's interval belongs to the day its last millisecond is in: the flush at
///   00:00:00 UTC closes the day before.
/// - A write that fails (a full disk, a locked file) is retried with the next flush, the
///   changes kept merged in memory; past `maxPendingRows` waiting rows they are dropped and
///   counted (`stator_series_dropped_total{sink="rollup",reason="unwritable"}`).
/// - Once a day, rows older than `retention_days` are deleted.
/// - Today's sums of the names under a `limits` entry are kept in memory (read back from
///   the database at start) for `stator_rollup_usage_ratio`.
public final class RollupSink: Sink, @unchecked Sendable {
    // SAFETY: `expiryDay`, `expiring`, `unsavedChanges` and `router` are touched only by
    // `emit` and `shutdown`, which the sink's one thread calls in turn; `unfolded` and
    // `usage` are behind their locks.
    public let name = "rollup"
    let store: RollupStore
    let configuration: RollupConfiguration
    private let limitGlobs: [(glob: [UInt8], daily: Double)]
    let metrics: SelfMetrics?
    let logger: Logger
    /// The changes not yet in the `rollups` table. Held while a flush merges its changes and
    /// while its write commits (with the folded rows' removal), never while the write waits
    /// for the database; a query holds it only to read the waiting rows.
    private let unfolded: PthreadLock<UnfoldedRows>
    /// Writes committed, counted under `unfolded`'s lock as each commit is (see `rows`).
    private let commits = Atomic<Int>(0)
    /// API queries handed to the server's worker and not answered yet (`answer(_:)`).
    let queriesWaiting = Atomic<Int>(0)
    /// The agent's shutdown deadline (monotonic seconds, as bits) once shutdown has begun:
    /// a write waiting for another process's lock gives up by then.
    private let shutdownDeadline = Atomic<UInt64>(Double.infinity.bitPattern)
    /// The fewest waiting rows a flush folds (all of them when fewer wait).
    var minimumFold = 5_000
    /// Seconds an API query may take from its arrival (`answer`), waiting for the worker
    /// included; past them it answers 503.
    var queryBudget = 2.0
    let queryLog = RateLimiter(period: 60)
    /// The day whose expired rows were last looked for.
    private var expiryDay = ""
    /// Rows of days before `before` are being deleted, `expiredRowsPerFlush` a flush, until
    /// a flush finds fewer.
    private var expiring: (before: String, deleted: Int64)?
    static let expiredRowsPerFlush = 5_000
    /// Changes merged since the last write that succeeded: lost if the database cannot be
    /// written again before Stator stops.
    private var unsavedChanges = 0
    private let usage: PthreadLock<(day: String, sums: [RollupKey: Double])>
    static let maxPendingRows = 1_000_000

    /// Opens (or creates) the database and reads back the changes a last flush left unfolded.
    /// - Parameter now: the time the limits' sums of today are read back for.
    /// - Throws: `ConfigError` naming the file (see `RollupStore.init`).
    public init(
        configuration: RollupConfiguration, metrics: SelfMetrics?, logger: Logger, now: EpochMillis = WallClock.nowMillis()
    ) throws(ConfigError) {
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        store = try RollupStore(path: configuration.path, by: configuration.by)
        limitGlobs = configuration.limits.map { (Array($0.match.utf8), $0.daily) }
        router = RollupRouter(
            match: configuration.match.map { Array($0.utf8) }, limits: limitGlobs.map(\.glob), by: Array(configuration.by.utf8))
        let today = Self.day(of: now)
        var sums: [RollupKey: Double] = [:]
        let waiting: UnfoldedRows
        do throws(SQLiteError) {
            waiting = try store.unfolded()
            if !configuration.limits.isEmpty {
                let globs = limitGlobs
                let limited = { (name: String) in globs.contains { Glob.matches($0.glob, name) } }
                sums = try store.sums(day: today, where: limited)
                sums.merge(waiting.sums(day: today, where: limited), uniquingKeysWith: +)
            }
        } catch {
            throw ConfigError("sinks.rollup.path \(configuration.path): \(error.message)")
        }
        unfolded = PthreadLock(waiting)
        usage = PthreadLock((today, sums))
        metrics?.registerLabeled(SelfMetrics.sinkErrors("rollup"))
        metrics?.registerLabeled(SelfMetrics.seriesDropped("rollup", "unwritable"))
        for failure in QueryFailure.allCases { metrics?.registerLabeled(failure.series) }
        logger.info(
            "roll-ups open",
            metadata: [
                ("path", configuration.path), ("by", configuration.by), ("sqlite", SQLiteDatabase.libraryVersion),
                ("unfolded_rows", "\(waiting.count)"),
            ])
    }

    /// How many waiting rows a flush folds (at least: whole tag values are taken): at least
    /// `minimumFold`, and a sixty-fourth of those waiting, so that a sweep of every tag value
    /// takes about 64 flushes at most, and enough to keep at most `maxPendingRows` waiting.
    func foldCount(waiting: Int) -> Int {
        Swift.min(waiting, Swift.max(minimumFold, (waiting + 63) / 64, waiting - Self.maxPendingRows))
    }

    /// `YYYY-MM-DD` (UTC) of a time, as the rows and the API write days.
    public static func day(of millis: EpochMillis) -> String { String(WallClock.rfc3339(millis).prefix(10)) }

    /// Where each series goes (touched by `emit` only).
    private var router: RollupRouter

    public func emit(_ batch: FlushBatch) throws {
        let day = Self.day(of: batch.timestamp - 1)
        var sums: [RollupKey: Double] = [:]  // this flush's, of the names under a limit
        // Swapped out while in use: a local value pays no exclusivity check per access.
        var router = RollupRouter()
        swap(&router, &self.router)
        defer { swap(&router, &self.router) }
        // The lock is held while the changes are merged in memory and while the write commits,
        // never while it waits for the database: a query never waits for a flush's write.
        let write = unfolded.withLock { (rows: inout UnfoldedRows) -> PreparedWrite? in
            let dayID = rows.day(day)
            var changes = 0
            var remaining = batch.counters.count + batch.gauges.count + batch.samples.count  // to route
            /// Merges a series' change into its row, if it is rolled up.
            func add(_ series: SeriesID, _ change: RollupValues, _ key: () -> MetricKey) {
                remaining -= 1
                let route = router.route(series, &rows, expected: remaining, key)
                guard route.group >= 0 else { return }
                rows.add(group: route.group, day: dayID, change)
                changes += 1
                if route.limited, let sum = change.sum { sums[rows.keyAndName(ofGroup: route.group), default: 0] += sum }
            }
            batch.counters.withUnsafeBufferPointer { counters in
                for i in counters.indices {
                    add(counters[i].key.series, RollupValues(sum: counters[i].value)) { counters[i].key }
                }
            }
            batch.gauges.withUnsafeBufferPointer { gauges in
                for i in gauges.indices {
                    let v = gauges[i].value
                    add(gauges[i].key.series, RollupValues(min: v, max: v, last: v)) { gauges[i].key }
                }
            }
            batch.samples.withUnsafeBufferPointer { samples in
                for i in samples.indices {
                    let change = RollupValues(
                        sum: samples[i].sum, count: samples[i].count, min: samples[i].min, max: samples[i].max)
                    add(samples[i].key.series, change) { samples[i].key }
                }
            }
            unsavedChanges += changes
            // The flush is accepted once merged: its sums count towards the limits whether
            // this write succeeds or the rows wait for a later one (they reach the table then).
            addUsage(sums, day: day)
            return prepareWrite(&rows, day: day)
        }
        if let write { try self.write(write) }
    }

    /// Adds a flush's sums of the names under a limit to today's.
    private func addUsage(_ sums: [RollupKey: Double], day: String) {
        guard !limitGlobs.isEmpty else { return }
        usage.withLock { usage in
            if usage.day != day { usage = (day, [:]) }
            for (id, sum) in sums { usage.sums[id, default: 0] += sum }
        }
    }

    /// What a flush writes: the rows to fold, the other waiting rows as a blob (nil: none
    /// left), and the expired rows to delete.
    private struct PreparedWrite {
        var fold: UnfoldedRows.Fold
        var blob: [UInt8]?
        var expire: (before: String, limit: Int)?
    }

    /// Chooses what a flush writes (nil: nothing). At a new day's first flush, the waiting rows
    /// of expired days are dropped (so the saved blob holds none) and the table's start to go.
    private func prepareWrite(_ rows: inout UnfoldedRows, day: String) -> PreparedWrite? {
        if expiryDay != day {
            let midnight = Self.millis(ofDay: day)
            let cutoff = Self.day(of: midnight - Int64(configuration.retentionDays - 1) * 86_400_000)
            _ = rows.removeDays(before: cutoff)
            rows.forgetIdleGroups(activeSince: Self.day(of: midnight - 86_400_000))
            expiring = (cutoff, 0)
            expiryDay = day
        }
        guard !rows.isEmpty || expiring != nil else { return nil }
        let fold = rows.chooseFold(foldCount(waiting: rows.count))
        return PreparedWrite(
            fold: fold, blob: fold.slots.count < rows.count ? rows.encoded(leavingOut: fold) : nil,
            expire: expiring.map { ($0.before, Self.expiredRowsPerFlush) })
    }

    /// Folds some waiting rows, saves the rest and deletes a chunk of expired rows, in one
    /// transaction. The commit and the folded rows' removal from memory happen together under
    /// `unfolded`'s lock (and `commits` counts them), so a query pairs each snapshot of the
    /// table with the waiting rows of the same moment.
    private func write(_ write: PreparedWrite) throws {
        do throws(SQLiteError) {
            try checkFile()
            let writing = { () throws(SQLiteError) -> Int64 in
                try self.store.write(fold: write.fold.rows, unfolded: write.blob, expire: write.expire) {
                    (commit: () throws(SQLiteError) -> Void) throws(SQLiteError) in
                    self.unfolded.lock()
                    defer { self.unfolded.unlock() }
                    try commit()
                    self.unfolded.unsafeValue.pointee.remove(write.fold)
                    self.commits.add(1, ordering: .releasing)
                }
            }
            let stopBy = Double(bitPattern: shutdownDeadline.load(ordering: .acquiring))
            let deleted = stopBy.isFinite ? try store.writing(deadline: stopBy - 0.1, writing) : try writing()
            unsavedChanges = 0
            if let (before, total) = expiring {
                expiring = (before, total + deleted)
                if deleted < Self.expiredRowsPerFlush {
                    if total + deleted > 0 {
                        logger.info(
                            "expired roll-up rows deleted", metadata: [("rows", "\(total + deleted)"), ("before", before)])
                    }
                    expiring = nil
                }
            }
        } catch {
            unfolded.withLock { rows in
                if rows.count > Self.maxPendingRows {
                    metrics?.addLabeled(SelfMetrics.seriesDropped("rollup", "unwritable"), UInt64(rows.count))
                    rows.removeAll()
                    unsavedChanges = 0
                }
            }
            throw RollupWriteError(description: "roll-up rows not written, kept for the next flush: \(error.message)")
        }
    }

    /// Creates the database again at its path if it was removed or replaced since the last
    /// write (`RollupStore.recreateIfMoved`): logged, and counted as a sink error.
    private func checkFile() throws(SQLiteError) {
        guard let change = try store.recreateIfMoved() else { return }
        let path = ("path", configuration.path)
        switch change {
        case .removed:
            metrics?.addLabeled(SelfMetrics.sinkErrors("rollup"))
            logger.error(
                "roll-up database removed under Stator: created again at its path, with every row Stator had",
                metadata: [path])
        case .replaced(let aside):
            metrics?.addLabeled(SelfMetrics.sinkErrors("rollup"))
            logger.error(
                "roll-up database replaced under Stator: the other file set aside, and Stator's created again at the path",
                metadata: [path, ("set_aside", aside)])
        case .reopened:
            logger.info("roll-up database open again", metadata: [path])
        }
    }

    /// Rows in (key, day, name, type) order, the table's and the waiting changes added up: of
    /// one key (or all), whose name matches a glob (or any), from `start` to `end` (inclusive
    /// days), after `cursor`, at most `limit`.
    /// - Parameter deadline: past it (`WallClock.monotonicSeconds`), the query stops.
    /// - Throws: `SQLiteError`, with code `SQLiteDatabase.interrupted` past the deadline.
    func rows(
        key: String?, nameGlob: String?, start: String, end: String, after cursor: RollupStore.Cursor?, limit: Int,
        deadline: Double = .infinity
    ) throws(SQLiteError) -> [RollupRow] {
        try store.reading(deadline: deadline) { () throws(SQLiteError) -> [RollupRow] in
            // A snapshot of the table and the waiting rows of the same moment: no write committed
            // between the snapshot's start and the waiting rows' read (else, again). Neither waits
            // for a flush's write: `unfolded` is held only while a write commits.
            var changes: [RollupRow]?
            var renew = false
            while changes == nil {
                if WallClock.monotonicSeconds() >= deadline {
                    throw SQLiteError(code: SQLiteDatabase.interrupted, message: "interrupted")
                }
                let before = commits.load(ordering: .acquiring)
                try store.pinSnapshot(renew: renew)
                renew = true
                changes = unfolded.withLock { rows in
                    guard commits.load(ordering: .acquiring) == before else { return nil }
                    return rows.rows(
                        key: key, nameGlob: nameGlob.map { Array($0.utf8) }, start: start, end: end, after: cursor)
                }
            }
            let waiting = changes ?? []
            // The first `limit` rows of the union are among the first `limit` of each side.
            let folded = try store.rows(key: key, nameGlob: nameGlob, start: start, end: end, after: cursor, limit: limit)
            var merged: [RollupRow] = []
            merged.reserveCapacity(Swift.min(limit, folded.count + waiting.count))
            var (i, j) = (0, 0)
            while merged.count < limit, i < folded.count || j < waiting.count {
                if j == waiting.count || (i < folded.count && folded[i].precedes(waiting[j])) {
                    merged.append(folded[i])
                    i += 1
                } else if i == folded.count || waiting[j].precedes(folded[i]) {
                    merged.append(waiting[j])
                    j += 1
                } else {
                    var row = folded[i]
                    row.values.merge(waiting[j].values)
                    merged.append(row)
                    i += 1
                    j += 1
                }
            }
            return merged
        }
    }

    /// Midnight UTC of a `YYYY-MM-DD` day, in epoch milliseconds.
    static func millis(ofDay day: String) -> EpochMillis {
        let parts = day.split(separator: "-").compactMap { Int($0) }
        guard parts.count == 3 else { return 0 }
        var t = tm()
        t.tm_year = Int32(parts[0] - 1900)
        t.tm_mon = Int32(parts[1] - 1)
        t.tm_mday = Int32(parts[2])
        return EpochMillis(timegm(&t)) * 1000
    }

    /// `stator_rollup_usage_ratio{key,name}`: today's sum over the daily limit of the first
    /// `limits` entry that matches the name, for every tag value and name seen today.
    func renderUsage() -> String {
        guard !limitGlobs.isEmpty else { return "" }
        let sums = usage.withLock { $0.sums }
        var out = "# HELP stator_rollup_usage_ratio Today's (UTC) roll-up sum over its daily limit, by tag value and name.\n"
        out += "# TYPE stator_rollup_usage_ratio gauge\n"
        for (id, sum) in sums.sorted(by: { ($0.key.key, $0.key.name) < ($1.key.key, $1.key.name) }) {
            guard let limit = limitGlobs.first(where: { Glob.matches($0.glob, id.name) }) else { continue }
            out += "stator_rollup_usage_ratio{key=\"\(Self.escape(id.key))\",name=\"\(Self.escape(id.name))\"} "
            out += PrometheusNumber.format(limit.daily > 0 ? sum / limit.daily : .infinity) + "\n"
        }
        return out
    }

    private static func escape(_ value: String) -> String {
        var out = ""
        for c in value {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }

    /// From now on a write waits for another process's lock only until `deadline`.
    public func prepareForShutdown(until deadline: Double) {
        shutdownDeadline.store(deadline.bitPattern, ordering: .releasing)
    }

    /// Folds every waiting row into the table and checkpoints the write-ahead log: a stopped
    /// Stator leaves one file that holds everything. A database locked by another process is
    /// waited for until the deadline, less the moment it takes to say what was lost.
    public func shutdown(until deadline: Double) {
        let writesEnd = deadline - 0.1
        unfolded.withLock { rows in
            guard !rows.isEmpty else { return }
            do throws(SQLiteError) {
                try checkFile()
                let fold = rows.chooseFold(rows.count)
                try store.writing(deadline: writesEnd) { () throws(SQLiteError) in
                    try store.write(fold: fold.rows, unfolded: nil)
                }
                rows.remove(fold)
            } catch {
                // What the last successful write saved stays in the file (folded at the next
                // start); the changes merged after it are lost.
                guard unsavedChanges > 0 else {
                    logger.warning(
                        "roll-up rows not folded at shutdown: they stay saved in the file, folded after the next start",
                        metadata: [("rows", "\(rows.count)"), ("error", error.message)])
                    return
                }
                metrics?.addLabeled(SelfMetrics.seriesDropped("rollup", "unwritable"), UInt64(unsavedChanges))
                logger.error(
                    "roll-up changes lost at shutdown: the database could not be written",
                    metadata: [("changes", "\(unsavedChanges)"), ("error", error.message)])
            }
        }
        _ = try? store.writing(deadline: writesEnd) { () throws(SQLiteError) in try store.checkpoint() }
    }
}

/// A roll-up write that failed (counted and logged by the sink fan-out as a sink error).
struct RollupWriteError: Error, CustomStringConvertible {
    let description: String
}
