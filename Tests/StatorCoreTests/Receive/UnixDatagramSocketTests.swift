import Foundation
import Glibc
import Testing

@testable import StatorCore

/// The permission bits of the file at `path`, as `lstat` sees it.
private func fileMode(_ path: String) throws -> UInt32 {
    var info = stat()
    try #require(lstat(path, &info) == 0, "lstat \(path): \(String(cString: strerror(errno)))")
    return UInt32(info.st_mode) & 0o7777
}

/// A socket path of its own (short: a Unix socket path holds at most 107 bytes), removed after `body`.
private func withSocketPath(_ body: (String) throws -> Void) rethrows {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("sock-\(UUID().uuidString.prefix(12))").path
    defer { unlink(path) }
    try body(path)
}

/// The socket file never has a wider mode than `unixgram.mode`, not even between `bind` and
/// the `chmod` after it: `bind` alone creates it as 0777 less the umask (0755 under the usual
/// 022, 0777 under 000), through which any local user could connect while it lasted. The
/// file is checked as `bind` leaves it, before anything else touches it.
@Test(arguments: [0o600, 0o620, 0o660, 0o666] as [UInt32])
func theSocketFileHasNoWiderModeThanAskedFromItsFirstInstant(_ mode: UInt32) throws {
    try withSocketPath { path in
        var address = try #require(SocketAddress.unix(path))
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        #expect(UnixDatagramSocket.bind(fd, to: &address, mode: mode) == 0)
        let created = try fileMode(path)
        #expect(created & ~mode == 0, "created with \(String(created, radix: 8)) for mode \(String(mode, radix: 8))")
    }
}

/// After start, the file has exactly `unixgram.mode` (also bits the umask would take away).
@Test(arguments: [0o600, 0o620, 0o660, 0o666] as [UInt32])
func theSocketFileEndsWithExactlyItsMode(_ mode: UInt32) throws {
    try withSocketPath { path in
        var configuration = UnixgramConfiguration()
        configuration.path = path
        configuration.mode = mode
        let socket = try UnixDatagramSocket(configuration: configuration)
        #expect(try fileMode(path) == mode)
        socket.remove()
    }
}
