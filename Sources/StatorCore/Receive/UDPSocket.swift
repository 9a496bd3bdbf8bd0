import CStatorSys
import Glibc

/// A bound UDP socket: `SO_REUSEPORT`, an explicit receive buffer, the
/// kernel's drop counter on each datagram, and a receive timeout so the
/// reader can notice a stop request. Owns its file descriptor.
final class UDPSocket: Sendable {
    let fd: Int32
    /// What the kernel granted for `SO_RCVBUF` (bytes usable for data).
    let grantedReceiveBuffer: Int

    /// The kernel's count of datagrams it dropped on this socket because the receive buffer
    /// was full (`SO_MEMINFO`: one system call, instead of a control message on every datagram).
    var kernelDrops: UInt32? {
        var drops: UInt32 = 0
        return CStatorSys_socket_drops(fd, &drops) == 1 ? drops : nil
    }

    /// Opens and binds a socket.
    /// - Parameters:
    ///   - address: where to bind.
    ///   - receiveBuffer: bytes to ask for.
    ///   - reusePort: join a `SO_REUSEPORT` group (one socket per reader thread).
    ///   - receiveTimeoutMillis: how long a blocking receive waits before returning `EAGAIN`.
    init(address: SocketAddress, receiveBuffer: Int, reusePort: Bool, receiveTimeoutMillis: Int = 100) throws(SystemError) {
        let fd = socket(address.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError(errno: errno, call: "socket") }
        var one: Int32 = 1
        var ok = true
        if reusePort { ok = ok && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, 4) == 0 }
        var timeout = timeval(tv_sec: receiveTimeoutMillis / 1000, tv_usec: (receiveTimeoutMillis % 1000) * 1000)
        ok = ok && setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)) == 0
        guard ok else {
            let e = errno
            Glibc.close(fd)
            throw SystemError(errno: e, call: "setsockopt")
        }
        // SO_RCVBUFFORCE passes net.core.rmem_max when we may (CAP_NET_ADMIN); else ask within it.
        var size = Int32(clamping: receiveBuffer)
        if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, 4) != 0 {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, 4)
        }
        var granted: Int32 = 0
        var len = socklen_t(4)
        getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &granted, &len)
        grantedReceiveBuffer = Int(granted) / 2  // Linux reports twice the usable size.
        var storage = address.storage
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, address.length) }
        }
        guard rc == 0 else {
            let e = errno
            Glibc.close(fd)
            throw SystemError(errno: e, call: "bind \(address)")
        }
        self.fd = fd
    }

    /// The address the socket is bound to (its port, when 0 was asked for).
    func localAddress() -> SocketAddress? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return rc == 0 ? SocketAddress(storage: storage, length: len) : nil
    }

    deinit { Glibc.close(fd) }

    /// Binds a plain socket (no `SO_REUSEPORT`) to check that nobody holds the
    /// address, then releases it (UDP frees a port at once).
    /// - Returns: the address with its port filled in when port 0 was asked for.
    static func probe(_ address: SocketAddress) throws(SystemError) -> SocketAddress {
        let socket = try UDPSocket(address: address, receiveBuffer: 0, reusePort: false)
        let bound = socket.localAddress() ?? address
        withExtendedLifetime(socket) {}
        return bound
    }
}
