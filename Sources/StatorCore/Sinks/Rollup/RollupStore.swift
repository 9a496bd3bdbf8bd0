import Dispatch
import Glibc

/// One roll-up row: a UTC day, a tag value, a name and a type, and the day's aggregates so far.
struct RollupRow: Equatable, Sendable {
    var day: String
    var key: String
    var name: String
    var type: String
    /// Counters, timers, histograms, distributions.
    var sum: Double?
    /// Timers, histograms, distributions (rate-weighted, as the JSON lines' `count`).
    var count: Double?
    /// Timers, histograms, distributions, gauges.
    var min: Double?
    var max: Double?
    /// Gauges: the last value flushed.
    var last: Double?

    init(
        day: String, key: String, name: String, type: String, sum: Double? = nil, count: Double? = nil,
        min: Double? = nil, max: Double? = nil, last: Double? = nil
    ) {
        (self.day, self.key, self.name, self.type) = (day, key, name, type)
        (self.sum, self.count, self.min, self.max, self.last) = (sum, count, min, max, last)
    }

    init(day: String, key: String, name: String, type: String, values: RollupValues) {
        self.init(
            day: day, key: key, name: name, type: type, sum: values.sum, count: values.count, min: values.min,
            max: values.max, last: values.last)
    }

    var values: RollupValues {
        get { RollupValues(sum: sum, count: count, min: min, max: max, last: last) }
        set { (sum, count, min, max, last) = (newValue.sum, newValue.count, newValue.min, newValue.max, newValue.last) }
    }

    /// Whether the row sorts before another in the table's primary-key order: (key, day,
    /// name, type), each compared by its UTF-8 bytes as SQLite's BINARY collation does.
    func precedes(_ other: RollupRow) -> Bool {
        Self.compare((key, day, name, type), (other.key, other.day, other.name, other.type)) < 0
    }

    /// Whether the row sorts after a page's last row.
    func isAfter(_ cursor: RollupStore.Cursor) -> Bool {
        Self.compare((key, day, name, type), (cursor.key, cursor.day, cursor.name, cursor.type)) > 0
    }

    private static func compare(_ a: (String, String, String, String), _ b: (String, String, String, String)) -> Int {
        for (x, y) in [(a.0, b.0), (a.1, b.1), (a.2, b.2), (a.3, b.3)] where !x.utf8.elementsEqual(y.utf8) {
            return x.utf8.lexicographicallyPrecedes(y.utf8) ? -1 : 1
        }
        return 0
    }
}

/// The roll-up database: the schema (versioned, migrated at open), a flush's fold and saved
/// changes in one transaction, the daily deletion of expired rows, and the queries of the API
/// on a read connection of their own (WAL: readers never wait for the writer, nor it for them).
///
/// Schema, version 2 (docs/formats.md shows it to `sqlite3` users):
///
/// ```sql
/// CREATE TABLE schema_version (version INTEGER NOT NULL);
/// CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);  -- 'by'
/// CREATE TABLE rollups (key TEXT NOT NULL, day TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,
///   sum REAL, count REAL, min REAL, max REAL, last REAL,
///   PRIMARY KEY (key, day, name, type)) WITHOUT ROWID;
/// CREATE INDEX rollups_day ON rollups (day);
/// -- version 2: the changes not yet folded into rollups (`UnfoldedRows`' blob)
/// CREATE TABLE unfolded (id INTEGER PRIMARY KEY CHECK (id = 1), format INTEGER NOT NULL, rows BLOB NOT NULL);
/// ```
final class RollupStore: @unchecked Sendable {
    // SAFETY: `connections` is replaced only by the sink's thread (`recreateIfMoved`), with
    // `readLock` held and no checkpoint queued; the writer and its statements are used only by
    // the sink's thread (emit, shutdown); the reader only under `readLock`; the checkpointer
    // only on `checkpoints`.
    static let schemaVersion: Int64 = 2
    /// The open connections; nil while the file, found moved, could not be opened again.
    var connections: RollupConnections?
    let readLock = PthreadLock<Void>(())
    let checkpoints = DispatchQueue(label: "stator.rollup.checkpoint")
    private let checkpointQueued = PthreadLock(false)
    let path: String
    let by: String

    /// Opens the database (creating it), checks it and migrates its schema.
    /// - Throws: `ConfigError` naming the file: the library is missing, the file is not a
    ///   database or is corrupt, it is newer than this Stator, or it rolls up by another tag.
    init(path: String, by: String) throws(ConfigError) {
        self.path = path
        self.by = by
        do throws(SQLiteError) {
            connections = try RollupConnections(path: path, by: by)
        } catch {
            throw ConfigError("sinks.rollup.path \(path): \(Self.explain(error))")
        }
    }

