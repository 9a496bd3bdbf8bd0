import Foundation
import Glibc
import StatorCore
import Synchronization
import Testing

/// A file of the repository.
func repositoryPath(_ path: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(path).path
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A temporary directory removed when the value is dropped.
final class TemporaryDirectory: Sendable {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("stator-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { "\(path)/\(name)" }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Collects everything a pipe delivers, on its own thread.
final class PipeCollector: Sendable {
    private let data = PthreadLock(Data())
    private let closed = Atomic<Bool>(false)
    let pipe = Pipe()

    init() {
        let handle = pipe.fileHandleForReading
        let thread = Thread { [self] in
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty {
                    closed.store(true, ordering: .releasing)
                    return
                }
                data.withLock { $0.append(chunk) }
            }
        }
        thread.start()
    }

    var text: String { data.withLock { String(decoding: $0, as: UTF8.self) } }

    /// Waits (up to `timeout` seconds) until the writer side is closed and everything is read.
    /// (Process closes the parent's copy of the write end when it launches the child.)
    func waitUntilClosed(timeout: Double = 10) {
        let deadline = Date().addingTimeInterval(timeout)
        while !closed.load(ordering: .acquiring) && Date() < deadline { usleep(1000) }
    }
}

/// One run of the real `stator` binary.
final class StatorProcess: @unchecked Sendable {
    // SAFETY: `process` is only touched from the test that owns this value.
    let process = Process()
    let stdout = PipeCollector()
    let stderr = PipeCollector()
    private(set) var udpPort: UInt16 = 0
    private(set) var httpPort: UInt16 = 0
    /// The TCP input's port, when it is on.
    private(set) var tcpPort: UInt16 = 0
    private(set) var udpHost = "127.0.0.1"

    /// Starts `stator` with `arguments` and a clean environment plus `environment`.
    /// Waits for its start-up line when `waitForStart`.
    /// `executable` replaces the agent's binary, for a wrapper such as `setpriv` that runs it;
    /// `build` picks the binary otherwise (see `AgentBuild`).
    init(
        executable: String? = nil, build: AgentBuild = .release, _ arguments: [String], environment: [String: String] = [:],
        waitForStart: Bool = true
    ) throws {
        process.executableURL = URL(fileURLWithPath: try executable ?? statorBinary(build))
        process.arguments = arguments
        // A clean environment, but sanitizer settings pass through (scripts/test --sanitize).
        var base = ["PATH": "/usr/bin:/bin"]
        for (name, value) in ProcessInfo.processInfo.environment where name.hasSuffix("SAN_OPTIONS") { base[name] = value }
        process.environment = base.merging(environment) { $1 }
        process.standardOutput = stdout.pipe
        process.standardError = stderr.pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        if waitForStart { try awaitStart() }
    }

    /// Runs the agent on ephemeral loopback ports with the given extra flags.
    convenience init(
        agent flags: [String], build: AgentBuild = .release, udp: String = "127.0.0.1:0", environment: [String: String] = [:]
    ) throws {
        try self.init(build: build, ["--udp.address", udp, "--http.address", "127.0.0.1:0"] + flags, environment: environment)
    }

    private func awaitStart() throws {
        let line = try waitFor(timeout: 10) { text in
            text.split(separator: "\n").first { $0.contains("\"msg\":\"stator started\"") }.map(String.init)
        }
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
        func port(_ key: String) -> UInt16 {
            guard let address = object[key] as? String, let colon = address.lastIndex(of: ":") else { return 0 }
            return UInt16(address[address.index(after: colon)...]) ?? 0
        }
        udpPort = port("udp.address")
        httpPort = port("http.address")
        tcpPort = port("tcp.address")
        if let address = object["udp.address"] as? String, address.hasPrefix("[") { udpHost = "::1" }
        guard udpPort != 0, httpPort != 0 else { throw TestFailure("no ports in start-up line: \(line)") }
    }

    /// Polls the process's stderr until `match` finds something, or fails after `timeout` seconds.
    func waitFor<T>(timeout: Double, _ match: (String) -> T?) throws -> T {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let found = match(stderr.text) { return found }
            if !process.isRunning { break }
            usleep(10_000)
        }
        if let found = match(stderr.text) { return found }
        throw TestFailure("timed out; stator stderr:\n\(stderr.text)")
    }

    func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// The CPU time the agent has used so far, in clock ticks (user and system, from
    /// `/proc/<pid>/stat`): how a test sees a busy loop without timing anything.
    func cpuTicks() throws -> Int {
        let fields = try String(contentsOfFile: "/proc/\(process.processIdentifier)/stat", encoding: .utf8)
            .split(separator: " ")
        return (Int(fields[13]) ?? 0) + (Int(fields[14]) ?? 0)
    }

    /// Whether the agent is still running, and the end of what it logged (a sanitizer
    /// report ends it), for failure messages.
    var state: String {
        let status = process.isRunning ? "the agent is running" : "the agent exited with \(process.terminationStatus)"
        return "\(status); its stderr ends: \(stderr.text.suffix(1500))"
    }

    /// Waits for the process to exit (killing it after `timeout`) and returns its status.
    @discardableResult
    func waitForExit(timeout: Double = 15) throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw TestFailure("stator did not exit within \(timeout) s; stderr:\n\(stderr.text)")
        }
        process.waitUntilExit()
        stdout.waitUntilClosed()
        stderr.waitUntilClosed()
        return process.terminationStatus
    }

    /// SIGTERM, then the exit status.
    func stop() throws -> Int32 {
        signal(SIGTERM)
        return try waitForExit()
    }

    /// Sends each datagram to the agent's UDP port.
    func send(_ datagrams: [String]) throws { try sendUDP(datagrams.map { Array($0.utf8) }, host: udpHost, port: udpPort) }
    func send(_ datagram: String) throws { try send([datagram]) }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// Sends datagrams over real UDP.
