import Foundation

/// One configuration key: its path, how its value is read, its default and its
/// meaning. The registry `ConfigKeys.all` is the single source for the JSON
/// file, environment variables, flags, `--help`, `check-config` and the docs.
public struct ConfigKey: Sendable {
    /// How a value is written.
    public enum Kind: Sendable {
        case string, integer, number, boolean, duration, numberList, stringList, objectList, object, logLevel
    }

    /// Dotted path, e.g. `udp.address`.
    public let path: String
    public let kind: Kind
    /// One line for `--help` and the docs.
    public let help: String
    /// The value in `configuration`, as JSON.
    let read: @Sendable (StatorConfiguration) -> JSONValue
    /// Stores a value already checked against `kind`.
    let write: @Sendable (inout StatorConfiguration, JSONValue) throws(ConfigError) -> Void

    /// The environment variable: `STATOR_` + the path in upper snake case.
    public var environmentName: String {
        "STATOR_" + path.uppercased().map { $0 == "." ? "_" : String($0) }.joined()
    }

    /// The flag: `--` + the path.
    public var flag: String { "--" + path }

    /// The default, as written in configuration.
    public var defaultText: String { ConfigKeys.text(read(StatorConfiguration())) }

    /// Converts text from an environment variable or a flag into a JSON value of this key's kind.
    func value(fromText text: String, source: String) throws(ConfigError) -> JSONValue {
        switch kind {
        case .string, .duration, .logLevel:
            return .string(text)
        case .integer:
            guard let n = Int64(text) else { throw ConfigError("\(source): \(path) must be an integer, got \"\(text)\"") }
            return .number(Double(n))
        case .number:
            guard let d = Double(text), d.isFinite else {
                throw ConfigError("\(source): \(path) must be a number, got \"\(text)\"")
            }
            return .number(d)
        case .boolean:
            guard text == "true" || text == "false" else {
                throw ConfigError("\(source): \(path) must be true or false, got \"\(text)\"")
            }
            return .bool(text == "true")
        case .numberList, .stringList, .objectList, .object:
            return try JSONValue.parse(Data(text.utf8), source: source)
        }
    }
}
