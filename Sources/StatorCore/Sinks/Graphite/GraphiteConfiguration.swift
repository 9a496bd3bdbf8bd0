/// Configuration of the Graphite plaintext sink (`sinks.graphite`).
public struct GraphiteConfiguration: Sendable {
    /// How tags are written.
    public enum Tags: String, Sendable {
        /// `;k=v` after the path (Graphite 1.1 tags).
        case graphite
        /// No tags.
        case none
    }

    /// The receiver, `host:port`, resolved at every connect; empty disables the sink (`address`).
    public var address: String = ""
    /// The bytes a Graphite path keeps as they are, `[a-zA-Z0-9_.-]` (etsy statsd's rule):
    /// the encoder escapes the others in names, and `prefix` may hold only these.
    static func isPathByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"):
            true
        default: false
        }
    }

    /// Put before `stats.` with a dot (`prefix`).
    public var prefix: String = ""
    /// `tags`.
    public var tags: Tags = .graphite
    /// Bound on text waiting for the connection (`max_queue_bytes`).
    public var maxQueueBytes: Int64 = 64 << 20
    /// Time allowed to connect, and for a write to make progress.
    public var timeoutMillis: Int64 = 5000
    /// First reconnection delay; doubled up to `maxBackoffMillis`, with jitter.
    public var initialBackoffMillis: Int64 = 250
    public var maxBackoffMillis: Int64 = 30_000
    /// How long the sink keeps trying at shutdown.
    public var shutdownGraceMillis: Int64 = 5000

    public init() {}

    /// Splits `host:port` or `[v6]:port` without resolving the host (that happens at connect).
    /// - Throws: `ConfigError` when the text is not of that form.
    static func split(_ text: String) throws(ConfigError) -> (host: String, port: UInt16) {
        let host: Substring
        let port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw ConfigError("sinks.graphite.address must be host:port or [IPv6]:port, got \"\(text)\"")
            }
            host = text[text.index(after: text.startIndex)..<close]
            port = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else {
                throw ConfigError("sinks.graphite.address must be host:port or [IPv6]:port, got \"\(text)\"")
            }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let number = UInt16(port), number > 0 else {
            throw ConfigError("sinks.graphite.address must be host:port or [IPv6]:port, got \"\(text)\"")
        }
        return (String(host), number)
    }
}