func sendUDP(_ datagrams: [[UInt8]], host: String = "127.0.0.1", port: UInt16) throws {
    let fd = socket(host.contains(":") ? AF_INET6 : AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket failed") }
    defer { close(fd) }
    var sndbuf: Int32 = 4 << 20
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, 4)
    for datagram in datagrams {
        // A loaded machine (the whole suite runs at once) can refuse a send for a moment
        // (ENOBUFS and the like): retry a few times, a few milliseconds apart, then report
        // what the last attempt said.
        var attempts = 0
        while true {
            let sent = withSocketAddress(host, port) { sendto(fd, datagram, datagram.count, 0, $0, $1) }
            let error = errno
            if sent == datagram.count { break }
            attempts += 1
            guard attempts < 20, sent < 0 else {
                throw TestFailure("sendto returned \(sent) of \(datagram.count) bytes: \(String(cString: strerror(error)))")
            }
            usleep(5_000)
        }
    }
}

/// Binds a socket of `type` on 127.0.0.1 (`port` 0 picks a free one), without
/// SO_REUSEPORT; a stream socket also listens.
/// - Returns: the descriptor and the bound port.
func bindLoopback(_ type: Int32, port: UInt16 = 0, reuseAddress: Bool = false) throws -> (fd: Int32, port: UInt16) {
    let fd = socket(AF_INET, type, 0)
    if reuseAddress {
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, 4)
    }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, len) == 0 && (type != Int32(SOCK_STREAM.rawValue) || listen(fd, 64) == 0)
                && getsockname(fd, $0, &len) == 0
        }
    }
    guard ok else {
        let reason = String(cString: strerror(errno))
        close(fd)
        throw TestFailure("cannot bind 127.0.0.1:\(port): \(reason)")
    }
    return (fd, UInt16(bigEndian: addr.sin_port))
}

/// A free TCP port on 127.0.0.1 (bound, read, released); nothing listens there afterwards.
/// No port is handed out twice in one test run: the kernel may pick a released port again
/// at once, and two peers told the same port would fight over it.
func freePort() throws -> UInt16 {
    while true {
        let (fd, port) = try bindLoopback(Int32(SOCK_STREAM.rawValue))
        close(fd)
        if portsHandedOut.withLock({ $0.insert(port).inserted }) { return port }
    }
}

