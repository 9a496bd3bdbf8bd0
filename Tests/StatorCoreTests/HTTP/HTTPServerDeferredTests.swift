import Dispatch
import Foundation
import Glibc
import Testing
@testable import StatorCore

/// Sends one request on a new connection and returns the socket, the answer not yet read.
private func sendRequest(port: UInt16, _ path: String) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw SystemError(errno: errno, call: "socket") }
    var timeout = timeval(tv_sec: 2, tv_usec: 0)  // a read never blocks the test for longer
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        close(fd)
        throw SystemError(errno: errno, call: "connect")
    }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    return fd
}

/// Reads the answer until the server closes (or a read waits 2 s) and closes the socket.
private func readAnswer(_ fd: Int32) -> String {
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        bytes += chunk[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// While a deferred response's work runs on the worker, the server answers other requests.
@Test func aDeferredResponseLeavesTheServerFreeForOtherRequests() throws {
    let release = DispatchSemaphore(value: 0)
    var configuration = HTTPServerConfiguration()
    configuration.address = "127.0.0.1:0"
    let server = try HTTPServer(configuration: configuration, logger: Logger(label: "test", level: .critical)) { head in
        guard head.path == "/slow" else { return .text(200, "fast\n") }
        return .later {
            // Bounded, should the test fail before it signals; longer than a read's 2 s, so that a
            // server that ran this on its own thread leaves /fast unanswered.
            _ = release.wait(timeout: .now() + 10)
            return .text(200, "slow\n")
        }
    }
    server.start()
    defer { server.stop() }
    let port = try #require(server.boundAddress.split(separator: ":").last.flatMap { UInt16($0) })
    let slow = try sendRequest(port: port, "/slow")
    usleep(50_000)  // the server has handed /slow to its worker
    let fast = readAnswer(try sendRequest(port: port, "/fast"))
    release.signal()
    #expect(fast.hasPrefix("HTTP/1.1 200 OK\r\n") && fast.hasSuffix("\r\n\r\nfast\n"), "\(fast)")
    let answer = readAnswer(slow)
    #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n") && answer.hasSuffix("\r\n\r\nslow\n"), "\(answer)")
}