    /// The open connections.
    /// - Throws: when the file, found moved, could not be opened again (tried at each flush).
    func live() throws(SQLiteError) -> RollupConnections {
        guard let connections else {
            throw SQLiteError(code: 0, message: "the database is not open: \(path) could not be created again")
        }
        return connections
    }

    /// The startup error for a failure: says when the file is not (or no longer) a database.
    private static func explain(_ error: SQLiteError) -> String {
        switch error.code {
        case 11: "the database is corrupt (\(error.message)); restore it from a backup or move it away"
        case 26: "the file is not an SQLite database (\(error.message))"
        case -1: "SQLite could not be loaded (\(error.message)); install the system's libsqlite3 (Debian: libsqlite3-0)"
        default: error.message
        }
    }

    /// One flush's write, in one transaction: `fold` added to the table (sums and counts add
    /// up, minimums and maximums widen, `last` replaces), the changes still unfolded saved in
    /// place of the last flush's (nil: none are left), and up to `expire.limit` rows of days
    /// before `expire.before` deleted (a day's expired rows go a chunk a flush, so that no
    /// flush pays for a whole day's).
    /// - Parameter committing: runs the commit it is given (so that the caller can commit
    ///   under a lock of its own, together with what the commit makes true).
    /// - Returns: the rows deleted.
    @discardableResult
    func write(
        fold: some Collection<RollupRow>, unfolded: [UInt8]?, expire: (before: String, limit: Int)? = nil,
        committing: (() throws(SQLiteError) -> Void) throws(SQLiteError) -> Void = { commit throws(SQLiteError) in
            try commit()
        }
    ) throws(SQLiteError) -> Int64 {
        var deleted: Int64 = 0
        let c = try live()
        try c.writer.execute("BEGIN IMMEDIATE")  // waits (busy timeout) for another writer's lock
        do throws(SQLiteError) {
            for row in fold {
                c.upsert.bind(1, row.key)
                c.upsert.bind(2, row.day)
                c.upsert.bind(3, row.name)
                c.upsert.bind(4, row.type)
                c.upsert.bind(5, row.sum)
                c.upsert.bind(6, row.count)
                c.upsert.bind(7, row.min)
                c.upsert.bind(8, row.max)
                c.upsert.bind(9, row.last)
                try c.upsert.step()
                c.upsert.reset()
            }
            if let unfolded {
                c.saveUnfolded.bind(1, UnfoldedRows.blobFormat)
                c.saveUnfolded.bind(2, blob: unfolded)
                try c.saveUnfolded.step()
                c.saveUnfolded.reset()
                c.saveUnfolded.bind(2, blob: [])  // SQLite's copy of a large blob is freed now
            } else {
                try c.clearUnfolded.step()
                c.clearUnfolded.reset()
            }
            if let expire {
                c.deleteExpired.bind(1, expire.before)
                c.deleteExpired.bind(2, Int64(expire.limit))
                try c.deleteExpired.step()
                c.deleteExpired.reset()
                try c.changes.step()
                deleted = c.changes.int64(0)
                c.changes.reset()
            }
            // WAL, the write lock held: the commit appends to the log and waits for no one.
            try committing { () throws(SQLiteError) in try c.writer.execute("COMMIT") }
        } catch {
            try? c.writer.execute("ROLLBACK")
            throw error
        }
        scheduleCheckpoint()
        return deleted
    }

    /// Queues a passive checkpoint, unless one is already waiting (it will copy this write's
    /// pages too). A passive checkpoint never blocks the writer or a reader; one that cannot
    /// finish is taken up by the next.
    private func scheduleCheckpoint() {
        let queued = checkpointQueued.withLock { queued in
            defer { queued = true }
            return queued
        }
        guard !queued else { return }
        checkpoints.async { [self] in
            checkpointQueued.withLock { $0 = false }
            try? connections?.checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
        }
    }

    /// The changes the last flush saved unfolded (none in a new database).
    /// - Throws: when the saved blob is of another format or cannot be read.
    func unfolded() throws(SQLiteError) -> UnfoldedRows {
        let read = try live().writer.prepare("SELECT format, rows FROM unfolded WHERE id = 1")
        guard try read.step() else { return UnfoldedRows() }
        let format = read.int64(0)
        guard format == UnfoldedRows.blobFormat, let rows = UnfoldedRows.decode(read.blob(1)) else {
            throw SQLiteError(
                code: 0,
                message:
                    "the unfolded roll-up changes (table unfolded, format \(format)) cannot be read; restore the file from a backup"
            )
        }
        return rows
    }

