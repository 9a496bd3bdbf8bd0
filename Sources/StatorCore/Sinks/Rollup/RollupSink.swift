import Glibc

/// Daily roll-ups by one tag, kept in SQLite (SPEC section 11): at each flush, every series
/// whose name a `match` glob accepts and that carries the `by` tag adds to its row of (UTC
/// day, tag value, name, type), all of a flush's rows in one transaction. Counters add `sum`;
/// timers, histograms and distributions add `count` and `sum` and widen `min` and `max`;
/// gauges keep `last`, `min` and `max`. Sets are not rolled up.
///
/// - A flush's interval belongs to the day its last millisecond is in: the flush at
///   00:00:00 UTC closes the day before.
/// - Rows that cannot be written (a full disk, a locked file) are kept, merged, and written
///   with the next flush; past `maxPendingRows` they are dropped and counted
///   (`stator_series_dropped_total{sink="rollup",reason="unwritable"}`).
/// - Once a day, rows older than `retention_days` are deleted.
/// - Today's sums of the names under a `limits` entry are kept in memory (read back from
///   the database at start) for `stator_rollup_usage_ratio`.
public final class RollupSink: Sink, @unchecked Sendable {
    // SAFETY: `pending` and `purgedDay` are touched only by `emit` and `shutdown`, which the
    // sink's one thread calls in turn; `usage` is read by scrapes under its lock.
    public let name = "rollup"
    let store: RollupStore
    let configuration: RollupConfiguration
    private let matchGlobs: [[UInt8]]
    private let limitGlobs: [(glob: [UInt8], daily: Double)]
    private let by: [UInt8]
    private let metrics: SelfMetrics?
    private let logger: Logger
    /// Rows not yet written (this flush's, and any a failed write left), with their primary
    /// key's bytes, and where each key's row is: rows are merged in place.
    private var pending = PendingRows()

    private struct PendingRows {
        var index: [[UInt8]: Int] = [:]
        var ids: [[UInt8]] = []
        var rows: [RollupRow] = []

        var count: Int { rows.count }
        var isEmpty: Bool { rows.isEmpty }

        mutating func removeAll() {
            index.removeAll(keepingCapacity: true)
            ids.removeAll(keepingCapacity: true)
            rows.removeAll(keepingCapacity: true)
        }

        /// The rows' positions in primary-key order (the ids' bytes compared as memcmp does).
        func orderByKey() -> [Int] {
            ids.withUnsafeBufferPointer { ids in
                Array(ids.indices).sorted { a, b in
                    ids[a].withUnsafeBytes { x in
                        ids[b].withUnsafeBytes { y in
                            guard let xb = x.baseAddress, let yb = y.baseAddress else { return x.count < y.count }
                            let c = memcmp(xb, yb, min(x.count, y.count))
                            return c != 0 ? c < 0 : x.count < y.count
                        }
                    }
                }
            }
        }
    }
    private var purgedDay = ""
    private let usage: PthreadLock<(day: String, sums: [RollupKey: Double])>
    private let failureLog = RateLimiter(period: 10)
    static let maxPendingRows = 1_000_000

    /// Opens (or creates) the database.
    /// - Parameter now: the time the limits' sums of today are read back for.
    /// - Throws: `ConfigError` naming the file (see `RollupStore.init`).
    public init(
        configuration: RollupConfiguration, metrics: SelfMetrics?, logger: Logger, now: EpochMillis = WallClock.nowMillis()
    ) throws(ConfigError) {
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        store = try RollupStore(path: configuration.path, by: configuration.by)
        matchGlobs = configuration.match.map { Array($0.utf8) }
        limitGlobs = configuration.limits.map { (Array($0.match.utf8), $0.daily) }
        by = Array(configuration.by.utf8)
        let today = Self.day(of: now)
        var sums: [RollupKey: Double] = [:]
        if !configuration.limits.isEmpty {
            let globs = limitGlobs
            do throws(SQLiteError) {
                sums = try store.sums(day: today) { name in globs.contains { Self.matches($0.glob, name) } }
            } catch {
                throw ConfigError("sinks.rollup.path \(configuration.path): \(error.message)")
            }
        }
        usage = PthreadLock((today, sums))
        metrics?.registerLabeled(SelfMetrics.sinkErrors("rollup"))
        metrics?.registerLabeled(SelfMetrics.seriesDropped("rollup", "unwritable"))
        logger.info(
            "roll-ups open",
            metadata: [("path", configuration.path), ("by", configuration.by), ("sqlite", SQLiteDatabase.libraryVersion)])
    }

    /// `YYYY-MM-DD` (UTC) of a time, as the rows and the API write days.
    public static func day(of millis: EpochMillis) -> String { String(WallClock.rfc3339(millis).prefix(10)) }

    private static func matches(_ glob: [UInt8], _ name: String) -> Bool {
        Array(name.utf8).withUnsafeBytes { Glob.matches(glob, $0) }
    }

