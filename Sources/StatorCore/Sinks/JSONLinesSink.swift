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

    public init(path: String = "-", rotateBytes: Int64 = 0, keepFiles: Int = 5) {
        self.path = path
        self.rotateBytes = rotateBytes
        self.keepFiles = keepFiles
    }
}

/// Writes each batch as NDJSON with a single `write` call, so a reader that
/// tails the file never sees half a flush. Rotates by size; SIGHUP reopens.
public final class JSONLinesSink: Sink {
    private struct FileState {
        var fd: Int32 = -1
        var size: Int64 = 0
    }

    public let name = "json"
    private let configuration: JSONLinesConfiguration
    private let file = PthreadLock(FileState())
    private let reopenRequested = Atomic<Bool>(false)

    public init(configuration: JSONLinesConfiguration) {
        self.configuration = configuration
    }

    private var isStdout: Bool { configuration.path == "-" }

    public func emit(_ batch: FlushBatch) throws {
        guard batch.seriesCount > 0 else { return }
        let bytes = JSONLinesEncoder.encode(batch)
        try file.withLock { state in
            if reopenRequested.exchange(false, ordering: .acquiringAndReleasing) { close(&state) }
            if state.fd < 0 { try open(&state) }
            do throws(SystemError) {
                try writeAll(state.fd, bytes)
            } catch {
                close(&state)  // reopen on the next batch: the fault may clear
                throw error
            }
            state.size += Int64(bytes.count)
            if !isStdout, configuration.rotateBytes > 0, state.size >= configuration.rotateBytes {
                close(&state)
                rotate()
            }
        }
    }

    public func reopen() { reopenRequested.store(true, ordering: .releasing) }

    public func shutdown() { file.withLock { close(&$0) } }

    private func open(_ state: inout FileState) throws(SystemError) {
        if isStdout {
            state.fd = 1
            return
        }
        let fd = Glibc.open(configuration.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SystemError(errno: errno, call: "open \(configuration.path)") }
        var st = stat()
        fstat(fd, &st)
        state.fd = fd
        state.size = Int64(st.st_size)
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
    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { buf in
                Glibc.write(fd, buf.baseAddress.map { $0 + offset }, buf.count - offset)
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError(errno: errno, call: "write \(configuration.path)")
            }
            offset += n
        }
    }
}