    /// Moves the write-ahead log into the database file and empties it (at shutdown: the file
    /// alone then holds everything, for a copy taken while Stator is stopped).
    /// Runs `body`'s writes with a time limit (at shutdown): past `deadline` they stop, and a
    /// lock held by another process is waited for only as long as is left.
    @discardableResult
    func writing<R>(deadline: Double, _ body: () throws(SQLiteError) -> R) throws(SQLiteError) -> R {
        try live().writer.withDeadline(deadline, body)
    }

    func checkpoint() throws(SQLiteError) {
        checkpoints.sync {}
        try live().writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    }

    /// Today's sums of the names `matches` accepts, by (key, name): where the limits start
    /// from after a restart.
    func sums(day: String, where matches: (String) -> Bool) throws(SQLiteError) -> [RollupKey: Double] {
        let read = try live().writer.prepare("SELECT key, name, sum FROM rollups WHERE day = ?1 AND sum IS NOT NULL")
        read.bind(1, day)
        var result: [RollupKey: Double] = [:]
        while try read.step() {
            let name = read.text(1)
            guard matches(name) else { continue }
            result[RollupKey(key: read.text(0), name: name), default: 0] += read.double(2) ?? 0
        }
        return result
    }

    /// Where a page of a query starts: after this row.
    struct Cursor: Equatable {
        var key: String
        var day: String
        var name: String
        var type: String
    }

    /// Runs a query's reads holding the reader connection, in one read transaction: every read
    /// in `body` sees the table as one commit left it. Statements stop past `deadline`
    /// (`SQLiteDatabase.withDeadline`).
    func reading<R>(deadline: Double, _ body: () throws(SQLiteError) -> R) throws(SQLiteError) -> R {
        readLock.lock()
        defer { readLock.unlock() }
        let result: Result<R, SQLiteError>
        let reader = try live().reader
        do throws(SQLiteError) {
            result = .success(
                try reader.withDeadline(deadline) { () throws(SQLiteError) -> R in
                    try reader.execute("BEGIN")
                    return try body()
                })
        } catch {
            result = .failure(error)
        }
        try? reader.execute("ROLLBACK")  // after the deadline's watch is gone: never interrupted
        return try result.get()
    }

    /// Fixes the snapshot of the read transaction `reading` began (its first read does), or,
    /// with `renew`, ends it and begins another, which sees the newest commit.
    func pinSnapshot(renew: Bool = false) throws(SQLiteError) {
        let reader = try live().reader
        if renew { try reader.execute("ROLLBACK; BEGIN") }
        try reader.execute("SELECT 1 FROM rollups LIMIT 1")
    }

    /// Rows in (key, day, name, type) order: of one key (or all), whose name matches a glob
    /// (or any), from `start` to `end` (inclusive days), after `cursor`, at most `limit`.
    /// Called within `reading` (which holds the reader connection), or by a test alone.
    ///
    /// The glob is `Glob`'s, applied here to each row SQLite returns, not SQLite's GLOB: one
    /// matcher decides for the table, the waiting rows, `match` and `limits` alike.
    func rows(key: String?, nameGlob: String?, start: String, end: String, after cursor: Cursor?, limit: Int)
        throws(SQLiteError) -> [RollupRow]
    {
        var sql = "SELECT key, day, name, type, sum, count, min, max, last FROM rollups WHERE day BETWEEN ?1 AND ?2"
        if key != nil { sql += " AND key = ?3" }
        if cursor != nil { sql += " AND (key, day, name, type) > (?5, ?6, ?7, ?8)" }
        sql += " ORDER BY key, day, name, type"
        if nameGlob == nil { sql += " LIMIT ?9" }
        let query = try live().reader.prepare(sql)
        query.bind(1, start)
        query.bind(2, end)
        if let key { query.bind(3, key) }
        if let cursor {
            query.bind(5, cursor.key)
            query.bind(6, cursor.day)
            query.bind(7, cursor.name)
            query.bind(8, cursor.type)
        }
        if nameGlob == nil { query.bind(9, Int64(limit)) }
        let glob = nameGlob.map { Array($0.utf8) }
        var rows: [RollupRow] = []
        while rows.count < limit, try query.step() {
            let name = query.text(2)
            if let glob, !Glob.matches(glob, name) { continue }
            rows.append(
                RollupRow(
                    day: query.text(1), key: query.text(0), name: name, type: query.text(3), sum: query.double(4),
                    count: query.double(5), min: query.double(6), max: query.double(7), last: query.double(8)))
        }
        return rows
    }
}

/// A tag value and a name: what a daily limit is counted per.
struct RollupKey: Hashable, Sendable {
    var key: String
    var name: String
}
