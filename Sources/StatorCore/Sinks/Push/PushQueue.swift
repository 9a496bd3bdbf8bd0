import Glibc

/// Requests waiting to be sent, oldest first, bounded by `max_spool_bytes`.
///
/// With a spool directory every request is a file there, written and fsynced
/// before its first attempt and named by a sequence number so that order
/// survives a restart; without one the queue lives in memory. Either way, what
/// no longer fits is dropped oldest first and reported to the caller.
final class PushQueue: @unchecked Sendable {
    // SAFETY: every stored property but the constants is touched only with `lock` held.
    private let lock = ConditionLock()
    private var entries: [(id: UInt64, request: PushRequest)] = []
    private var head = 0
    private var nextID: UInt64 = 1
    private(set) var bytes: Int64 = 0
    private var closed = false
    let spoolDirectory: String?
    let maxBytes: Int64
    private let logger: Logger

    /// Opens the queue; with a spool directory, loads the requests a previous run left there.
    /// - Throws: `SystemError` when the directory cannot be created or read.
    init(spoolDirectory: String?, maxBytes: Int64, logger: Logger) throws(SystemError) {
        self.spoolDirectory = spoolDirectory
        self.maxBytes = maxBytes
        self.logger = logger
        guard let dir = spoolDirectory else { return }
        if mkdir(dir, 0o700) != 0 && errno != EEXIST { throw SystemError(errno: errno, call: "mkdir \(dir)") }
        guard let handle = opendir(dir) else { throw SystemError(errno: errno, call: "opendir \(dir)") }
        var found: [(UInt64, String)] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasSuffix(".tmp") { unlink("\(dir)/\(name)") }  // a write cut short by a crash
            guard name.hasSuffix(".req"), let id = UInt64(name.dropLast(4)) else { continue }
            found.append((id, name))
        }
        closedir(handle)
        for (id, name) in found.sorted(by: { $0.0 < $1.0 }) {
            guard let request = Self.load("\(dir)/\(name)") else {
                logger.warning("unreadable spool file removed", metadata: [("file", "\(dir)/\(name)")])
                unlink("\(dir)/\(name)")
                continue
            }
            entries.append((id, request))
            bytes += Int64(request.body.count)
            nextID = max(nextID, id + 1)
        }
        if !entries.isEmpty {
            logger.info("resuming spooled push requests", metadata: [("count", "\(entries.count)"), ("bytes", "\(bytes)")])
        }
    }

    /// Number of requests waiting.
    var count: Int { lock.withLock { entries.count - head } }

    /// Queued bytes (`stator_push_queue_bytes`).
    var queuedBytes: Int64 { lock.withLock { bytes } }

    /// Adds a request at the tail, spooling it first when there is a directory.
    /// - Returns: series dropped (oldest first) to stay within `max_spool_bytes`.
    func append(_ request: PushRequest) -> Int {
        let size = Int64(request.body.count)
        var droppedSeries = 0
        var spoolFailed = false
        lock.withLock {
            while head < entries.count, bytes + size > maxBytes {
                let old = entries[head]
                droppedSeries += old.request.series
                bytes -= Int64(old.request.body.count)
                removeFile(old.id)
                head += 1
            }
            if size > maxBytes {
                droppedSeries += request.series
                return
            }
            let id = nextID
            nextID += 1
            if let dir = spoolDirectory, !Self.spool(request, to: dir, id: id) {
                spoolFailed = true  // keep it in memory rather than lose it
            }
            entries.append((id, request))
            bytes += size
            compact()
            lock.broadcast()
        }
        if spoolFailed {
            logger.error(
                "could not write a push request to the spool; keeping it in memory",
                metadata: [("spool_dir", spoolDirectory ?? ""), ("error", String(cString: strerror(errno)))])
        }
        return droppedSeries
    }

    /// Waits until a request is at the head (or `deadline`, monotonic seconds, or `close()`).
    func waitForHead(until deadline: Double) -> (id: UInt64, request: PushRequest)? {
        lock.withLock {
            while head == entries.count && !closed {
                if WallClock.monotonicSeconds() >= deadline { return nil }
                lock.wait(until: deadline)
            }
            return head < entries.count ? entries[head] : nil
        }
    }

    /// Removes the head if it is still request `id` (sent, or rejected for good).
    func removeHead(_ id: UInt64) {
        lock.withLock {
            guard head < entries.count, entries[head].id == id else { return }
            bytes -= Int64(entries[head].request.body.count)
            removeFile(id)
            head += 1
            compact()
        }
    }

    /// Wakes waiters; used at shutdown.
    func close() {
        lock.withLock {
            closed = true
            lock.broadcast()
        }
    }

    /// Sleeps until `deadline`; with `wakeOnClose`, `close()` ends the sleep early.
    func sleep(until deadline: Double, wakeOnClose: Bool) {
        lock.withLock {
            while !(wakeOnClose && closed), WallClock.monotonicSeconds() < deadline { lock.wait(until: deadline) }
        }
    }

    /// Requests left in memory only (no spool): what a shutdown would lose.
    var unspooledSeries: Int {
        lock.withLock { spoolDirectory == nil ? entries[head...].reduce(0) { $0 + $1.request.series } : 0 }
    }

    private func compact() {
        if head > 64 && head * 2 > entries.count {
            entries.removeFirst(head)
            head = 0
        }
    }

    private func path(_ id: UInt64) -> String? { spoolDirectory.map { Self.path($0, id) } }

    /// `<dir>/<id, 20 digits>.req`: names sort in sending order.
    private static func path(_ dir: String, _ id: UInt64) -> String {
        let digits = String(id)
        return "\(dir)/\(String(repeating: "0", count: max(0, 20 - digits.count)))\(digits).req"
    }

    private func removeFile(_ id: UInt64) {
        if let p = path(id) { unlink(p) }
    }

    // File layout: "STATOR-PUSH 1 <format> <series>\n" then the body.
    private static func spool(_ request: PushRequest, to dir: String, id: UInt64) -> Bool {
        let final = path(dir, id)
        let temporary = final + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        let header = Array("STATOR-PUSH 1 \(request.format.rawValue) \(request.series)\n".utf8)
        var ok = writeAll(fd, header) && writeAll(fd, request.body) && fsync(fd) == 0
        Glibc.close(fd)
        ok = ok && rename(temporary, final) == 0
        if !ok {
            unlink(temporary)
            return false
        }
        let dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirfd >= 0 {
            fsync(dirfd)  // the rename itself survives a crash
            Glibc.close(dirfd)
        }
        return true
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress.map { $0 + offset }, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }

    private static func load(_ path: String) -> PushRequest? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            data.append(contentsOf: chunk[0..<n])
        }
        guard let newline = data.firstIndex(of: 0x0A) else { return nil }
        let fields = String(decoding: data[..<newline], as: UTF8.self).split(separator: " ")
        guard fields.count == 4, fields[0] == "STATOR-PUSH", fields[1] == "1",
            let format = PushFormat(rawValue: String(fields[2])), let series = Int(fields[3])
        else { return nil }
        return PushRequest(format: format, body: Array(data[(newline + 1)...]), series: series)
    }
}
