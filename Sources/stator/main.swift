import Glibc
import StatorCore

// argv -> configuration -> Agent; then wait for signals on this thread.
// SIGTERM/SIGINT: drain, flush the partial interval, exit 0. SIGHUP: reopen files.

let environment: [String: String] = {
    var result: [String: String] = [:]
    var p = environ
    while let entry = p.pointee {
        let text = String(cString: entry)
        if let eq = text.firstIndex(of: "=") { result[String(text[..<eq])] = String(text[text.index(after: eq)...]) }
        p += 1
    }
    return result
}()

func fail(_ message: String) -> Never {
    FileHandleStderr.write("stator: \(message)\n")
    exit(2)
}

enum FileHandleStderr {
    static func write(_ text: String) {
        var copy = text
        copy.withUTF8 { buf in _ = Glibc.write(2, buf.baseAddress, buf.count) }
    }
}

func printOut(_ text: String) {
    var copy = text
    copy.withUTF8 { buf in _ = Glibc.write(1, buf.baseAddress, buf.count) }
}

let parsed: CommandLineParser.Parsed
do {
    parsed = try CommandLineParser.parse(Array(CommandLine.arguments.dropFirst()), environment: environment)
} catch {
    fail(error.message)
}

switch parsed.command {
case .help:
    printOut(CommandLineParser.usage)
    exit(0)
case .version:
    printOut("stator \(statorVersion)\n")
    exit(0)
case .send(let configuration, let lines, let readStandardInput, let transport):
    for warning in parsed.warnings { FileHandleStderr.write("stator: warning: \(warning)\n") }
    exit(send(configuration, lines, readStandardInput: readStandardInput, via: transport))
case .checkConfig(let configuration):
    for warning in parsed.warnings { FileHandleStderr.write("stator: warning: \(warning)\n") }
    if !configuration.mappingConfig.isEmpty {
        // The mapping file is part of the configuration: a file the agent would refuse fails here too.
        do {
            let rules = try MappingRules(
                path: configuration.mappingConfig, maxNameBytes: configuration.aggregation.lineLimits.maxNameBytes)
            for key in rules.ignoredKeys {
                FileHandleStderr.write("stator: warning: mapping_config: \(key) is accepted but not used by Stator\n")
            }
        } catch {
            fail(error.message)
        }
    }
    printOut(ConfigKeys.render(configuration))
    exit(0)
case .map(let configuration, let name, let type):
    do {
        let rules = try MappingRules(
            path: configuration.mappingConfig, maxNameBytes: configuration.aggregation.lineLimits.maxNameBytes)
        printOut(rules.describe(name, type: type))
        exit(0)
    } catch {
        fail(error.message)
    }
case .top(let configuration):
    for warning in parsed.warnings { FileHandleStderr.write("stator: warning: \(warning)\n") }
    exit(runTop(configuration))
case .run(let configuration):
    HeapPolicy.apply()
    // Block the signals we handle before any thread starts, so every thread inherits the mask
    // and this thread alone takes them with sigwait.
    var signals = sigset_t()
    sigemptyset(&signals)
    for s in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&signals, s) }
    pthread_sigmask(SIG_BLOCK, &signals, nil)
    signal(SIGPIPE, SIG_IGN)

    let logger = Logger(label: "stator", level: configuration.logLevel)
    for warning in parsed.warnings { logger.warning(warning) }
    let agent: Agent
    do {
        agent = try Agent(configuration: configuration, logger: logger)
    } catch {
        fail("\(error)")
    }
    let running = agent.start()
    while true {
        var received: Int32 = 0
        guard sigwait(&signals, &received) == 0 else { continue }
        if received == SIGHUP {
            agent.reopen()
            continue
        }
        running.shutdown()
        exit(0)
    }
}

/// `stator send`: checks each line with the agent's parser, sends the valid ones to
/// `udp.address` in as few datagrams as fit (or to a Unix socket, or over TCP), and reports
/// the invalid ones.
/// - Returns: the exit status: 0, 1 when a line was invalid, 2 when sending failed.
func send(_ configuration: StatorConfiguration, _ arguments: [String], readStandardInput: Bool, via transport: SendTransport)
    -> Int32
{
    var lines = arguments.map { Array($0.utf8) }
    if readStandardInput {
        while let text = readLine(strippingNewline: true) {
            var line = Array(text.utf8)
            if line.last == 0x0D { line.removeLast() }
            if !line.isEmpty { lines.append(line) }
        }
    }
    var valid: [[UInt8]] = []
    var invalid = 0
    for line in lines {
        if let reason = StatsdClient.check(line) {
            FileHandleStderr.write("stator: not sent (\(reason)): \(String(decoding: line, as: UTF8.self))\n")
            invalid += 1
        } else {
            valid.append(line)
        }
    }
    do {
        switch transport {
        case .udp:
            let client = try StatsdClient(address: try SocketAddress(parsing: configuration.udp.address))
            try client.send(StatsdClient.pack(valid))
        case .unix(let path):
            try StatsdClient.sendUnix(path: path, StatsdClient.pack(valid, maxDatagram: 8192))
        case .tcp:
            guard !configuration.tcp.address.isEmpty else {
                fail("stator send --tcp needs tcp.address (--tcp.address HOST:PORT)")
            }
            try StatsdClient.sendTCP(address: try SocketAddress(parsing: configuration.tcp.address), valid)
        }
    } catch let error as ConfigError {
        fail(error.message)
    } catch {
        fail("\(error)")
    }
    return invalid > 0 ? 1 : 0
}
