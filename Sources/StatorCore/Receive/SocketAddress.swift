import CStatorSys
import Glibc

/// An IPv4 or IPv6 socket address parsed from `host:port` or `[v6]:port`.
public struct SocketAddress: Sendable, CustomStringConvertible {
    /// The raw address, as `bind` and `connect` take it.
    var storage: sockaddr_storage
    var length: socklen_t

    /// Parses `host:port`, `[v6]:port` or `host` names that resolve (e.g. `localhost:8125`).
    /// - Throws: `ConfigError` when the text is not an address.
    public init(parsing text: String) throws(ConfigError) {
        let host: String
        let port: String
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw ConfigError("invalid address \"\(text)\": expected [IPv6]:port")
            }
            host = String(text[text.index(after: text.startIndex)..<close])
            port = String(text[text.index(close, offsetBy: 2)...])
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                throw ConfigError("invalid address \"\(text)\": expected host:port")
            }
            host = String(text[..<colon])
            port = String(text[text.index(after: colon)...])
            if host.contains(":") { throw ConfigError("invalid address \"\(text)\": write IPv6 as [addr]:port") }
        }
        guard let portNumber = UInt16(port) else { throw ConfigError("invalid port in address \"\(text)\"") }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        hints.ai_flags = AI_PASSIVE
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host.isEmpty ? nil : host, String(portNumber), &hints, &result)
        guard rc == 0, let info = result else {
            throw ConfigError("invalid address \"\(text)\": \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(result) }
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(start: info.pointee.ai_addr, count: Int(info.pointee.ai_addrlen)))
        }
        self.storage = storage
        self.length = info.pointee.ai_addrlen
    }

    init(storage: sockaddr_storage, length: socklen_t) {
        self.storage = storage
        self.length = length
    }

    /// `AF_INET` or `AF_INET6`.
    var family: Int32 { Int32(storage.ss_family) }

    /// The port.
    public var port: UInt16 {
        withUnsafeBytes(of: storage) { raw in
            // sin_port and sin6_port sit at the same offset, in network order.
            UInt16(bigEndian: raw.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        }
    }

    /// Whether only this machine can reach the address: 127.0.0.0/8, `::1`, or an IPv4
    /// loopback address mapped into IPv6. A wildcard (`0.0.0.0`, `::`) is not.
    public var isLoopback: Bool {
        withUnsafeBytes(of: storage) { raw in
            if family == AF_INET { return raw[4] == 127 }
            guard family == AF_INET6 else { return false }
            let address = Array(raw[8..<24])
            if address == [UInt8](repeating: 0, count: 15) + [1] { return true }
            return address[0..<10].allSatisfy { $0 == 0 } && address[10] == 0xFF && address[11] == 0xFF && address[12] == 127
        }
    }

    /// `1.2.3.4:5` or `[::1]:5`.
    public var description: String {
        withUnsafeBytes(of: storage) { raw in SocketAddress.format(raw) }
    }

    private static func cString(_ chars: [CChar]) -> String {
        String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Formats a raw `sockaddr` (as received with a datagram).
    static func format(_ raw: UnsafeRawBufferPointer) -> String {
        guard raw.count >= 2, let base = raw.baseAddress else { return "?" }
        let family = Int32(raw.load(as: sa_family_t.self))
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let port = UInt16(bigEndian: raw.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        if family == AF_INET {
            inet_ntop(AF_INET, base + 4, &text, socklen_t(text.count))
            return "\(cString(text)):\(port)"
        }
        if family == AF_INET6 {
            inet_ntop(AF_INET6, base + 8, &text, socklen_t(text.count))
            return "[\(cString(text))]:\(port)"
        }
        return "?"
    }
}

extension SocketAddress {
    /// A listening stream socket bound to this address: non-blocking, close-on-exec, with
    /// `SO_REUSEADDR` (a restart need not wait for the old connections' TIME_WAIT).
    /// - Returns: the descriptor and the bound address (its real port when 0 was asked for).
    func listen(backlog: Int32, purpose: String) throws(SystemError) -> (fd: Int32, bound: SocketAddress) {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SystemError(errno: errno, call: "socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, 4)
        var address = storage
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard rc == 0, Glibc.listen(fd, backlog) == 0 else {
            let e = errno
            close(fd)
            throw SystemError(errno: e, call: "bind \(purpose) \(self)")
        }
        var bound = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return (fd, SocketAddress(storage: bound, length: len))
    }

    /// The `sockaddr_un` of a Unix socket path, or `nil` when the path does not fit.
    static func unix(_ path: String) -> sockaddr_un? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        guard path.utf8.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() { raw[i] = b }
        }
        return address
    }
}
