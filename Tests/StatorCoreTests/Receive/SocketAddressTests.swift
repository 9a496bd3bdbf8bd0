import Testing

@testable import StatorCore

@Test(
    arguments: [
        ("127.0.0.1:8125", true), ("127.3.4.5:1", true), ("[::1]:9102", true), ("[::ffff:127.0.0.1]:1", true),
        ("0.0.0.0:8125", false), ("[::]:8125", false), ("10.0.0.1:1", false), ("[::ffff:10.0.0.1]:1", false),
        ("[fe80::1]:1", false),
    ] as [(String, Bool)])
func loopbackAddressesAreTold(_ text: String, _ loopback: Bool) throws {
    #expect(try SocketAddress(parsing: text).isLoopback == loopback)
}
