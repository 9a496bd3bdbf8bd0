import Glibc

/// Requests waiting to be sent, oldest first, bounded by `max_spool_bytes`.
///
/// With a spool directory every request is a file there, written and fsynced before its
/// first attempt and named by a sequence number so that order survives a restart; its body
/// then lives on disk only (memory does not grow with the spool), and the sender reads the
/// head's body back when it sends it. A request that cannot be spooled (disk full), and
/// every request without a spool directory, is kept in memory. Either way, what no longer
/// fits is dropped oldest first and reported to the caller, with two exceptions:
/// - a request larger than the whole bound is dropped alone: it could never fit, and making
///   room for it would only empty the queue;
/// - the request being sent (handed out by `waitForHead`, until `removeHead` or `release`)
///   is never dropped: it would otherwise count as dropped and then as sent. While it is in
///   flight the queue may exceed the bound by that request; `release` after a failed attempt
///   trims the excess, oldest (that request) first.
final class PushQueue: @unchecked Sendable {
    // SAFETY: every stored property but the constants is touched only with `lock` held.
    private let lock = ConditionLock()
    private var entries: [Entry] = []
    private var head = 0
    private var nextID: UInt64 = 1
    private(set) var bytes: Int64 = 0
    private var closed = false
    /// The head's body read back from the spool, kept while it is retried.
    private var loadedHead: (id: UInt64, body: [UInt8])?
    /// The request being sent: always the head, never evicted.
    private var inFlight: UInt64?
    let spoolDirectory: String?
    let maxBytes: Int64
    /// Series of the requests found over `maxBytes` in the spool at start and removed, oldest first.
    let trimmedAtStart: Int
    /// The push's target (its URL without user information), recorded with every spooled request.
    let target: String
    /// Series of the spooled requests found at start for another target (the push's `url`
    /// changed since they were written) and removed: sending them to the new target, with
    /// its credentials, would deliver them where they were never meant to go.
    let retargetedAtStart: Int
    private let logger: Logger

    /// A queued request; `memory` holds its body unless it is in the spool.
    private struct Entry {
        var id: UInt64
        var format: PushFormat
        var series: Int
        var size: Int64
        var memory: [UInt8]?
    }

    /// Opens the queue; with a spool directory, takes over the requests a previous run left
    /// there for `target` (their headers only: bodies stay on disk; each keeps the format it
    /// was encoded in), removing those written for another target (`retargetedAtStart`) and
    /// then the oldest while they exceed `maxBytes` (`trimmedAtStart`).
    /// - Throws: `SystemError` when the directory cannot be created or read.
    init(spoolDirectory: String?, maxBytes: Int64, target: String = "", logger: Logger) throws(SystemError) {
        self.spoolDirectory = spoolDirectory
        self.maxBytes = maxBytes
        self.target = target
        self.logger = logger
        guard let dir = spoolDirectory else {
            trimmedAtStart = 0
            retargetedAtStart = 0
            return
        }
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
        var retargeted = 0
        var retargetedRequests = 0
        for (id, name) in found.sorted(by: { $0.0 < $1.0 }) {
            guard let header = Self.readHeader("\(dir)/\(name)") else {
                logger.warning("unreadable spool file removed", metadata: [("file", "\(dir)/\(name)")])
                unlink("\(dir)/\(name)")
                continue
            }
            // A file from before targets were recorded (version 1) was written by this push.
            if let written = header.target, written != target {
                retargeted += header.series
                retargetedRequests += 1
                unlink("\(dir)/\(name)")
                continue
            }
            entries.append(Entry(id: id, format: header.format, series: header.series, size: header.size, memory: nil))
            bytes += header.size
            nextID = max(nextID, id + 1)
        }
        var trimmed = 0
        var trimmedRequests = 0
        while head < entries.count, bytes > maxBytes {
            trimmed += entries[head].series
            trimmedRequests += 1
            bytes -= entries[head].size
            unlink(Self.path(dir, entries[head].id))
            head += 1
        }
        trimmedAtStart = trimmed
        retargetedAtStart = retargeted
        compact()
        if retargetedRequests > 0 {
            logger.error(
                "spooled requests written for another url removed (the push's url changed)",
                metadata: [("requests", "\(retargetedRequests)"), ("series", "\(retargeted)")])
        }
        if trimmedRequests > 0 {
            logger.error(
                "spool over max_spool_bytes at start: oldest requests removed",
                metadata: [("requests", "\(trimmedRequests)"), ("series", "\(trimmed)")])
        }
        if head < entries.count {
            logger.info(
                "resuming spooled push requests", metadata: [("count", "\(entries.count - head)"), ("bytes", "\(bytes)")])
        }
    }

