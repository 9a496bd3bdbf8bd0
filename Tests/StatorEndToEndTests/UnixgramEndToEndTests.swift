import Foundation
import Glibc
import Testing

/// A Unix datagram socket connected to `path` (raw calls: the test sends as DogStatsD's
/// clients do, one `send` per datagram on a blocking socket).
final class UnixDatagramSender {
    let fd: Int32

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw TestFailure("connect \(path): \(String(cString: strerror(errno)))") }
    }

    func send(_ datagram: [UInt8]) throws {
        let sent = datagram.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
        guard sent == datagram.count else { throw TestFailure("send: \(String(cString: strerror(errno)))") }
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    deinit { close(fd) }
}

/// A Unix socket file at `path` that nobody reads any more: a stale socket, as a crashed
/// agent leaves it.
func makeStaleSocket(_ path: String) throws {
    let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    close(fd)
    guard rc == 0 else { throw TestFailure("bind \(path): \(String(cString: strerror(errno)))") }
}

@Test func unixgramLinesAreAggregatedAndCountedUnderTheirInput() throws {
    let dir = try TemporaryDirectory()
    let path = dir.file("stator.sock")
    let out = dir.file("out.json")
    let agent = try StatorProcess(agent: [
        "--unixgram.path", path, "--unixgram.mode", "0620", "--flush_interval", untilShutdown, "--sinks.json.path", out,
    ])
    // The mode is applied to the socket file.
    var info = stat()
    #expect(lstat(path, &info) == 0)
    #expect(info.st_mode & S_IFMT == S_IFSOCK)
    #expect(info.st_mode & 0o777 == 0o620)

    let sender = try UnixDatagramSender(path: path)
    for _ in 0..<500 { try sender.send("uds.hits:1|c|#via:uds\nuds.latency:4|ms\nbroken") }
    // One datagram as large as a sender's buffer allows: every line of it arrives.
    let big = Array(repeating: "uds.big:1|c", count: 15_000).joined(separator: "\n")
    try sender.send(big)
    try agent.send("udp.hits:1|c")
    // Packets are counted before the lines of a read, and the UDP line by another reader:
    // wait for every count, not the first.
    try eventually("every datagram read") {
        try selfMetric(agent, #"stator_packets_received_total{input="unixgram"}"#) == 501
            && selfMetric(agent, #"stator_lines_received_total{input="unixgram"}"#) == 1_500 + 15_000
            && selfMetric(agent, #"stator_lines_received_total{input="udp"}"#) == 1
    }
    #expect(try selfMetric(agent, #"stator_lines_invalid_total{input="unixgram",reason="missing_colon"}"#) == 500)
    #expect(try selfMetric(agent, #"stator_lines_invalid_total{input="udp",reason="missing_colon"}"#) == 0)
    #expect(try agent.stop() == 0)
    // The socket file goes with the agent.
    #expect(lstat(path, &info) != 0)
    let lines = try jsonLines(readFile(out))
    #expect(lines.first { $0["name"] as? String == "uds.hits" }?["value"] as? Double == 500)
    #expect(lines.first { $0["name"] as? String == "uds.hits" }?["tags"] as? [String: String] == ["via": "uds"])
    #expect(lines.first { $0["name"] as? String == "uds.big" }?["value"] as? Double == 15_000)
    #expect(lines.first { $0["name"] as? String == "udp.hits" }?["value"] as? Double == 1)
}

@Test func aStaleSocketFileIsReplacedAndAnythingElseIsAnError() throws {
    let dir = try TemporaryDirectory()
    let path = dir.file("stale.sock")
    try makeStaleSocket(path)
    let agent = try StatorProcess(agent: ["--unixgram.path", path, "--flush_interval", untilShutdown, "--sinks.json.path", ""])
    try UnixDatagramSender(path: path).send("after.stale:1|c")
    try eventually("the line read") { try selfMetric(agent, #"stator_lines_received_total{input="unixgram"}"#) == 1 }

    // A second agent on the same path: the socket is live, so it refuses to take it.
    let second = try StatorProcess(
        ["--unixgram.path", path, "--udp.address", "127.0.0.1:0", "--http.address", "127.0.0.1:0"], waitForStart: false)
    #expect(try second.waitForExit() == 2)
    #expect(second.stderr.text.contains("unixgram.path \(path): another process is receiving on this socket"))
    #expect(try agent.stop() == 0)

    // A regular file is never replaced.
    let file = dir.file("not-a-socket")
    try "keep me".write(toFile: file, atomically: true, encoding: .utf8)
    let refused = try StatorProcess(
        ["--unixgram.path", file, "--udp.address", "127.0.0.1:0", "--http.address", "127.0.0.1:0"], waitForStart: false)
    #expect(try refused.waitForExit() == 2)
    #expect(refused.stderr.text.contains("unixgram.path \(file) exists and is not a socket; it was left as it is"))
    #expect(readFile(file) == "keep me")
    // A bad mode is a configuration error.
    let badMode = try StatorProcess(["check-config", "--unixgram.mode", "0999"], waitForStart: false)
    #expect(try badMode.waitForExit() == 2)
    #expect(badMode.stderr.text.contains("unixgram.mode must be octal permission bits"))
}

@Test func sigtermReadsWhatUnixgramClientsAlreadySent() throws {
    let dir = try TemporaryDirectory()
    let path = dir.file("stator.sock")
    let out = dir.file("out.json")
    let agent = try StatorProcess(agent: ["--unixgram.path", path, "--flush_interval", untilShutdown, "--sinks.json.path", out])
    let sender = try UnixDatagramSender(path: path)
    for _ in 0..<2_000 { try sender.send("last.words:1|c") }
    #expect(try agent.stop() == 0)
    #expect(try counterSum(out, "last.words") == 2_000)
}
