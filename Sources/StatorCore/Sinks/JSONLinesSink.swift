import Glibc
import Synchronization

/// Configuration of the JSON-lines sink (`sinks.json`).
public struct JSONLinesConfiguration: Sendable {
    /// File to append to; `-` is standard output, empty disables the sink.
    public var path: String = "-"
    /// Start a new file once the current one reaches this size; 0 never rotates.
    public var rotateBytes: Int64 = 0
    /// Rotated files kept (`path.1` is the newest).
    public var keepFiles: Int = 5
    /// What each line holds: a SPEC section 3 object, or CloudWatch EMF objects.
    public var format: JSONLinesFormat = .json
    /// The CloudWatch namespace of `emf` objects.
    public var namespace: String = "Stator"

    public init(path: String = "-", rotateBytes: Int64 = 0, keepFiles: Int = 5) {
        self.path = path
        self.rotateBytes = rotateBytes
        self.keepFiles = keepFiles
    }
}

/// The objects the JSON-lines sink writes (`sinks.json.format`).
public enum JSONLinesFormat: String, Sendable {
    /// One SPEC section 3 object per series.
    case json
    /// CloudWatch Embedded Metric Format: objects the CloudWatch agent turns into metrics.
    case emf
}

/// Writes each batch as NDJSON with a single `write` call, so a reader that
/// tails the file never sees half a flush. Rotates by size; SIGHUP reopens.
///
/// A batch that cannot be written (missing directory, no permission, full disk) is
/// kept, up to `maxUnwrittenBytes`, and written before the next one once the file
/// can be opened and written again; a partly written batch is cut off again
/// (`ftruncate`), so the file never holds half a line. Beyond the bound the oldest
/// kept batches are dropped and their series counted in
/// `stator_series_dropped_total{sink="json",reason="unwritable"}`.
public final class JSONLinesSink: Sink {
    private struct FileState: ~Copyable {
        var fd: Int32 = -1
        var size: Int64 = 0
        /// Encoded batches not yet written, oldest first, and their series counts.
        var unwritten: [(bytes: [UInt8], series: Int)] = []
        var unwrittenBytes = 0
    }

    /// The largest encoding buffer kept between flushes (about 25,000 series' objects).
    static let keptEncodingBytes = 4 << 20

    public let name = "json"
    /// Encoded batches kept while the file cannot be written.
    public static let maxUnwrittenBytes = 64 << 20
    private let configuration: JSONLinesConfiguration
    private let metrics: SelfMetrics?
    private let file = PthreadLock(FileState())
    /// Where each batch is encoded (only `emit` uses it; taken before `file`): kept from one
    /// flush to the next, up to `keptEncodingBytes`, so that encoding writes into pages used
    /// before instead of a fresh allocation's, each first touched through a page fault, and the
    /// batch is written from it without a copy.
    private let encoding = PthreadLock(JSONWriter(capacity: 0))
    private let reopenRequested = Atomic<Bool>(false)

    public init(configuration: JSONLinesConfiguration, metrics: SelfMetrics? = nil) {
        self.configuration = configuration
        self.metrics = metrics
        metrics?.registerLabeled(SelfMetrics.seriesDropped("json", "unwritable"))
        if configuration.format == .emf {
            metrics?.registerLabeled(SelfMetrics.seriesDropped("json", "too_many_dimensions"))
            metrics?.registerLabeled(SelfMetrics.seriesDropped("json", "name_conflict"))
            metrics?.registerLabeled(SelfMetrics.seriesDropped("json", "too_large"))
        }
    }

    private var isStdout: Bool { configuration.path == "-" }

    public func emit(_ batch: FlushBatch) throws {
        guard batch.seriesCount > 0 || !batch.points.isEmpty || (!batch.events.isEmpty && configuration.format == .json) else {
            // SIGHUP still reopens the file: after logrotate's rename the new file appears
            // now, not at the next batch that has series.
            guard reopenRequested.load(ordering: .acquiring) else { return }
            let failure: SystemError? = file.withLock { state in
                guard closeIfReopenRequested(&state) else { return nil }
                do throws(SystemError) {
                    try open(&state)
                } catch {
                    return error
                }
                return nil
            }
            if let failure { throw failure }
            return
        }
        try encoding.withLock { w in
            // Emptied after each batch: a large one's buffer (a million series make about
            // 150 MB) is not kept until the next flush.
            defer { w.removeAll(keepingCapacityUpTo: Self.keptEncodingBytes) }
            w.reserveCapacity(64 + batch.seriesCount * 160)  // as `JSONLinesEncoder.encode` does
            switch configuration.format {
            case .json:
                JSONLinesEncoder.encode(batch, into: &w)
            case .emf:
                let skipped = EMFEncoder.encode(batch, namespace: configuration.namespace, into: &w)
                if skipped.tooManyDimensions > 0 {
                    metrics?.addLabeled(
                        SelfMetrics.seriesDropped("json", "too_many_dimensions"), UInt64(skipped.tooManyDimensions))
                }
                if skipped.nameConflicts > 0 {
                    metrics?.addLabeled(SelfMetrics.seriesDropped("json", "name_conflict"), UInt64(skipped.nameConflicts))
                }
                if skipped.tooLarge > 0 {
                    metrics?.addLabeled(SelfMetrics.seriesDropped("json", "too_large"), UInt64(skipped.tooLarge))
                }
            }
            try w.withBytes { bytes in try file.withLock { state in try emit(bytes, series: batch.seriesCount, &state) } }
        }
    }