private let portsHandedOut = Mutex<Set<UInt16>>([])

/// Scrapes the agent's `/metrics` until `condition` holds, failing after `timeout` seconds.
/// - Returns: the page that satisfied it.
/// On a time-out the failure gives the last page's figures and the agent's state.
@discardableResult
func scrape(_ agent: StatorProcess, timeout: Double = 10, until what: String, _ condition: (String) -> Bool) throws -> String {
    var page = ""
    try eventually(timeout: timeout, what, seen: pageFigures(page) + "; " + agent.state) {
        page = try httpRequest(port: agent.httpPort, "/metrics").body
        return condition(page)
    }
    return page
}

/// A page's figures for a failure message: its size, how many samples, and the lines and
/// series the agent counted.
func pageFigures(_ page: String) -> String {
    let samples = page.split(separator: "\n").count { !$0.hasPrefix("#") }
    let lines = sample(page, "stator_lines_received_total").map { String(Int($0)) } ?? "?"
    let series = sample(page, "stator_series_active").map { String(Int($0)) } ?? "?"
    return "a page of \(page.utf8.count) bytes, \(samples) samples, lines received \(lines), series active \(series)"
}

/// Calls `body` with a `sockaddr` for an IPv4 or IPv6 literal and a port.
func withSocketAddress<R>(_ host: String, _ port: UInt16, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
    if host.contains(":") {
        var addr = sockaddr_in6()
        addr.sin6_family = sa_family_t(AF_INET6)
        addr.sin6_port = port.bigEndian
        inet_pton(AF_INET6, host, &addr.sin6_addr)
        return withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        }
    }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    inet_pton(AF_INET, host, &addr.sin_addr)
    return withUnsafePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
}

/// A response read from a real HTTP connection.
struct HTTPReply {
    var status: Int
    var headers: [String: String]
    var body: String
}

/// Sends raw request bytes over TCP and reads until the server closes (or `timeout`).
func rawHTTP(port: UInt16, _ request: String, timeout: Double = 5) throws -> String {
    String(decoding: try rawHTTPBytes(port: port, request, timeout: timeout), as: UTF8.self)
}

/// Like `rawHTTP`, returning the bytes.
func rawHTTPBytes(port: UInt16, _ request: String, timeout: Double = 5) throws -> [UInt8] {
    try rawHTTPExchange(port: port, request, timeout: timeout).bytes
}

/// Like `rawHTTPBytes`, also saying how the exchange ended (for failure messages): the server
/// closed the connection, or the read failed or timed out, after how long.
func rawHTTPExchange(port: UInt16, _ request: String, timeout: Double = 5) throws -> (bytes: [UInt8], ending: String) {
    let started = Date()
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket failed") }
    defer { close(fd) }
    var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    let rc = withSocketAddress("127.0.0.1", port) { connect(fd, $0, $1) }
    guard rc == 0 else { throw TestFailure("connect failed: \(String(cString: strerror(errno)))") }
    let bytes = Array(request.utf8)
    _ = send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL))
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    var ending = ""
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 {
            let after = String(format: "%.3f s", Date().timeIntervalSince(started))
            ending =
                n == 0
                ? "closed by the server after \(after)" : "recv failed after \(after): \(String(cString: strerror(errno)))"
            break
        }
        received.append(contentsOf: buffer[0..<n])
    }
    return (received, ending)
}

/// Decompresses (possibly multi-member) gzip with the system's `gzip -dc`.
func gunzipBytes(_ bytes: [UInt8]) throws -> [UInt8] {
    let (status, text) = try runProgram("/bin/gzip", ["-dc"], input: bytes)
    guard status == 0 else { throw TestFailure("gzip -dc: \(text)") }
    return Array(text.utf8)
}

