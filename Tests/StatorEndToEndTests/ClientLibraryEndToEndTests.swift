import Foundation
import Testing

/// The python3 on the test's PATH (scripts/test installs the `statsd` and `datadog` packages
/// into it from PyPI).
func python() throws -> String {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for dir in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(dir)/python3") {
        return "\(dir)/python3"
    }
    throw TestFailure("python3 not found on PATH")
}

@Test func realClientLibrariesSendThroughTheTCPAndUnixInputs() throws {
    let dir = try TemporaryDirectory()
    let path = dir.file("statsd.sock")
    let out = dir.file("out.json")
    let agent = try StatorProcess(agent: [
        "--tcp.address", "127.0.0.1:0", "--unixgram.path", path, "--flush_interval", untilShutdown, "--sinks.json.path", out,
    ])
    // The Python `statsd` package's TCP client and Datadog's DogStatsD client on a Unix socket,
    // as applications use them.
    let script = """
        import statsd
        from datadog.dogstatsd import DogStatsd
        tcp = statsd.TCPStatsClient(host="127.0.0.1", port=\(agent.tcpPort), prefix="py")
        for _ in range(250):
            tcp.incr("tcp.requests")
            tcp.timing("tcp.latency", 12)
        tcp.gauge("tcp.queue", 7)
        tcp.close()
        # A blocking socket (socket_timeout): non-blocking, the client drops what a full socket refuses.
        dog = DogStatsd(socket_path="\(path)", disable_telemetry=True, constant_tags=["env:test"], socket_timeout=5)
        for _ in range(300):
            dog.increment("dog.requests", tags=["route:home"])
        dog.histogram("dog.size", 42)
        dog.close_socket()
        """
    let (status, output) = try runProgram(try python(), ["-c", script])
    #expect(status == 0, "\(output)")
    try eventually("every line") {
        try selfMetric(agent, #"stator_lines_received_total{input="tcp"}"#) == 501
            && selfMetric(agent, #"stator_lines_received_total{input="unixgram"}"#) == 301
    }
    #expect(try selfMetric(agent, #"stator_lines_invalid_total{input="tcp"}"#) == 0)
    #expect(try selfMetric(agent, #"stator_lines_invalid_total{input="unixgram"}"#) == 0)
    #expect(try agent.stop() == 0)
    let lines = try jsonLines(readFile(out))
    func find(_ name: String) -> [String: Any]? { lines.first { $0["name"] as? String == name } }
    #expect(find("py.tcp.requests")?["value"] as? Double == 250)
    #expect(find("py.tcp.latency")?["count"] as? Double == 250)
    #expect(find("py.tcp.queue")?["value"] as? Double == 7)
    #expect(find("dog.requests")?["value"] as? Double == 300)
    #expect(find("dog.requests")?["tags"] as? [String: String] == ["env": "test", "route": "home"])
    #expect(find("dog.size")?["sum"] as? Double == 42)
}
