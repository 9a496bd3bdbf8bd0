import Glibc

/// The connections to the roll-up database and the writer's prepared statements, opened
/// together (and replaced together when the file is found moved: `recreateIfMoved`).
final class RollupConnections {
    // Not Sendable: `RollupStore` says which thread uses which connection.
    let writer: SQLiteDatabase
    let upsert: SQLiteStatement
    let saveUnfolded: SQLiteStatement
    let clearUnfolded: SQLiteStatement
    let deleteExpired: SQLiteStatement
    let changes: SQLiteStatement
    /// The API's queries.
    let reader: SQLiteDatabase
    /// Checkpoints run here, on a connection of their own, after each write: copying the log
    /// into the file (and its fsync) never lengthens a flush's transaction.
    let checkpointer: SQLiteDatabase
    /// The file they have open (device and inode), to tell when the path names another.
    let identity: FileIdentity

    /// Opens the database at `path` (creating it), checks it and migrates its schema.
    /// - Throws: `SQLiteError`: the file cannot be created, the library is missing, the file is
    ///   not a database or is corrupt, it is newer than this Stator, or it rolls up by another tag.
    init(path: String, by: String) throws(SQLiteError) {
        // Created here, not by SQLite: mode 0640 at most, as every file Stator creates (SQLite
        // gives the -wal and -shm files the database's mode), and never through a symlink.
        let fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw SQLiteError(code: 0, message: String(cString: strerror(errno))) }
        close(fd)
        writer = try SQLiteDatabase(path: path, flags: SQLiteDatabase.openReadWrite | SQLiteDatabase.openCreate)
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
        try Self.migrate(writer, by: by)
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
        guard let identity = FileIdentity(path: path) else {
            throw SQLiteError(code: 0, message: "the file is gone as it was opened: \(String(cString: strerror(errno)))")
        }
        self.identity = identity
    }

    private static func migrate(_ db: SQLiteDatabase, by: String) throws(SQLiteError) {
        try db.execute("BEGIN IMMEDIATE")
        do throws(SQLiteError) {
            try db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            let read = try db.prepare("SELECT max(version) FROM schema_version")
            try read.step()
            let version = Int64(read.double(0) ?? 0)
            if version > RollupStore.schemaVersion {
                throw SQLiteError(
                    code: 0,
                    message:
                        "the database has schema version \(version); this Stator knows \(RollupStore.schemaVersion) (a newer Stator wrote it)"
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
}

/// A file's device and inode: whether a path still names the file once opened.
struct FileIdentity: Equatable {
    var device: UInt64
    var inode: UInt64

    /// The identity of what `path` names (a symlink itself, not its target); nil when it
    /// names nothing (errno says why).
    init?(path: String) {
        var status = stat()
        guard lstat(path, &status) == 0 else { return nil }
        device = UInt64(status.st_dev)
        inode = UInt64(status.st_ino)
    }
}
