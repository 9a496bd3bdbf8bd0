import Foundation
import Glibc

/// Configuration of one HTTP push (`sinks.http_push`, or one entry of its list).
public struct HTTPPushConfiguration: Sendable {
    /// The `sink` label of this push's metrics; empty takes `http_push`, `http_push_2`... by
    /// position (`name`).
    public var name: String = ""
    /// Where to POST, used as given (query string included); empty disables the push (`url`).
    public var url: String = ""
    /// Body format (`format`).
    public var format: PushFormat = .json
    /// Series per request at most (`batch_size`).
    public var batchSize: Int = 1000
    /// Extra request headers as configured; `${VAR}` is replaced at start-up (`headers`).
    public var headers: [String: String] = [:]
    /// `headers` with every `${VAR}` replaced (see `resolve(environment:)`).
    public var resolvedHeaders: [String: String]?
    /// Labels added to every series this push sends, unless the series has a tag of the same
    /// name (`external_labels`); `${VAR}` is replaced at start-up.
    public var externalLabels: [String: String] = [:]
    /// `externalLabels` with every `${VAR}` replaced, sorted by name.
    public var resolvedExternalLabels: [(name: String, value: String)]?
    /// OTLP's resource attribute `service.name` (`service_name`).
    public var serviceName: String = "stator"
    /// OTLP: cumulative (the state of /metrics) or each interval's own aggregates (`temporality`).
    public var temporality: OTLPTemporality = .cumulative
    /// Time allowed per request (`timeout`).
    public var timeoutMillis: Int64 = 5000
    /// Directory for the on-disk spool; empty keeps the queue in memory (`spool_dir`).
    public var spoolDirectory: String = ""
    /// Bound on queued bytes, memory or disk (`max_spool_bytes`).
    public var maxSpoolBytes: Int64 = 256 << 20
    /// First retry delay; doubled up to `maxBackoffMillis`, with jitter.
    public var initialBackoffMillis: Int64 = 250
    public var maxBackoffMillis: Int64 = 30_000
    /// How long the push keeps trying at shutdown.
    public var shutdownGraceMillis: Int64 = 5000

    public init() {}

    /// The name this push gets at `position` (0-based) in the list when none is configured.
    static func defaultName(position: Int) -> String { position == 0 ? "http_push" : "http_push_\(position + 1)" }

    /// Replaces each `${VAR}` in header values and external labels with the environment
    /// variable's value, once. One trailing newline (`\n` or `\r\n`) of the result is trimmed:
    /// secrets mounted from files end with one. Any other CR, LF or NUL would split or end the
    /// header on the wire. `${HOSTNAME}` falls back to the machine's host name when the
    /// variable is not set (systemd does not set it).
    /// - Throws: `ConfigError` naming the key and variable when a variable is not set, or
    ///   naming the key (never its value, a secret) when the result holds CR, LF or NUL.
    public mutating func resolve(environment: [String: String], section: String = "sinks.http_push")
        throws(ConfigError)
    {
        var headers: [String: String] = [:]
        for (name, template) in self.headers {
            headers[name] = try Self.expand(template, environment: environment, what: "\(section).headers.\(name)")
        }
        resolvedHeaders = headers
        var labels: [(name: String, value: String)] = []
        for (name, template) in externalLabels {
            labels.append(
                (name, try Self.expand(template, environment: environment, what: "\(section).external_labels.\(name)")))
        }
        resolvedExternalLabels = labels.sorted { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }
    }

    static func expand(_ template: String, environment: [String: String], what: String) throws(ConfigError)
        -> String
    {
        var value = ""
        var rest = Substring(template)
        while let open = rest.range(of: "${") {
            value += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].firstIndex(of: "}") else {
                throw ConfigError("\(what): unterminated ${ in \"\(template)\"")
            }
            let variable = String(rest[open.upperBound..<close])
            guard let replacement = environment[variable] ?? (variable == "HOSTNAME" ? hostName() : nil) else {
                throw ConfigError("\(what): environment variable \(variable) is not set")
            }
            value += replacement
            rest = rest[rest.index(after: close)...]
        }
        value += rest
        if value.unicodeScalars.last == "\n" {
            value.unicodeScalars.removeLast()
            if value.unicodeScalars.last == "\r" { value.unicodeScalars.removeLast() }
        }
        guard !value.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" }) else {
            throw ConfigError("\(what): the value holds a CR, LF or NUL byte after ${VAR} expansion")
        }
        return value
    }

    /// The machine's host name (`gethostname`).
    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// OTLP aggregation temporality (`sinks.http_push.temporality`).
public enum OTLPTemporality: String, Sendable, CaseIterable {
    /// Values since the series appeared, from the state `/metrics` shows.
    case cumulative
    /// Each interval's own aggregates.
    case delta
}
