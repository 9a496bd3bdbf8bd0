public import Foundation

/// What the command line asks for.
public enum Command: Sendable {
    /// Run the agent.
    case run(StatorConfiguration)
    /// Print the effective configuration and exit.
    case checkConfig(StatorConfiguration)
    /// Print usage.
    case help
    /// Print the version.
    case version
    /// Send statsd lines to the agent at `udp.address` (`stator send`): the lines given
    /// as arguments, then standard input's when `readStandardInput`.
    case send(StatorConfiguration, lines: [String], readStandardInput: Bool, via: SendTransport)
    /// Print what `mapping_config` makes of a statsd name of a type (`stator map`).
    case map(StatorConfiguration, name: String, type: MetricType)
    /// Show the agent's `/api/v1/top` at `http.address`, redrawn each second (`stator top`).
    case top(StatorConfiguration)
}

/// Where `stator send` sends: `udp.address` (the default), a Unix datagram socket
/// (`--unix PATH`), or `tcp.address` (`--tcp`).
public enum SendTransport: Sendable, Equatable {
    case udp
    case unix(String)
    case tcp
}

/// The version printed by `stator version`.
public let statorVersion = "0.1.0"

/// Turns arguments and the environment into a `Command`, applying the sources
/// in precedence order: defaults < `--config FILE` < `STATOR_*` variables < flags.
public enum CommandLineParser {
    /// The result of parsing.
    public struct Parsed: Sendable {
        public var command: Command
        /// Things worth a warning but not an error (unknown `STATOR_*` variables).
        public var warnings: [String]
    }