    /// Closes the file when SIGHUP asked for a reopen since the last look (`reopen()`); the
    /// caller opens it again, by path.
    /// - Returns: whether it closed the file.
    private func closeIfReopenRequested(_ state: inout FileState) -> Bool {
        guard reopenRequested.exchange(false, ordering: .acquiringAndReleasing) else { return false }
        close(&state)
        return true
    }

    /// Writes a batch (after the kept ones, if any); keeps a copy of it when it cannot be written.
    private func emit(_ encoded: UnsafeRawBufferPointer, series: Int, _ state: inout FileState) throws(SystemError) {
        _ = closeIfReopenRequested(&state)  // the write below opens the file again
        if state.unwritten.isEmpty {
            // The usual case: written straight from the encoding buffer.
            let failure: SystemError?
            do throws(SystemError) {
                if state.fd < 0 { try open(&state) }
                failure = write(encoded, &state)
            } catch {
                failure = error
            }
            guard let failure else { return }
            state.unwritten.append((Array(encoded), series))
            state.unwrittenBytes += encoded.count
            throw failure
        }
        state.unwritten.append((Array(encoded), series))
        state.unwrittenBytes += encoded.count
        while state.unwrittenBytes > Self.maxUnwrittenBytes, state.unwritten.count > 1 {
            let dropped = state.unwritten.removeFirst()
            state.unwrittenBytes -= dropped.bytes.count
            metrics?.addLabeled(SelfMetrics.seriesDropped("json", "unwritable"), UInt64(dropped.series))
        }
        try writeUnwritten(&state)
    }

    /// Writes the kept batches, oldest first; stops at the first failure and keeps the rest.
    private func writeUnwritten(_ state: inout FileState) throws(SystemError) {
        if state.unwritten.isEmpty { return }
        if state.fd < 0 { try open(&state) }
        while let first = state.unwritten.first {
            if let failure = first.bytes.withUnsafeBytes({ write($0, &state) }) { throw failure }
            state.unwritten.removeFirst()
            state.unwrittenBytes -= first.bytes.count
            if state.fd < 0, !state.unwritten.isEmpty { try open(&state) }
        }
    }

    /// Writes one encoded batch to the open file, then rotates if it is due (leaving the file
    /// closed). On failure, cuts off what part of the batch got in and closes the file (it is
    /// opened again next time: the fault may clear).
    /// - Returns: the failure, or `nil`.
    ///
    /// The size before the write is read from the file itself, not remembered: an external
    /// `copytruncate` (logrotate) empties the file behind the sink's back, and cutting back
    /// to a remembered, larger size would fill the file with NUL bytes.
    private func write(_ bytes: UnsafeRawBufferPointer, _ state: inout FileState) -> SystemError? {
        let before = isStdout ? state.size : Self.fileSize(state.fd) ?? state.size
        do throws(SystemError) {
            try writeAll(state.fd, bytes)
        } catch {
            if !isStdout, let after = Self.fileSize(state.fd), after > before { _ = ftruncate(state.fd, off_t(before)) }
            close(&state)
            return error
        }
        state.size = before + Int64(bytes.count)
        if !isStdout, configuration.rotateBytes > 0, state.size >= configuration.rotateBytes {
            close(&state)
            rotate()
        }
        return nil
    }

    public func reopen() { reopenRequested.store(true, ordering: .releasing) }

    /// Makes a last attempt at what is kept, then closes the file.
    public func shutdown(until deadline: Double) {
        file.withLock { state in
            try? writeUnwritten(&state)
            if !state.unwritten.isEmpty {
                let series = state.unwritten.reduce(0) { $0 + $1.series }
                metrics?.addLabeled(SelfMetrics.seriesDropped("json", "unwritable"), UInt64(series))
            }
            close(&state)
        }
    }

    private func open(_ state: inout FileState) throws(SystemError) {
        if isStdout {
            state.fd = 1
            return
        }
        // Never through a symlink at the path (another user could point it at a file of
        // theirs, SPEC section 12); created 0640 at most, as every file Stator creates.
        let fd = Glibc.open(configuration.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o640)
        guard fd >= 0 else { throw SystemError(errno: errno, call: "open \(configuration.path)") }
        state.fd = fd
        state.size = Self.fileSize(fd) ?? 0
    }

    /// The file's size now, or `nil` when `fstat` fails.
    private static func fileSize(_ fd: Int32) -> Int64? {
        var st = stat()
        return fstat(fd, &st) == 0 ? Int64(st.st_size) : nil
    }

    private func close(_ state: inout FileState) {
        if state.fd > 2 { Glibc.close(state.fd) }
        state.fd = -1
        state.size = 0
    }

    /// `path` -> `path.1` -> ... -> `path.keep_files`; the oldest is removed.
    private func rotate() {
        let path = configuration.path
        let keep = configuration.keepFiles
        if keep <= 0 {
            unlink(path)
            return
        }
        unlink("\(path).\(keep)")
        if keep > 1 {
            for n in stride(from: keep - 1, through: 1, by: -1) { rename("\(path).\(n)", "\(path).\(n + 1)") }
        }
        rename(path, "\(path).1")
    }

    /// One `write` call for the whole flush; loops only if the kernel takes part of it.
    private func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress.map { $0 + offset }, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError(errno: errno, call: "write \(configuration.path)")
            }
            offset += n
        }
    }
}