/// One request with `Connection: close`.
func httpRequest(port: UInt16, _ path: String, method: String = "GET") throws -> HTTPReply {
    let exchange = try rawHTTPExchange(port: port, "\(method) \(path) HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
    let text = String(decoding: exchange.bytes, as: UTF8.self)
    guard let split = text.range(of: "\r\n\r\n") else {
        throw TestFailure("no response head from port \(port) (\(exchange.ending)) in: \(text)")
    }
    let headLines = text[..<split.lowerBound].split(separator: "\r\n")
    let statusLine = headLines.first.map(String.init) ?? ""
    let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") ?? 0
    var headers: [String: String] = [:]
    for line in headLines.dropFirst() {
        if let colon = line.firstIndex(of: ":") {
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
    }
    return HTTPReply(status: status, headers: headers, body: String(text[split.upperBound...]))
}

/// Reads a metric's value from a /metrics page: the series as written, or else the sum of the
/// series of that name whose labels include the given ones (the receive counters carry an
/// `input` label that most tests do not care about).
func sample(_ page: String, _ series: String) -> Double? {
    for line in page.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.dropFirst(series.count + 1))
    }
    func parse(_ text: Substring) -> (name: Substring, labels: Set<Substring>) {
        guard let brace = text.firstIndex(of: "{") else { return (text, []) }
        return (text[..<brace], Set(text[text.index(after: brace)...].dropLast().split(separator: ",")))
    }
    let wanted = parse(Substring(series))
    var sum: Double?
    for line in page.split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
        let found = parse(line[..<space])
        guard found.name == wanted.name, wanted.labels.isSubset(of: found.labels) else { continue }
        sum = (sum ?? 0) + value
    }
    return sum
}

/// A value from the agent's own metrics page (`name` with its labels, as written there).
/// -1 when the page has no such series.
func selfMetric(_ agent: StatorProcess, _ series: String) throws -> Double {
    do {
        return sample(try httpRequest(port: agent.httpPort, "/metrics").body, series) ?? -1
    } catch {
        throw TestFailure("\(error); \(agent.state)")
    }
}

/// The sum of `name`'s counter values in a JSON-lines file; every line must parse.
func counterSum(_ path: String, _ name: String) throws -> Double {
    try jsonLines(readFile(path)).filter { $0["name"] as? String == name }.reduce(0) { $0 + ($1["value"] as? Double ?? 0) }
}

/// Parses NDJSON into objects.
func jsonLines(_ text: String) throws -> [[String: Any]] {
    try text.split(separator: "\n").map { line in
        guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw TestFailure("not a JSON object: \(line)")
        }
        return object
    }
}

func readFile(_ path: String) -> String {
    (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
}

/// Polls `condition` every 10 ms until it holds, failing after `timeout` seconds.
/// `seen` is evaluated on a time-out, after the last poll: what the condition saw last
/// (a count, a page's figures), so that a failure explains itself. An error thrown by the
/// condition (a scrape a slow agent did not answer in time) is retried until the deadline;
/// the last poll's error is what a time-out then throws.
func eventually(
    timeout: Double = 10, _ what: String, seen: @autoclosure () -> String = "", _ condition: () throws -> Bool
) throws {
    let started = Date()
    let deadline = started.addingTimeInterval(timeout)
    while Date() < deadline {
        if (try? condition()) == true { return }
        usleep(10_000)
    }
    if try condition() { return }
    let last = seen()
    let waited = String(format: "%.1f", Date().timeIntervalSince(started))
    throw TestFailure("timed out after \(waited) s waiting for \(what)" + (last.isEmpty ? "" : "; seen last: \(last)"))
}

/// Runs a command with `input` on stdin; returns (status, stdout + stderr).
func runProgram(_ path: String, _ arguments: [String], input: [UInt8] = []) throws -> (Int32, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let stdin = Pipe()
    let output = PipeCollector()
    process.standardInput = stdin
    process.standardOutput = output.pipe
    process.standardError = output.pipe
    try process.run()
    stdin.fileHandleForWriting.write(Data(input))
    try stdin.fileHandleForWriting.close()
    let deadline = Date().addingTimeInterval(60)
    while process.isRunning && Date() < deadline { usleep(10_000) }
    if process.isRunning {
        process.terminate()
        throw TestFailure("\(path) did not finish")
    }
    output.waitUntilClosed()
    return (process.terminationStatus, output.text)
}
