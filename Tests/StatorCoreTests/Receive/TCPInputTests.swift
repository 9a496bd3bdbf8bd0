import Foundation
import Glibc
import Testing

@testable import StatorCore

/// A client connected and sent its lines, but the input had not accepted the connection yet
/// (it waited in the listener's backlog) when the agent was told to stop: its lines count.
/// CI lost them once, under AddressSanitizer on a busy machine; here the input's thread
/// first runs after the stop, so the connections are still in the backlog every time.
@Test func stoppingReadsTheClientsStillInTheBacklog() throws {
    let h = Harness()
    var configuration = TCPConfiguration()
    configuration.address = "127.0.0.1:0"
    let input = try TCPInput(
        configuration: configuration, table: h.table, metrics: SelfMetrics(readers: 1),
        logger: Logger(label: "test", level: .critical))
    let port = try #require(UInt16(input.boundAddress.split(separator: ":").last ?? ""))
    var clients: [Int32] = []
    defer { for fd in clients { close(fd) } }
    for _ in 0..<4 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(connected == 0)
        let lines = Array((String(repeating: "backlog:1|c\n", count: 10) + "backlog:1|c").utf8)
        #expect(send(fd, lines, lines.count, Int32(MSG_NOSIGNAL)) == lines.count)
        clients.append(fd)
    }
    input.stop()  // before its thread ever runs: it sees the stop on its first turn
    input.start()
    input.stop()
    #expect(h.flush(at: 10_000).counter("backlog")?.value == 44)
}