    /// - Parameters:
    ///   - arguments: without the program name.
    ///   - environment: the process environment.
    ///   - readFile: reads the `--config` file (injectable for tests).
    /// - Throws: `ConfigError` with a one-line message.
    public static func parse(
        _ arguments: [String], environment: [String: String],
        readFile: (String) throws -> Data = { try Data(contentsOf: URL(fileURLWithPath: $0)) }
    ) throws(ConfigError) -> Parsed {
        var args = arguments[...]
        var mode = "run"
        if let first = args.first, !first.hasPrefix("-") {
            switch first {
            case "run", "check-config", "version", "help", "send", "map", "top": mode = first
            default: throw ConfigError("unknown command \"\(first)\" (try stator --help)")
            }
            args = args.dropFirst()
        }
        var configPath: String?
        var flags: [(ConfigKey, String)] = []
        var lines: [String] = []
        var readStandardInput = false
        var mapType = MetricType.counter
        var transport = SendTransport.udp
        while let arg = args.popFirst() {
            if arg == "--" { continue }  // the conventional end of options; every argument here is an option
            if mode == "map" {
                if arg == "--type" || arg.hasPrefix("--type=") {
                    let text = arg == "--type" ? args.popFirst() ?? "" : String(arg.dropFirst("--type=".count))
                    guard let type = MetricType(statsdCode: text) else {
                        throw ConfigError("--type must be c, g, s, ms, h or d, got \"\(text)\"")
                    }
                    mapType = type
                    continue
                }
                if !arg.hasPrefix("--") {
                    lines.append(arg)
                    continue
                }
            }
            if mode == "send" {
                if arg == "--stdin" {
                    readStandardInput = true
                    continue
                }
                if arg == "--unix" {
                    guard let path = args.popFirst(), !path.isEmpty else { throw ConfigError("--unix needs a socket path") }
                    transport = .unix(path)
                    continue
                }
                if arg == "--tcp" {
                    transport = .tcp
                    continue
                }
                if !arg.hasPrefix("--") {
                    lines.append(arg)
                    continue
                }
            }
            if arg == "-h" || arg == "--help" { return Parsed(command: .help, warnings: []) }
            if arg == "--version" { return Parsed(command: .version, warnings: []) }
            guard arg.hasPrefix("--") else { throw ConfigError("unexpected argument \"\(arg)\" (try stator --help)") }
            var name = String(arg.dropFirst(2))
            var value: String?
            if let eq = name.firstIndex(of: "=") {
                value = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            let key = ConfigKeys.key(name)
            guard name == "config" || key != nil else { throw ConfigError("unknown flag --\(name) (try stator --help)") }
            if value == nil {
                guard let next = args.popFirst() else { throw ConfigError("flag --\(name) needs a value") }
                value = next
            }
            if let key, let value { flags.append((key, value)) } else { configPath = value }
        }
        switch mode {
        case "version": return Parsed(command: .version, warnings: [])
        case "help": return Parsed(command: .help, warnings: [])
        default: break
        }

        var configuration = StatorConfiguration()
        if let configPath {
            let data: Data
            do {
                data = try readFile(configPath)
            } catch {
                throw ConfigError("cannot read configuration file \(configPath): \((error as NSError).localizedDescription)")
            }
            try ConfigKeys.apply(try JSONValue.parse(data, source: configPath), to: &configuration, source: configPath)
        }
        var warnings: [String] = []
        // Sorted: the push list comes before the STATOR_SINKS_HTTP_PUSH_* keys of its first entry.
        for (name, text) in environment.sorted(by: { $0.key < $1.key }) where name.hasPrefix("STATOR_") {
            if name == ConfigKeys.pushListVariable {
                configuration.pushes = try ConfigKeys.pushes(fromEnvironment: text)
                continue
            }
            guard let key = ConfigKeys.all.first(where: { $0.environmentName == name }) else {
                warnings.append("unknown environment variable \(name) ignored")
                continue
            }
            try set(key, text, source: name, &configuration)
        }
        for (key, text) in flags { try set(key, text, source: key.flag, &configuration) }
        try configuration.resolve(environment: environment)
        switch mode {
        case "check-config": return Parsed(command: .checkConfig(configuration), warnings: warnings)
        case "top": return Parsed(command: .top(configuration), warnings: warnings)
        case "map":
            guard lines.count == 1, let name = lines.first else {
                throw ConfigError("stator map needs one statsd name (try stator --help)")
            }
            guard !configuration.mappingConfig.isEmpty else {
                throw ConfigError("stator map needs a mapping file: --mapping_config FILE, or mapping_config in --config")
            }
            return Parsed(command: .map(configuration, name: name, type: mapType), warnings: warnings)
        case "send":
            guard !lines.isEmpty || readStandardInput else {
                throw ConfigError("stator send needs lines to send, or --stdin (try stator --help)")
            }
            return Parsed(
                command: .send(configuration, lines: lines, readStandardInput: readStandardInput, via: transport),
                warnings: warnings)
        default: return Parsed(command: .run(configuration), warnings: warnings)
        }
    }

    private static func set(_ key: ConfigKey, _ text: String, source: String, _ c: inout StatorConfiguration) throws(ConfigError)
    {
        do {
            try key.write(&c, try key.value(fromText: text, source: source))
        } catch {
            throw ConfigError(error.message.hasPrefix(source) ? error.message : "\(source): \(error.message)")
        }
    }

    /// The text of `stator --help`.
    public static var usage: String {
        var text = """
            stator \(statorVersion): a statsd-compatible UDP aggregation agent.

            Usage:
              stator [--config FILE] [--KEY VALUE ...]               run the agent
              stator check-config [--config FILE] [--KEY VALUE ...]  print the effective configuration
              stator send [--stdin] [--unix PATH | --tcp] [LINE ...] [--config FILE] [--KEY VALUE ...]
                                                                     send statsd lines to the agent at udp.address
                                                                     (or its Unix socket PATH, or tcp.address)
                                                                     (checked first; exit 1 if any is invalid)
              stator map NAME [--type c|g|s|ms|h|d] [--mapping_config FILE]
                                                                     print what the mapping rules make of a statsd name
              stator top [--http.address HOST:PORT]                  show the agent's busiest names, tag keys, refused
                                                                     lines and sinks, each second, until q or Ctrl-C
              stator version                                         print the version
              stator --help                                          this text

            Sources, lowest to highest precedence: defaults, --config FILE (JSON),
            STATOR_* environment variables, --KEY VALUE flags (also --KEY=VALUE).
            Durations: 250ms, 10s, 5m, 1h (0 where it means never). Lists as JSON.

            Keys (flag / environment variable / default):

            """
        for key in ConfigKeys.all {
            text += "  \(key.flag)  \(key.environmentName)  default \(key.defaultText)\n      \(key.help)\n"
        }
        return text
    }
}