    /// Number of requests waiting.
    var count: Int { lock.withLock { entries.count - head } }

    /// Queued bytes (`stator_push_queue_bytes`).
    var queuedBytes: Int64 { lock.withLock { bytes } }

    /// Bytes of request bodies held in memory: requests not spooled, and the head read back.
    var memoryBytes: Int {
        lock.withLock {
            entries[head...].reduce(0) { $0 + ($1.memory?.count ?? 0) } + (loadedHead?.body.count ?? 0)
        }
    }

    /// Series a call to `append` dropped, by reason.
    struct Dropped: Equatable {
        /// Older requests dropped to make room (`queue_full`).
        var queueFull = 0
        /// The new request itself, larger than the whole bound (`too_large`).
        var tooLarge = 0
    }

    /// Adds a request at the tail, spooling it first when there is a directory.
    /// - Returns: series dropped to stay within `max_spool_bytes`: older requests (oldest
    ///   first, never the one in flight), or the new request alone when it is larger than the
    ///   whole bound.
    func append(_ request: PushRequest) -> Dropped {
        let size = Int64(request.body.count)
        guard size <= maxBytes else { return Dropped(tooLarge: request.series) }
        var dropped = Dropped()
        var spoolFailed = false
        lock.withLock {
            while bytes + size > maxBytes, let victim = evictable() {
                dropped.queueFull += evict(at: victim)
            }
            let id = nextID
            nextID += 1
            let spooled = spoolDirectory.map { Self.spool(request, to: $0, id: id, target: target) } ?? false
            spoolFailed = spoolDirectory != nil && !spooled
            // Not spooled (no directory, or the write failed): kept in memory rather than lost.
            entries.append(
                Entry(id: id, format: request.format, series: request.series, size: size, memory: spooled ? nil : request.body))
            bytes += size
            compact()
            lock.broadcast()
        }
        if spoolFailed {
            logger.error(
                "could not write a push request to the spool; keeping it in memory",
                metadata: [("spool_dir", spoolDirectory ?? ""), ("error", String(cString: strerror(errno)))])
        }
        return dropped
    }

    /// The oldest request that may be dropped: the head, or the one after it while the head
    /// is in flight. Called with `lock` held.
    private func evictable() -> Int? {
        if head < entries.count, entries[head].id != inFlight { return head }
        return head + 1 < entries.count ? head + 1 : nil
    }

    /// Drops the request at `index` (the head, or the one after an in-flight head).
    /// Called with `lock` held.
    /// - Returns: its series.
    private func evict(at index: Int) -> Int {
        let old = entries[index]
        bytes -= old.size
        removeFile(old.id)
        if loadedHead?.id == old.id { loadedHead = nil }
        // The in-flight head moves into the freed slot: the queue keeps its order in O(1).
        if index != head { entries[index] = entries[head] }
        head += 1
        return old.series
    }

    /// Ends a failed attempt to send request `id`: it may be dropped again, and the queue
    /// goes back within its bound (oldest first) if it grew past it meanwhile.
    /// - Returns: series dropped to get back within the bound.
    func release(_ id: UInt64) -> Int {
        lock.withLock {
            if inFlight == id { inFlight = nil }
            var dropped = 0
            while bytes > maxBytes, let victim = evictable() { dropped += evict(at: victim) }
            compact()
            return dropped
        }
    }

