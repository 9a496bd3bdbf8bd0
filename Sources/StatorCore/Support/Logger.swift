import Glibc

/// A swift-log-shaped logger that writes JSON lines to standard error.
///
/// A `Logger` is a value passed into each component's `init`; it is never global.
/// Messages are `@autoclosure`s, so a message below the level costs nothing.
public struct Logger: Sendable {
    /// Severity, lowest first.
    public enum Level: Int, Sendable, Comparable, CaseIterable {
        case trace, debug, info, notice, warning, error, critical

        /// The name used in configuration and in log lines.
        public var name: String {
            switch self {
            case .trace: "trace"
            case .debug: "debug"
            case .info: "info"
            case .notice: "notice"
            case .warning: "warning"
            case .error: "error"
            case .critical: "critical"
            }
        }

        /// Parses a level name.
        public init?(name: String) {
            guard let level = Level.allCases.first(where: { $0.name == name }) else { return nil }
            self = level
        }

        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
    }

    /// Where lines go; one lock so concurrent lines never interleave.
    public final class Output: Sendable {
        private let fd: PthreadLock<Int32>

        /// Creates an output writing to file descriptor `fd` (default: standard error).
        public init(fd: Int32 = 2) { self.fd = PthreadLock(fd) }

        func write(_ bytes: [UInt8]) {
            fd.withLock { fd in
                bytes.withUnsafeBytes { buf in
                    guard let base = buf.baseAddress else { return }
                    var offset = 0
                    while offset < buf.count {
                        let n = Glibc.write(fd, base + offset, buf.count - offset)
                        if n < 0 && errno == EINTR { continue }
                        if n <= 0 { return }
                        offset += n
                    }
                }
            }
        }
    }

    /// The component name, e.g. `stator.receive`.
    public var label: String
    /// Messages below this level are not formatted or written.
    public var level: Level
    /// Pairs written on every line (after the message's own), e.g. the push a line is about.
    public var metadata: [(String, String)] = []
    let output: Output

    /// Creates a logger.
    public init(label: String, level: Level = .info, output: Output = Output()) {
        self.label = label
        self.level = level
        self.output = output
    }

    /// A logger for a sub-component, sharing level and output.
    public func child(_ label: String) -> Logger {
        var child = Logger(label: label, level: level, output: output)
        child.metadata = metadata
        return child
    }

    /// This logger with `pairs` added to every line it writes.
    public func with(_ pairs: (String, String)...) -> Logger {
        var logger = self
        logger.metadata += pairs
        return logger
    }

    /// Writes one JSON line if `level` is enabled.
    /// - Parameters:
    ///   - level: the severity.
    ///   - message: the message, evaluated only when written.
    ///   - metadata: dotted lowercase keys with string values.
    public func log(
        _ level: Level, _ message: @autoclosure () -> String,
        metadata: @autoclosure () -> [(String, String)] = []
    ) {
        guard level >= self.level else { return }
        var w = JSONWriter(capacity: 160)
        w.raw("{\"ts\":\"")
        w.text(WallClock.rfc3339(WallClock.nowMillis()))
        w.raw("\",\"level\":")
        w.string(level.name)
        w.raw(",\"logger\":")
        w.string(label)
        w.raw(",\"msg\":")
        w.string(message())
        for (key, value) in metadata() + self.metadata {
            w.raw(",")
            w.string(key)
            w.raw(":")
            w.string(value)
        }
        w.raw("}\n")
        output.write(w.bytes)
    }

    public func info(_ message: @autoclosure () -> String, metadata: @autoclosure () -> [(String, String)] = []) {
        log(.info, message(), metadata: metadata())
    }

    public func warning(_ message: @autoclosure () -> String, metadata: @autoclosure () -> [(String, String)] = []) {
        log(.warning, message(), metadata: metadata())
    }

    public func error(_ message: @autoclosure () -> String, metadata: @autoclosure () -> [(String, String)] = []) {
        log(.error, message(), metadata: metadata())
    }

    public func debug(_ message: @autoclosure () -> String, metadata: @autoclosure () -> [(String, String)] = []) {
        log(.debug, message(), metadata: metadata())
    }
}
