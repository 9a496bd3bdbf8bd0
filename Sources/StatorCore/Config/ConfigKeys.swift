import Foundation

/// The registry of every configuration key.
public enum ConfigKeys {
    static func string(
        _ path: String, _ help: String, _ get: @escaping @Sendable (StatorConfiguration) -> String,
        _ set: @escaping @Sendable (inout StatorConfiguration, String) throws(ConfigError) -> Void
    ) -> ConfigKey {
        ConfigKey(path: path, kind: .string, help: help, read: { .string(get($0)) }) { (c, v) throws(ConfigError) in
            guard case .string(let s) = v else { throw ConfigError("\(path) must be a string, got \(v.kind)") }
            try set(&c, s)
        }
    }

    /// A `host:port` / `[v6]:port` key, checked by parsing it.
    static func address(
        _ path: String, _ help: String, _ get: @escaping @Sendable (StatorConfiguration) -> String,
        _ set: @escaping @Sendable (inout StatorConfiguration, String) -> Void
    ) -> ConfigKey {
        string(path, help, get) { (c, s) throws(ConfigError) in
            _ = try SocketAddress(parsing: s)
            set(&c, s)
        }
    }

    static func integer(
        _ path: String, _ range: ClosedRange<Int64>, _ help: String,
        _ get: @escaping @Sendable (StatorConfiguration) -> Int64,
        _ set: @escaping @Sendable (inout StatorConfiguration, Int64) -> Void
    ) -> ConfigKey {
        ConfigKey(path: path, kind: .integer, help: help, read: { .number(Double(get($0))) }) { (c, v) throws(ConfigError) in
            guard case .number(let d) = v, d == d.rounded(), abs(d) < 9e15 else {
                throw ConfigError("\(path) must be an integer, got \(v.kind)")
            }
            let n = Int64(d)
            guard range.contains(n) else {
                throw ConfigError("\(path) must be between \(range.lowerBound) and \(range.upperBound), got \(n)")
            }
            set(&c, n)
        }
    }

    static func boolean(
        _ path: String, _ help: String, _ get: @escaping @Sendable (StatorConfiguration) -> Bool,
        _ set: @escaping @Sendable (inout StatorConfiguration, Bool) -> Void
    ) -> ConfigKey {
        ConfigKey(path: path, kind: .boolean, help: help, read: { .bool(get($0)) }) { (c, v) throws(ConfigError) in
            guard case .bool(let b) = v else { throw ConfigError("\(path) must be true or false, got \(v.kind)") }
            set(&c, b)
        }
    }

    /// A finite number in `range`.
    static func number(
        _ path: String, _ range: ClosedRange<Double>, _ help: String,
        _ get: @escaping @Sendable (StatorConfiguration) -> Double,
        _ set: @escaping @Sendable (inout StatorConfiguration, Double) -> Void
    ) -> ConfigKey {
        ConfigKey(path: path, kind: .number, help: help, read: { .number(get($0)) }) { (c, v) throws(ConfigError) in
            guard case .number(let d) = v, range.contains(d) else {
                throw ConfigError("\(path) must be a number from \(range.lowerBound) to \(range.upperBound), got \(describe(v))")
            }
            set(&c, d)
        }
    }

    static func duration(
        _ path: String, minimum: Int64, allowZero: Bool, _ help: String,
        _ get: @escaping @Sendable (StatorConfiguration) -> Int64,
        _ set: @escaping @Sendable (inout StatorConfiguration, Int64) -> Void
    ) -> ConfigKey {
        ConfigKey(path: path, kind: .duration, help: help, read: { .string(ConfigDuration.format(get($0))) }) {
            (c, v) throws(ConfigError) in
            guard case .string(let s) = v, let ms = ConfigDuration.parseMillis(s) else {
                throw ConfigError("\(path) must be a duration such as \"250ms\", \"10s\", \"5m\" or \"1h\", got \(describe(v))")
            }
            guard (ms == 0 && allowZero) || ms >= minimum else {
                throw ConfigError(
                    "\(path) must be at least \(ConfigDuration.format(minimum))\(allowZero ? " (or 0)" : ""), got \(s)")
            }
            set(&c, ms)
        }
    }

    /// Reads a bucket list: numbers, non-empty, finite, strictly increasing.
    static func bucketList(_ v: JSONValue, _ what: String) throws(ConfigError) -> [Double] {
        guard case .array(let items) = v else { throw ConfigError("\(what) must be a list of numbers, got \(v.kind)") }
        var result: [Double] = []
        for item in items {
            guard case .number(let n) = item else {
                throw ConfigError("\(what) must be a list of numbers, got \(describe(item))")
            }
            result.append(n)
        }
        if let problem = HistogramBuckets.problem(with: result) { throw ConfigError("\(what) \(problem)") }
        return result
    }

    static func isNameByte(_ b: UInt8) -> Bool {
        b == 0x5F || (b >= 0x30 && b <= 0x39) || ((b | 0x20) >= 0x61 && (b | 0x20) <= 0x7A)
    }

    /// A Prometheus label name not reserved for internal use: `[a-zA-Z_][a-zA-Z0-9_]*`, not `__...`.
    static func isLabelName(_ name: String) -> Bool {
        guard let first = name.utf8.first, !(first >= 0x30 && first <= 0x39), !name.hasPrefix("__") else { return false }
        return name.utf8.allSatisfy(isNameByte)
    }

    static func describe(_ v: JSONValue) -> String {
        if case .string(let s) = v { return "\"\(s)\"" }
        return v.kind
    }

    /// Looks a key up by path.
    public static func key(_ path: String) -> ConfigKey? { all.first { $0.path == path } }