    public func emit(_ batch: FlushBatch) throws {
        let day = Self.day(of: batch.timestamp - 1)
        let dayBytes = Array(day.utf8)
        var sums: [RollupKey: Double] = [:]  // this flush's, of the names under a limit
        var id: [UInt8] = []
        /// The row of a series, if it is rolled up: `id` is then its primary key's bytes
        /// (tag value, day, name, type, each followed by a 0 byte), which sort as the table does.
        func row(_ key: MetricKey) -> Bool {
            guard key.withName({ name in matchGlobs.contains { Glob.matches($0, name) } }) else { return false }
            id.removeAll(keepingCapacity: true)
            key.forEachTag { k, v in
                if id.isEmpty, !v.isEmpty, k.elementsEqual(by) { id.append(contentsOf: v) }
            }
            guard !id.isEmpty else { return false }
            id.append(0)
            id.append(contentsOf: dayBytes)
            id.append(0)
            key.withName { id.append(contentsOf: $0) }
            id.append(0)
            id.append(contentsOf: key.type.description.utf8)
            return true
        }
        func add(_ key: MetricKey, _ change: RollupRow) {
            if let i = pending.index[id] {
                Self.merge(change, into: &pending.rows[i])
                return
            }
            // A new row: its text once.
            let parts = id.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
            var row = change
            (row.key, row.day, row.name, row.type) = (parts[0], day, parts[2], parts[3])
            pending.index[id] = pending.rows.count
            pending.ids.append(id)
            pending.rows.append(row)
        }
        func count(_ key: MetricKey, _ sum: Double) {
            guard !limitGlobs.isEmpty, key.withName({ name in limitGlobs.contains { Glob.matches($0.glob, name) } }) else {
                return
            }
            let parts = id.split(separator: 0, omittingEmptySubsequences: false)
            sums[
                RollupKey(key: String(decoding: parts[0], as: UTF8.self), name: String(decoding: parts[2], as: UTF8.self)),
                default: 0] += sum
        }
        for c in batch.counters where row(c.key) {
            add(c.key, RollupRow(day: "", key: "", name: "", type: "", sum: c.value))
            count(c.key, c.value)
        }
        for g in batch.gauges where row(g.key) {
            add(g.key, RollupRow(day: "", key: "", name: "", type: "", min: g.value, max: g.value, last: g.value))
        }
        for t in batch.samples where row(t.key) {
            add(t.key, RollupRow(day: "", key: "", name: "", type: "", sum: t.sum, count: t.count, min: t.min, max: t.max))
            count(t.key, t.sum)
        }
        if !limitGlobs.isEmpty {
            usage.withLock { usage in
                if usage.day != day { usage = (day, [:]) }
                for (id, sum) in sums { usage.sums[id, default: 0] += sum }
            }
        }
        try write(day: day)
    }

    /// Writes what is pending (this flush's rows and any a failed write left), then deletes
    /// expired days once a day.
    private func write(day: String) throws {
        if !pending.isEmpty {
            do throws(SQLiteError) {
                // In primary-key order: each B-tree page is visited once, in turn.
                let rows = pending.rows
                try store.add(pending.orderByKey().lazy.map { rows[$0] })
                pending.removeAll()
            } catch {
                if pending.count > Self.maxPendingRows {
                    metrics?.addLabeled(SelfMetrics.seriesDropped("rollup", "unwritable"), UInt64(pending.count))
                    pending.removeAll()
                }
                throw RollupWriteError(description: "roll-up rows not written, kept for the next flush: \(error.message)")
            }
        }
        guard purgedDay != day else { return }
        let cutoff = Self.day(of: Self.millis(ofDay: day) - Int64(configuration.retentionDays - 1) * 86_400_000)
        do throws(SQLiteError) {
            let deleted = try store.deleteDays(before: cutoff)
            purgedDay = day
            if deleted > 0 {
                logger.info("expired roll-up rows deleted", metadata: [("rows", "\(deleted)"), ("before", cutoff)])
            }
        } catch {
            throw RollupWriteError(description: "expired roll-up rows not deleted, tried again next flush: \(error.message)")
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

    /// Merges a change into a row as the database's upsert does.
    private static func merge(_ change: RollupRow, into row: inout RollupRow) {
        if let s = change.sum { row.sum = (row.sum ?? 0) + s }
        if let c = change.count { row.count = (row.count ?? 0) + c }
        if let m = change.min { row.min = Swift.min(row.min ?? m, m) }
        if let m = change.max { row.max = Swift.max(row.max ?? m, m) }
        if let l = change.last { row.last = l }
    }

    /// `stator_rollup_usage_ratio{key,name}`: today's sum over the daily limit of the first
    /// `limits` entry that matches the name, for every tag value and name seen today.
    func renderUsage() -> String {
        guard !limitGlobs.isEmpty else { return "" }
        let sums = usage.withLock { $0.sums }
        var out = "# HELP stator_rollup_usage_ratio Today's (UTC) roll-up sum over its daily limit, by tag value and name.\n"
        out += "# TYPE stator_rollup_usage_ratio gauge\n"
        for (id, sum) in sums.sorted(by: { ($0.key.key, $0.key.name) < ($1.key.key, $1.key.name) }) {
            guard let limit = limitGlobs.first(where: { Self.matches($0.glob, id.name) }) else { continue }
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

    /// Writes what a failed write left, once more, and checkpoints the write-ahead log.
    public func shutdown() {
        if !pending.isEmpty {
            do throws(SQLiteError) {
                let rows = pending.rows
                try store.add(pending.orderByKey().lazy.map { rows[$0] })
            } catch {
                metrics?.addLabeled(SelfMetrics.seriesDropped("rollup", "unwritable"), UInt64(pending.count))
                logger.error(
                    "roll-up rows lost at shutdown: the database could not be written",
                    metadata: [("rows", "\(pending.count)"), ("error", error.message)])
            }
            pending.removeAll()
        }
        try? store.checkpoint()
    }
}

/// A roll-up write that failed (counted and logged by the sink fan-out as a sink error).
struct RollupWriteError: Error, CustomStringConvertible {
    let description: String
}
