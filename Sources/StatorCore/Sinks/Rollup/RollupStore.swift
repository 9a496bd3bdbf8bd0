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
    // SAFETY: `writer` and its statements are used only by the sink's thread (emit, shutdown);
    // `reader` and its statement only under `readLock`; `checkpointer` only on `checkpoints`.
    static let schemaVersion: Int64 = 2
    private let writer: SQLiteDatabase
    private let upsert: SQLiteStatement
    private let saveUnfolded: SQLiteStatement
    private let clearUnfolded: SQLiteStatement
    private let deleteExpired: SQLiteStatement
    private let changes: SQLiteStatement
    private let readLock = PthreadLock<Void>(())
    private let reader: SQLiteDatabase
    /// Checkpoints run here, on a connection of their own, after each write: copying the log
    /// into the file (and its fsync) never lengthens a flush's transaction.
    private let checkpointer: SQLiteDatabase
    private let checkpoints = DispatchQueue(label: "stator.rollup.checkpoint")
    private let checkpointQueued = PthreadLock(false)
    let path: String

    /// Opens the database (creating it), checks it and migrates its schema.
    /// - Throws: `ConfigError` naming the file: the library is missing, the file is not a
    ///   database or is corrupt, it is newer than this Stator, or it rolls up by another tag.
    init(path: String, by: String) throws(ConfigError) {
        self.path = path
        // Created here, not by SQLite: mode 0640 at most, as every file Stator creates (SQLite
        // gives the -wal and -shm files the database's mode), and never through a symlink.
        let fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o640)
        guard fd >= 0 else {
            throw ConfigError("sinks.rollup.path \(path): \(String(cString: strerror(errno)))")
        }
        close(fd)
        do {
            writer = try SQLiteDatabase(
                path: path, flags: SQLiteDatabase.openReadWrite | SQLiteDatabase.openCreate)
        } catch {
            throw ConfigError("sinks.rollup.path \(path): \(Self.explain(error))")
        }
        do throws(SQLiteError) {
            // WAL: readers and the writer never wait for each other; NORMAL: a commit is durable
            // against a crash of Stator (the log is in the kernel), synced at checkpoints.
            // A 64 MiB page cache holds a day's rows of 10,000 tenants x 20 names: each flush
            // then updates pages in memory instead of reading them back through the kernel.
            // No checkpoint at commit: `checkpointer` runs them after each write.
            try writer.execute(
                """
                PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;
                PRAGMA wal_autocheckpoint=0;
                """)
            try Self.migrate(writer, by: by, path: path)
            upsert = try writer.prepare(
                """
                INSERT INTO rollups (key, day, name, type, sum, count, min, max, last) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                ON CONFLICT (key, day, name, type) DO UPDATE SET
                  sum = CASE WHEN excluded.sum IS NULL THEN sum ELSE coalesce(sum, 0) + excluded.sum END,
                  count = CASE WHEN excluded.count IS NULL THEN count ELSE coalesce(count, 0) + excluded.count END,
                  min = CASE WHEN excluded.min IS NULL THEN min WHEN min IS NULL THEN excluded.min ELSE min(min, excluded.min) END,
                  max = CASE WHEN excluded.max IS NULL THEN max WHEN max IS NULL THEN excluded.max ELSE max(max, excluded.max) END,
                  last = coalesce(excluded.last, last)
                """)
            saveUnfolded = try writer.prepare("INSERT OR REPLACE INTO unfolded (id, format, rows) VALUES (1, ?1, ?2)")
            clearUnfolded = try writer.prepare("DELETE FROM unfolded")
            // Through the day index, oldest first.
            deleteExpired = try writer.prepare(
                """
                DELETE FROM rollups WHERE (key, day, name, type) IN
                  (SELECT key, day, name, type FROM rollups WHERE day < ?1 ORDER BY day LIMIT ?2)
                """)
            changes = try writer.prepare("SELECT changes()")
            reader = try SQLiteDatabase(path: path, flags: SQLiteDatabase.openReadOnly)
            checkpointer = try SQLiteDatabase(path: path, flags: SQLiteDatabase.openReadWrite)
        } catch {
            throw ConfigError("sinks.rollup.path \(path): \(Self.explain(error))")
        }
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

    private static func migrate(_ db: SQLiteDatabase, by: String, path: String) throws(SQLiteError) {
        try db.execute("BEGIN IMMEDIATE")
        do throws(SQLiteError) {
            try db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            let read = try db.prepare("SELECT max(version) FROM schema_version")
            try read.step()
            let version = Int64(read.double(0) ?? 0)
            if version > schemaVersion {
                throw SQLiteError(
                    code: 0,
                    message:
                        "the database has schema version \(version); this Stator knows \(schemaVersion) (a newer Stator wrote it)"
                )
            }
            if version < 1 {
                try db.execute(
                    """
                    CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
                    CREATE TABLE rollups (key TEXT NOT NULL, day TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,
                      sum REAL, count REAL, min REAL, max REAL, last REAL,
                      PRIMARY KEY (key, day, name, type)) WITHOUT ROWID;
                    CREATE INDEX rollups_day ON rollups (day);
                    INSERT INTO schema_version (version) VALUES (1);
                    """)
                let setting = try db.prepare("INSERT INTO settings (name, value) VALUES ('by', ?1)")
                setting.bind(1, by)
                try setting.step()
            }
            if version < 2 {
                try db.execute(
                    """
                    CREATE TABLE unfolded (id INTEGER PRIMARY KEY CHECK (id = 1), format INTEGER NOT NULL, rows BLOB NOT NULL);
                    INSERT INTO schema_version (version) VALUES (2);
                    """)
            }
            // Later versions migrate here, one step each, inside this transaction.
            let stored = try db.prepare("SELECT value FROM settings WHERE name = 'by'")
            if try stored.step(), stored.text(0) != by {
                throw SQLiteError(
                    code: 0,
                    message:
                        "the database holds roll-ups by \(stored.text(0)), not by \(by) (sinks.rollup.by): give it another path")
            }
            try db.execute("COMMIT")
        } catch {
            try? db.execute("ROLLBACK")
            throw error
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
        try writer.execute("BEGIN IMMEDIATE")  // waits (busy timeout) for another writer's lock
        do throws(SQLiteError) {
            for row in fold {
                upsert.bind(1, row.key)
                upsert.bind(2, row.day)
                upsert.bind(3, row.name)
                upsert.bind(4, row.type)
                upsert.bind(5, row.sum)
                upsert.bind(6, row.count)
                upsert.bind(7, row.min)
                upsert.bind(8, row.max)
                upsert.bind(9, row.last)
                try upsert.step()
                upsert.reset()
            }
            if let unfolded {
                saveUnfolded.bind(1, UnfoldedRows.blobFormat)
                saveUnfolded.bind(2, blob: unfolded)
                try saveUnfolded.step()
                saveUnfolded.reset()
                saveUnfolded.bind(2, blob: [])  // SQLite's copy of a large blob is freed now
            } else {
                try clearUnfolded.step()
                clearUnfolded.reset()
            }
            if let expire {
                deleteExpired.bind(1, expire.before)
                deleteExpired.bind(2, Int64(expire.limit))
                try deleteExpired.step()
                deleteExpired.reset()
                try changes.step()
                deleted = changes.int64(0)
                changes.reset()
            }
            // WAL, the write lock held: the commit appends to the log and waits for no one.
            try committing { () throws(SQLiteError) in try writer.execute("COMMIT") }
        } catch {
            try? writer.execute("ROLLBACK")
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
            try? checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
        }
    }

    /// The changes the last flush saved unfolded (none in a new database).
    /// - Throws: when the saved blob is of another format or cannot be read.
    func unfolded() throws(SQLiteError) -> UnfoldedRows {
        let read = try writer.prepare("SELECT format, rows FROM unfolded WHERE id = 1")
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
    func checkpoint() throws(SQLiteError) {
        checkpoints.sync {}
        try writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    }

    /// Today's sums of the names `matches` accepts, by (key, name): where the limits start
    /// from after a restart.
    func sums(day: String, where matches: (String) -> Bool) throws(SQLiteError) -> [RollupKey: Double] {
        let read = try writer.prepare("SELECT key, name, sum FROM rollups WHERE day = ?1 AND sum IS NOT NULL")
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
        let query = try reader.prepare(sql)
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
