import Dispatch
import Glibc

/// The database file removed or replaced under a running Stator (`rm rollups.db*`, a file
/// moved over it): the connections still read the file they opened, deleted or not, so
/// its rows are copied to a new file at the path before they are closed, and history is
/// never lost without a word (SPEC: noticed at the next flush, logged, counted).
extension RollupStore {
    /// What `recreateIfMoved` found.
    enum FileChange: Equatable {
        /// Nothing was at the path any more.
        case removed
        /// Another file was there: it is kept, renamed to `setAside` (alone: a `-wal` or `-shm`
        /// beside the path is the closed connections').
        case replaced(setAside: String)
        /// The file could not be opened again at the last try; now it is.
        case reopened
    }

    /// Checks that the path still names the file the connections have open (its device and
    /// inode). If not, copies what they read (`VACUUM INTO` a new file beside it, created
    /// 0640 without following a symlink), closes them, sets aside a file that took the path,
    /// moves the copy to the path and opens it.
    /// - Returns: what was found, nil when the file is in place.
    /// - Throws: when the copy or the new file failed; the connections then stay as they were
    ///   (or closed, if only the opening failed) and the next flush tries again.
    func recreateIfMoved(now: EpochMillis = WallClock.nowMillis()) throws(SQLiteError) -> FileChange? {
        let copy = path + ".recovered"
        guard let identity = connections?.identity else {
            readLock.lock()
            defer { readLock.unlock() }
            if FileIdentity(path: path) == nil { rename(copy, path) }  // the copy a failed attempt made
            try reopen()
            return .reopened
        }
        let found = FileIdentity(path: path)
        guard found != identity else { return nil }
        try copyOpenFile(to: copy)
        // The old connections close before any opens the path: the last to close deletes the
        // `-wal` and `-shm` files by name, which must not be the new file's. (No reference to
        // them is held past this point.)
        checkpoints.sync {}
        readLock.lock()
        defer { readLock.unlock() }
        connections = nil
        var change = FileChange.removed
        if found != nil {
            let aside = "\(path).replaced-\(now / 1000)"
            guard rename(path, aside) == 0 else {
                throw SQLiteError(code: 0, message: "\(path) cannot be set aside: \(String(cString: strerror(errno)))")
            }
            change = .replaced(setAside: aside)
        }
        // What the closed connections left beside the path (their log and its index) is stale,
        // the copy holding everything: left there, SQLite would read it as the new file's log.
        for suffix in ["-wal", "-shm"] { unlink(path + suffix) }
        guard rename(copy, path) == 0 else {
            throw SQLiteError(code: 0, message: "\(copy) cannot be moved to \(path): \(String(cString: strerror(errno)))")
        }
        try reopen()
        return change
    }

    /// Copies the file the connections have open, as the last commit left it, to `copy`.
    private func copyOpenFile(to copy: String) throws(SQLiteError) {
        unlink(copy)  // a copy a failed attempt left
        let fd = open(copy, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw SQLiteError(code: 0, message: "\(copy): \(String(cString: strerror(errno)))") }
        close(fd)
        do throws(SQLiteError) {
            let vacuum = try live().writer.prepare("VACUUM INTO ?1")
            vacuum.bind(1, copy)
            try vacuum.step()
        } catch {
            unlink(copy)
            throw error
        }
    }

    /// Opens the connections again at the path (under `readLock`).
    private func reopen() throws(SQLiteError) {
        connections = try RollupConnections(path: path, by: by)
    }
}
