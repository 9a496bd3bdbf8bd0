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
}

/// The roll-up database: the schema (versioned, migrated at open), the flush's upserts in one
/// transaction, the daily deletion of expired rows, and the queries of the API on a read
/// connection of their own (WAL: readers never wait for the writer, nor it for them).
///
/// Schema, version 1 (docs/rollups.md shows it to `sqlite3` users):
///
/// ```sql
/// CREATE TABLE schema_version (version INTEGER NOT NULL);
/// CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);  -- 'by'
/// CREATE TABLE rollups (key TEXT NOT NULL, day TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,
///   sum REAL, count REAL, min REAL, max REAL, last REAL,
///   PRIMARY KEY (key, day, name, type)) WITHOUT ROWID;
/// CREATE INDEX rollups_day ON rollups (day);
/// ```
final class RollupStore: @unchecked Sendable {
    // SAFETY: `writer` and its statements are used only by the sink's thread (emit, shutdown);
    // `reader` and its statement only under `readLock`.
    static let schemaVersion: Int64 = 1
    private let writer: SQLiteDatabase
    private let upsert: SQLiteStatement
    private let readLock = PthreadLock<Void>(())
    private let reader: SQLiteDatabase
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
            try writer.execute(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;")
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
            reader = try SQLiteDatabase(path: path, flags: SQLiteDatabase.openReadOnly)
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

    /// Adds a flush's rows in one transaction: sums and counts add up, minimums and maximums
    /// widen, `last` replaces.
    func add(_ rows: some Collection<RollupRow>) throws(SQLiteError) {
        try writer.execute("BEGIN IMMEDIATE")
        do throws(SQLiteError) {
            for row in rows {
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
            try writer.execute("COMMIT")
        } catch {
            try? writer.execute("ROLLBACK")
            throw error
        }
    }

    /// Moves the write-ahead log into the database file and empties it (at shutdown: the file
    /// alone then holds everything, for a copy taken while Stator is stopped).
    func checkpoint() throws(SQLiteError) {
        try writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    }

    /// Deletes the rows of days before `day`.
    /// - Returns: how many.
    func deleteDays(before day: String) throws(SQLiteError) -> Int64 {
        let delete = try writer.prepare("DELETE FROM rollups WHERE day < ?1")
        delete.bind(1, day)
        try delete.step()
        let changes = try writer.prepare("SELECT changes()")
        try changes.step()
        return changes.int64(0)
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

    /// Rows in (key, day, name, type) order: of one key (or all), whose name matches a glob
    /// (or any), from `start` to `end` (inclusive days), after `cursor`, at most `limit`.
    func rows(key: String?, nameGlob: String?, start: String, end: String, after cursor: Cursor?, limit: Int)
        throws(SQLiteError) -> [RollupRow]
    {
        readLock.lock()
        defer { readLock.unlock() }
        var sql = "SELECT key, day, name, type, sum, count, min, max, last FROM rollups WHERE day BETWEEN ?1 AND ?2"
        if key != nil { sql += " AND key = ?3" }
        if nameGlob != nil { sql += " AND name GLOB ?4" }
        if cursor != nil { sql += " AND (key, day, name, type) > (?5, ?6, ?7, ?8)" }
        sql += " ORDER BY key, day, name, type LIMIT ?9"
        let query = try reader.prepare(sql)
        query.bind(1, start)
        query.bind(2, end)
        if let key { query.bind(3, key) }
        if let nameGlob { query.bind(4, Self.sqliteGlob(nameGlob)) }
        if let cursor {
            query.bind(5, cursor.key)
            query.bind(6, cursor.day)
            query.bind(7, cursor.name)
            query.bind(8, cursor.type)
        }
        query.bind(9, Int64(limit))
        var rows: [RollupRow] = []
        while try query.step() {
            rows.append(
                RollupRow(
                    day: query.text(1), key: query.text(0), name: query.text(2), type: query.text(3), sum: query.double(4),
                    count: query.double(5), min: query.double(6), max: query.double(7), last: query.double(8)))
        }
        return rows
    }

    /// Stator's glob (`*` any run, `?` one character, all else literal) as SQLite's GLOB, whose
    /// `[` opens a character class: `[` and `]` are written as one-character classes.
    static func sqliteGlob(_ glob: String) -> String {
        var out = ""
        for c in glob {
            switch c {
            case "[": out += "[[]"
            case "]": out += "[]]"
            default: out.append(c)
            }
        }
        return out
    }
}

/// A tag value and a name: what a daily limit is counted per.
struct RollupKey: Hashable, Sendable {
    var key: String
    var name: String
}