    /// Waits until a request is at the head (or `deadline`, monotonic seconds, or `close()`),
    /// and returns it with its body, read back from the spool when it is there. A spooled
    /// request whose file can no longer be read is dropped and counted in `unreadable`.
    func waitForHead(until deadline: Double, unreadable: (Int) -> Void = { _ in }) -> (id: UInt64, request: PushRequest)? {
        while true {
            let waiting: Entry? = lock.withLock {
                while head == entries.count && !closed {
                    if WallClock.monotonicSeconds() >= deadline { return nil }
                    lock.wait(until: deadline)
                }
                guard head < entries.count else { return nil }
                // Marked under the same lock that picked it: no `append` can drop it from now
                // on, not even while its body is read back from the spool below.
                inFlight = entries[head].id
                return entries[head]
            }
            guard let entry = waiting else { return nil }
            if let body = entry.memory ?? lock.withLock({ loadedHead?.id == entry.id ? loadedHead?.body : nil }) {
                return (entry.id, PushRequest(format: entry.format, body: body, series: entry.series))
            }
            // Read outside the lock: a flush appending meanwhile does not wait for the disk.
            if let dir = spoolDirectory, let stored = Self.load(Self.path(dir, entry.id)) {
                lock.withLock { loadedHead = (entry.id, stored.body) }
                return (entry.id, PushRequest(format: entry.format, body: stored.body, series: entry.series))
            }
            logger.error("unreadable spool file dropped", metadata: [("id", "\(entry.id)"), ("series", "\(entry.series)")])
            removeHead(entry.id)
            unreadable(entry.series)
        }
    }

    /// Removes the head if it is still request `id` (sent, or rejected for good).
    func removeHead(_ id: UInt64) {
        lock.withLock {
            if inFlight == id { inFlight = nil }
            guard head < entries.count, entries[head].id == id else { return }
            bytes -= entries[head].size
            removeFile(id)
            if loadedHead?.id == id { loadedHead = nil }
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

    /// Series of the requests held in memory only (no spool, or it could not be written):
    /// what exiting now loses.
    var unspooledSeries: Int {
        lock.withLock { entries[head...].reduce(0) { $0 + ($1.memory != nil ? $1.series : 0) } }
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

    // File layout: "STATOR-PUSH 2 <format> <series> <target>\n" then the body. Version 1
    // files ("STATOR-PUSH 1 <format> <series>\n") are still read.
    private static func spool(_ request: PushRequest, to dir: String, id: UInt64, target: String) -> Bool {
        let final = path(dir, id)
        let temporary = final + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { return false }
        let header = Array("STATOR-PUSH 2 \(request.format.rawValue) \(request.series) \(target)\n".utf8)
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

    /// What a spool file's first line says, and the size of the body after it.
    private struct Header {
        var format: PushFormat
        var series: Int
        /// The target it was written for; nil in a version 1 file.
        var target: String?
        var size: Int64
    }

    /// Reads a spool file's header line only (the body stays on disk).
    private static func readHeader(_ path: String) -> Header? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return nil }
        var start = [UInt8](repeating: 0, count: 128)
        let n = start.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard n > 0, let header = parseHeader(start[0..<n]) else { return nil }
        return Header(
            format: header.format, series: header.series, target: header.target,
            size: Int64(info.st_size) - Int64(header.length))
    }

    /// Parses "STATOR-PUSH 2 <format> <series> <target>\n" (or version 1, without the target)
    /// at the start of `bytes`; `length` includes the newline.
    private static func parseHeader(_ bytes: ArraySlice<UInt8>)
        -> (format: PushFormat, series: Int, target: String?, length: Int)?
    {
        guard let newline = bytes.firstIndex(of: 0x0A) else { return nil }
        let fields = String(decoding: bytes[..<newline], as: UTF8.self).split(
            separator: " ", omittingEmptySubsequences: false)
        guard fields.count >= 4, fields[0] == "STATOR-PUSH",
            (fields[1] == "1" && fields.count == 4) || (fields[1] == "2" && fields.count == 5),
            let format = PushFormat(rawValue: String(fields[2])), let series = Int(fields[3]), series >= 0
        else { return nil }
        return (format, series, fields.count == 5 ? String(fields[4]) : nil, newline - bytes.startIndex + 1)
    }

    private static func load(_ path: String) -> PushRequest? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
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
        guard let header = parseHeader(data[...]) else { return nil }
        return PushRequest(format: header.format, body: Array(data[header.length...]), series: header.series)
    }
}
