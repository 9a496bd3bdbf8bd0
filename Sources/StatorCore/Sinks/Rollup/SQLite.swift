import CStatorSys

/// An SQLite failure: the library's message and result code.
struct SQLiteError: Error, Sendable, CustomStringConvertible {
    let code: Int32
    let message: String
    var description: String { message }
}

/// A connection to an SQLite database, through the system's libsqlite3 loaded at run time
/// (`CStatorSys_sqlite_load`). Not thread-safe: one thread uses a connection at a time
/// (the roll-up sink's writer, or the API's reader under its lock).
final class SQLiteDatabase {
    // SAFETY: a valid connection from open until deinit closes it; never shared between threads at once.
    private let db: OpaquePointer
    let path: String

    static let openReadOnly: Int32 = 0x0000_0001
    static let openReadWrite: Int32 = 0x0000_0002
    static let openCreate: Int32 = 0x0000_0004
    /// SQLITE_OPEN_NOMUTEX: each connection is used by one thread at a time (see the type).
    static let openNoMutex: Int32 = 0x0000_8000
    static let ok: Int32 = 0
    static let busy: Int32 = 5
    static let interrupted: Int32 = 9
    /// How long a statement waits for another connection's lock before it fails (SQLITE_BUSY).
    static let busyTimeoutMillis: Int32 = 5000
    static let row: Int32 = 100
    static let done: Int32 = 101

