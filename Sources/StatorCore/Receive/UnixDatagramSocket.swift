import CStatorSys
import Glibc

/// Configuration of the Unix datagram input (`unixgram.*`); off while `path` is empty.
public struct UnixgramConfiguration: Sendable {
    /// The socket file (`unixgram.path`).
    public var path = ""
    /// Permission bits of the socket file (`unixgram.mode`): who may write to it.
    public var mode: UInt32 = 0o660
    /// Receive buffer to ask the kernel for (`unixgram.receive_buffer_bytes`).
    public var receiveBufferBytes: Int = 8 << 20

    public init() {}

    /// Reads `unixgram.mode`: octal permission bits such as `0660`.
    public static func parseMode(_ text: String) -> UInt32? {
        guard !text.isEmpty, text.count <= 4, text.allSatisfy({ ("0"..."7").contains($0) }), let bits = UInt32(text, radix: 8)
        else { return nil }
        return bits
    }
}

/// A bound Unix datagram socket (DogStatsD's local path): a full receive buffer blocks the
/// sender instead of dropping, and the file's permissions say who may write. The file is
/// created at `path` with `mode`; a stale socket file there (nobody listening) is replaced,
/// anything else is an error that leaves it alone. `remove()` unlinks it at exit, if it is
/// still the file this socket made. Owns its file descriptor.
final class UnixDatagramSocket: Sendable {
    let fd: Int32
    let path: String
    /// What the kernel granted for `SO_RCVBUF` (bytes usable for data).
    let grantedReceiveBuffer: Int
    /// The largest datagram a sender here can send (`net.core.wmem_max`, at least 64 KiB):
    /// the reader's buffer per datagram.
    let maxDatagram: Int
    /// The file's device and inode, so that `remove()` unlinks only the file it made.
    private let identity: (dev_t, ino_t)

    /// - Throws: `ConfigError` for a path that cannot be used, `SystemError` when a call fails.
    init(configuration: UnixgramConfiguration, receiveTimeoutMillis: Int = 100) throws {
        let path = configuration.path
        guard var address = SocketAddress.unix(path) else {
            throw ConfigError("unixgram.path \(path) is longer than a Unix socket path may be (107 bytes)")
        }
        try Self.clearStale(path)
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError(errno: errno, call: "socket") }
        var timeout = timeval(tv_sec: receiveTimeoutMillis / 1000, tv_usec: (receiveTimeoutMillis % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var size = Int32(clamping: configuration.receiveBufferBytes)
        if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, 4) != 0 { setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, 4) }
        var granted: Int32 = 0
        var len = socklen_t(4)
        getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &granted, &len)
        grantedReceiveBuffer = Int(granted) / 2  // Linux reports twice the usable size.
        guard Self.bind(fd, to: &address, mode: configuration.mode) == 0 else {
            let e = errno
            Glibc.close(fd)
            throw SystemError(errno: e, call: "bind \(path)")
        }
        // The file has `mode` less the umask's bits from its creation; now exactly `mode`.
        var info = stat()
        guard chmod(path, mode_t(configuration.mode)) == 0, lstat(path, &info) == 0 else {
            let e = errno
            unlink(path)
            Glibc.close(fd)
            throw SystemError(errno: e, call: "chmod \(path)")
        }
        identity = (info.st_dev, info.st_ino)
        self.fd = fd
        self.path = path
        maxDatagram = max(DatagramBatchReader.udpDatagram, Self.largestDatagram())
    }

    /// Binds `fd` to `address`, creating the socket file with no permission bits beyond `mode`
    /// from its first instant: a sender must not be able to connect through wider bits while
    /// they last (SPEC section 12).
    ///
    /// Linux creates the file with the socket's own inode mode less the umask, so that mode is
    /// set first (`fchmod` on an unbound socket); without it the file starts as 0777 less the
    /// umask (0755, or 0777 under `umask 000`) until a `chmod`. The umask may still take bits
    /// away: the caller sets exactly `mode` after.
    /// - Returns: `bind`'s result (0, or -1 with `errno` set).
    static func bind(_ fd: Int32, to address: inout sockaddr_un, mode: UInt32) -> Int32 {
        guard fchmod(fd, mode_t(mode & 0o777)) == 0 else { return -1 }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
    }

    /// Removes a socket file nobody listens on; refuses anything else at `path`.
    private static func clearStale(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }  // nothing there
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw ConfigError("unixgram.path \(path) exists and is not a socket; it was left as it is")
        }
        let probe = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard probe >= 0 else { throw SystemError(errno: errno, call: "socket") }
        defer { Glibc.close(probe) }
        guard var address = SocketAddress.unix(path) else { return }  // (checked by the caller)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(probe, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if rc == 0 { throw ConfigError("unixgram.path \(path): another process is receiving on this socket") }
        guard errno == ECONNREFUSED else { throw SystemError(errno: errno, call: "connect \(path)") }
        guard unlink(path) == 0 else { throw SystemError(errno: errno, call: "unlink stale socket \(path)") }
    }

    /// `net.core.wmem_max`: no sender's buffer, and so no datagram, is larger (capped at 4 MiB).
    private static func largestDatagram() -> Int {
        guard let value = ProcessStats.readNumber("/proc/sys/net/core/wmem_max") else { return 212_992 }
        return min(value, 4 << 20)
    }

    /// Unlinks the socket file, if it is still the one this socket made.
    func remove() {
        var info = stat()
        guard lstat(path, &info) == 0, info.st_dev == identity.0, info.st_ino == identity.1 else { return }
        unlink(path)
    }

    deinit { Glibc.close(fd) }
}
