import Foundation
import Glibc
import Testing

/// A peer server (prometheus, victoria-metrics, carbon-cache) on free loopback ports, ready
/// when `init` returns and stopped on deinit.
///
/// A port that `freePort` read as free can be taken by another socket before the peer binds
/// it (an outgoing connection's ephemeral port, say). A peer that exits saying an address is
/// in use is therefore started again on new ports, at most three times; any other exit is a
/// failure at once.
final class PeerProcess {
    private(set) var process = Process()
    private(set) var log = PipeCollector()
    private(set) var ports: [UInt16] = []

    /// - Parameters:
    ///   - executable: the peer's absolute path.
    ///   - portCount: how many free ports `arguments` and `ready` are given.
    ///   - arguments: the command line for the given ports (it may write config files too).
    ///   - ready: whether the peer, on the given ports, answers yet.
    init(
        _ executable: String, ports portCount: Int, directory: String? = nil, readyTimeout: Double = 30,
        arguments: ([UInt16]) throws -> [String], ready: ([UInt16]) -> Bool
    ) throws {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw TestFailure("\(executable) not found: scripts/test installs it (Debian's package)")
        }
        for attempt in 1...3 {
            ports = try (0..<portCount).map { _ in try freePort() }
            process = Process()
            log = PipeCollector()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = try arguments(ports)
            if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
            process.standardOutput = log.pipe
            process.standardError = log.pipe
            try process.run()
            let (process, ports) = (process, ports)
            try eventually(timeout: readyTimeout, "\(executable) to be ready") { ready(ports) || !process.isRunning }
            if process.isRunning { return }
            process.waitUntilExit()
            log.waitUntilClosed()
            let text = log.text
            guard text.lowercased().contains("address already in use"), attempt < 3 else {
                throw TestFailure("\(executable) exited: \(text)")
            }
        }
    }

    deinit { stopChild(process) }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
func acceptsConnections(_ port: UInt16) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    return withSocketAddress("127.0.0.1", port) { connect(fd, $0, $1) } == 0
}

extension HeavyEndToEndTests {
    /// A peer told a port that another socket holds exits saying so, and is started again on
    /// new ports: the first start here is told the port of a socket this test keeps listening.
    // Budget: 0.2 s plain and under TSan (2026-12-07); its wait is 30 s.
    @Test func aPeerWhosePortIsTakenIsStartedAgainOnNewPorts() throws {
        let (held, heldPort) = try bindLoopback(Int32(SOCK_STREAM.rawValue))
        defer { close(held) }
        let dir = try TemporaryDirectory()
        var attempts = 0
        let peer = try PeerProcess("/usr/bin/victoria-metrics", ports: 1) { ports in
            attempts += 1
            let port = attempts == 1 ? heldPort : ports[0]
            return ["-storageDataPath=\(dir.file("data"))", "-httpListenAddr=127.0.0.1:\(port)", "-loggerLevel=WARN"]
        } ready: { ports in
            (try? httpRequest(port: ports[0], "/health").status) == 200
        }
        #expect(attempts == 2)
        #expect(peer.process.isRunning)
        #expect(try httpRequest(port: peer.ports[0], "/health").status == 200)
    }
}