    /// Loads the library (once).
    /// - Throws: `SQLiteError` saying why libsqlite3.so.0 could not be loaded.
    static func loadLibrary() throws(SQLiteError) {
        var error = [CChar](repeating: 0, count: 256)
        guard CStatorSys_sqlite_load(&error, error.count) == 1 else {
            throw SQLiteError(
                code: -1, message: String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
    }

    /// The library's version (after `loadLibrary`).
    static var libraryVersion: String { String(cString: CStatorSys_sqlite3_libversion()) }

    /// Opens (or with `openCreate`, creates) the database at `path`.
    init(path: String, flags: Int32) throws(SQLiteError) {
        try Self.loadLibrary()
        var handle: OpaquePointer?
        let rc = CStatorSys_sqlite3_open_v2(path, &handle, flags | Self.openNoMutex)
        guard rc == Self.ok, let handle else {
            let message = handle.map { String(cString: CStatorSys_sqlite3_errmsg($0)) } ?? "out of memory"
            if let handle { CStatorSys_sqlite3_close_v2(handle) }
            throw SQLiteError(code: rc, message: message)
        }
        db = handle
        self.path = path
        CStatorSys_sqlite3_busy_timeout(db, Self.busyTimeoutMillis)
    }

    /// Runs `body` with a time limit: its statements stop with SQLITE_INTERRUPT past
    /// `deadline` (`WallClock.monotonicSeconds`), and wait for a lock only as long as is left.
    func withDeadline<R>(_ deadline: Double, _ body: () throws(SQLiteError) -> R) throws(SQLiteError) -> R {
        // SAFETY: the handler reads `slot` while a statement of `body` runs; the watch is removed
        // before the slot is freed.
        let slot = UnsafeMutablePointer<Double>.allocate(capacity: 1)
        slot.initialize(to: deadline)
        let left = (deadline - WallClock.monotonicSeconds()) * 1000
        CStatorSys_sqlite3_busy_timeout(db, Int32(Swift.max(1, Swift.min(Double(Self.busyTimeoutMillis), left))))
        CStatorSys_sqlite3_watch_deadline(db, slot)
        defer {
            CStatorSys_sqlite3_watch_deadline(db, nil)
            CStatorSys_sqlite3_busy_timeout(db, Self.busyTimeoutMillis)
            slot.deallocate()
        }
        return try body()
    }

    deinit { CStatorSys_sqlite3_close_v2(db) }

    private func failure(_ rc: Int32) -> SQLiteError {
        SQLiteError(code: rc, message: String(cString: CStatorSys_sqlite3_errmsg(db)))
    }

    /// Runs SQL without results (one or several statements).
    func execute(_ sql: String) throws(SQLiteError) {
        let rc = CStatorSys_sqlite3_exec(db, sql)
        guard rc == Self.ok else { throw failure(rc) }
    }

    func prepare(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        var statement: OpaquePointer?
        let rc = CStatorSys_sqlite3_prepare_v2(db, sql, &statement)
        guard rc == Self.ok, let statement else { throw failure(rc) }
        return SQLiteStatement(statement, database: self)
    }

    fileprivate func error(_ rc: Int32) -> SQLiteError { failure(rc) }
}

/// A prepared statement: bind, step through the rows, reset to run it again.
final class SQLiteStatement {
    // SAFETY: valid from prepare until deinit finalizes it; its database outlives it (held).
    private let statement: OpaquePointer
    private let database: SQLiteDatabase

    fileprivate init(_ statement: OpaquePointer, database: SQLiteDatabase) {
        self.statement = statement
        self.database = database
    }

    deinit { CStatorSys_sqlite3_finalize(statement) }

    /// Binds parameter `index` (from 1): text, a number, or NULL.
    func bind(_ index: Int32, _ value: String?) {
        guard var text = value else {
            CStatorSys_sqlite3_bind_null(statement, index)
            return
        }
        guard !text.isEmpty else {
            CStatorSys_sqlite3_bind_text(statement, index, "", 0)  // a NULL pointer would bind NULL
            return
        }
        text.withUTF8 { bytes in
            bytes.withMemoryRebound(to: CChar.self) { chars in
                _ = CStatorSys_sqlite3_bind_text(statement, index, chars.baseAddress, Int32(chars.count))
            }
        }
    }

    func bind(_ index: Int32, _ value: Double?) {
        if let value {
            CStatorSys_sqlite3_bind_double(statement, index, value)
        } else {
            CStatorSys_sqlite3_bind_null(statement, index)
        }
    }

    func bind(_ index: Int32, _ value: Int64) { CStatorSys_sqlite3_bind_int64(statement, index, value) }

    /// Binds bytes as a blob (copied by SQLite).
    func bind(_ index: Int32, blob: [UInt8]) {
        // A NULL pointer would bind NULL: an empty blob points at a byte of its own.
        (blob.isEmpty ? [0] : blob).withUnsafeBytes { bytes in
            _ = CStatorSys_sqlite3_bind_blob(statement, index, bytes.baseAddress, Int32(blob.count))
        }
    }

    /// Runs to the next row.
    /// - Returns: whether there is a row (false when done).
    @discardableResult
    func step() throws(SQLiteError) -> Bool {
        let rc = CStatorSys_sqlite3_step(statement)
        if rc == SQLiteDatabase.row { return true }
        if rc == SQLiteDatabase.done { return false }
        let error = database.error(rc)
        CStatorSys_sqlite3_reset(statement)
        throw error
    }

    /// Makes the statement ready to run again (bindings stay).
    func reset() { CStatorSys_sqlite3_reset(statement) }

    /// Column `index` (from 0) of the current row; nil for NULL.
    func double(_ index: Int32) -> Double? {
        CStatorSys_sqlite3_column_type(statement, index) == 5 ? nil : CStatorSys_sqlite3_column_double(statement, index)
    }

    func int64(_ index: Int32) -> Int64 { CStatorSys_sqlite3_column_int64(statement, index) }

    /// Column `index` as bytes (empty for NULL).
    func blob(_ index: Int32) -> [UInt8] {
        var length: Int32 = 0
        guard let bytes = CStatorSys_sqlite3_column_blob(statement, index, &length), length > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: bytes, count: Int(length)))
    }

    func text(_ index: Int32) -> String {
        var length: Int32 = 0
        guard let bytes = CStatorSys_sqlite3_column_text(statement, index, &length) else { return "" }
        return String(decoding: UnsafeBufferPointer(start: bytes, count: Int(length)), as: UTF8.self)
    }
}
