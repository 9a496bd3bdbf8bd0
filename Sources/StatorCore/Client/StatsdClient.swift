import Glibc

/// Sends statsd lines to an agent over UDP, as `stator send` does: each line is checked
/// with the agent's own parser first, and valid lines are packed into datagrams of at
/// most `maxDatagram` bytes without ever splitting a line.
public struct StatsdClient: ~Copyable {
    /// Fits a 1,500-byte Ethernet MTU with IPv6 and UDP headers.
    public static let maxDatagram = 1432

    private let fd: Int32
    private let address: SocketAddress

    /// - Throws: `SystemError` when no socket can be made.
    public init(address: SocketAddress) throws(SystemError) {
        let fd = socket(address.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError(errno: errno, call: "socket") }
        self.fd = fd
        self.address = address
    }

    deinit { close(fd) }

    /// Why the agent would refuse `line` (an event or service check too), or `nil` when it
    /// would accept it.
    public static func check(_ line: [UInt8]) -> ParseFailure? {
        line.withUnsafeBytes { raw in
            var parsed = ParsedLine()
            switch StatsdParser.parse(raw, 0..<raw.count, into: &parsed) {
            case .failure(let reason): return reason
            case .metric:
                // A `|T` timestamp is bounded by the agent's clock; this machine's stands in for it.
                if parsed.timestamp >= 0, !TimestampBounds.accepts(parsed.timestamp, now: WallClock.nowMillis()) {
                    return .invalidTimestamp
                }
                return nil
            case .event:
                if case .failure(let reason) = EventParser.parse(raw, 0..<raw.count, limits: parsed.limits) { return reason }
                return nil
            }
        }
    }

    /// Joins lines with `\n` into datagrams of at most `maxDatagram` bytes; a longer line
    /// travels alone.
    public static func pack(_ lines: [[UInt8]], maxDatagram: Int = maxDatagram) -> [[UInt8]] {
        var datagrams: [[UInt8]] = []
        var current: [UInt8] = []
        for line in lines {
            if !current.isEmpty, current.count + 1 + line.count > maxDatagram {
                datagrams.append(current)
                current = []
            }
            if !current.isEmpty { current.append(0x0A) }
            current += line
        }
        if !current.isEmpty { datagrams.append(current) }
        return datagrams
    }

    /// Sends each datagram with one `sendto`.
    /// - Throws: `SystemError` on the first failure.
    public func send(_ datagrams: [[UInt8]]) throws(SystemError) {
        var storage = address.storage
        let length = address.length
        for datagram in datagrams {
            let sent = withUnsafePointer(to: &storage) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    datagram.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, sa, length) }
                }
            }
            guard sent == datagram.count else { throw SystemError(errno: errno, call: "sendto \(address)") }
        }
    }
}

extension StatsdClient {
    /// Sends each datagram to the Unix datagram socket at `path` (a blocking socket: a full
    /// agent makes this wait rather than drop).
    public static func sendUnix(path: String, _ datagrams: [[UInt8]]) throws(SystemError) {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError(errno: errno, call: "socket") }
        defer { close(fd) }
        guard var address = SocketAddress.unix(path) else { throw SystemError(errno: ENAMETOOLONG, call: "connect \(path)") }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw SystemError(errno: errno, call: "connect \(path)") }
        for datagram in datagrams {
            let sent = datagram.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
            guard sent == datagram.count else { throw SystemError(errno: errno, call: "send \(path)") }
        }
    }

    /// Sends the lines, each ended by a newline, over one TCP connection to `address`, then
    /// closes it.
    public static func sendTCP(address: SocketAddress, _ lines: [[UInt8]]) throws(SystemError) {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError(errno: errno, call: "socket") }
        defer { close(fd) }
        var storage = address.storage
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, address.length) }
        }
        guard rc == 0 else { throw SystemError(errno: errno, call: "connect \(address)") }
        var stream: [UInt8] = []
        for line in lines {
            stream += line
            stream.append(0x0A)
        }
        var offset = 0
        while offset < stream.count {
            let n = stream.withUnsafeBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return Glibc.send(fd, base + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw SystemError(errno: errno, call: "send \(address)") }
            offset += n
        }
    }
}