    /// Sections that hold keys (`udp`, `sinks`, `sinks.json`, ...).
    static let sections: Set<String> = {
        var result = Set<String>()
        for key in all {
            var parts = key.path.split(separator: ".").dropLast()
            while !parts.isEmpty {
                result.insert(parts.joined(separator: "."))
                parts = parts.dropLast()
            }
        }
        return result
    }()

    /// Applies a JSON configuration document.
    /// - Throws: `ConfigError` for an unknown key or a bad value, naming `source`.
    public static func apply(_ document: JSONValue, to configuration: inout StatorConfiguration, source: String)
        throws(ConfigError)
    {
        guard case .object(let top) = document else { throw ConfigError("\(source): the configuration must be a JSON object") }
        try apply(object: top, prefix: "", to: &configuration, source: source)
    }

    private static func apply(
        object: [String: JSONValue], prefix: String, to configuration: inout StatorConfiguration, source: String
    ) throws(ConfigError) {
        for name in object.keys.sorted() {
            guard let value = object[name] else { continue }
            let path = prefix.isEmpty ? name : "\(prefix).\(name)"
            if path == pushSection, case .array(let items) = value {
                configuration.pushes = try pushList(items, source: source)
            } else if let key = key(path) {
                do {
                    try key.write(&configuration, value)
                } catch {
                    throw ConfigError("\(source): \(error.message)")
                }
            } else if sections.contains(path), case .object(let inner) = value {
                try apply(object: inner, prefix: path, to: &configuration, source: source)
            } else {
                throw ConfigError("\(source): unknown configuration key \"\(path)\"")
            }
        }
    }

    /// The section that may also be a list of objects, one per push.
    static let pushSection = "sinks.http_push"

    /// The environment variable that holds the whole push list (`STATOR_SINKS_HTTP_PUSH`).
    static let pushListVariable = "STATOR_SINKS_HTTP_PUSH"

    /// Reads the whole push list from `STATOR_SINKS_HTTP_PUSH`: a JSON list of push objects,
    /// or one object (a list of one), for containers configured by environment only. It
    /// replaces the pushes of the file; the `STATOR_SINKS_HTTP_PUSH_*` variables and flags
    /// then set the first entry, as they do over a file's list.
    /// - Throws: `ConfigError` naming the variable and the entry.
    static func pushes(fromEnvironment text: String) throws(ConfigError) -> [HTTPPushConfiguration] {
        let source = pushListVariable
        switch try JSONValue.parse(Data(text.utf8), source: source) {
        case .array(let items): return try pushList(items, source: source)
        case .object(let fields): return try pushList([.object(fields)], source: source)
        case let other: throw ConfigError("\(source) must be a JSON list of push objects, or one object; got \(other.kind)")
        }
    }

    /// Reads `sinks.http_push` written as a list: each entry an object of the same keys.
    private static func pushList(_ items: [JSONValue], source: String) throws(ConfigError) -> [HTTPPushConfiguration] {
        var pushes: [HTTPPushConfiguration] = []
        for (n, item) in items.enumerated() {
            guard case .object(let fields) = item else {
                throw ConfigError("\(source): \(pushSection)[\(n)] must be an object, got \(item.kind)")
            }
            var scratch = StatorConfiguration()
            try apply(object: fields, prefix: pushSection, to: &scratch, source: "\(source): \(pushSection)[\(n)]")
            pushes.append(scratch.push)
        }
        return pushes
    }

    /// The effective configuration as a JSON document (what `check-config` prints).
    public static func render(_ configuration: StatorConfiguration) -> String {
        var tree: [String: Any] = [:]
        func insert(_ path: [Substring], _ value: String, into node: inout [String: Any]) {
            let head = String(path[0])
            if path.count == 1 {
                node[head] = value
                return
            }
            var child = node[head] as? [String: Any] ?? [:]
            insert(Array(path.dropFirst()), value, into: &child)
            node[head] = child
        }
        for key in all { insert(key.path.split(separator: "."), text(key.read(configuration)), into: &tree) }
        if configuration.pushes.count != 1 {
            // Several pushes: the section is a list, each entry read through the same keys.
            let pushKeys = all.filter { $0.path.hasPrefix(pushSection + ".") }
            let entries = configuration.pushes.map { push -> String in
                var one = StatorConfiguration()
                one.push = push
                let fields = pushKeys.map { "\"\($0.path.dropFirst(pushSection.count + 1))\": \(text($0.read(one)))" }
                return "{" + fields.joined(separator: ", ") + "}"
            }
            var sinks = tree["sinks"] as? [String: Any] ?? [:]
            sinks["http_push"] = "[" + entries.joined(separator: ", ") + "]"
            tree["sinks"] = sinks
        }
        func write(_ node: [String: Any], indent: String) -> String {
            let inner = indent + "  "
            let lines = node.keys.sorted().map { name -> String in
                let body = (node[name] as? [String: Any]).map { write($0, indent: inner) } ?? (node[name] as? String ?? "")
                return "\(inner)\"\(name)\": \(body)"
            }
            return "{\n" + lines.joined(separator: ",\n") + "\n\(indent)}"
        }
        return write(tree, indent: "") + "\n"
    }

    /// JSON text of a value.
    static func text(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let n): return PrometheusNumber.format(n)
        case .string(let s):
            var w = JSONWriter()
            w.string(s)
            return String(decoding: w.bytes, as: UTF8.self)
        case .array(let items): return "[" + items.map(text).joined(separator: ", ") + "]"
        case .object(let fields):
            return "{" + fields.keys.sorted().map { "\"\($0)\": \(text(fields[$0] ?? .null))" }.joined(separator: ", ") + "}"
        }
    }
}
