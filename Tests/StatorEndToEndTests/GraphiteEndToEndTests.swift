import Foundation
import Glibc
import StatorCore
import Synchronization
import Testing

/// A plaintext TCP receiver that keeps every byte its clients send (one client at a time,
/// as a Graphite relay would see the agent). Stopped on deinit.
private final class LineReceiver: Sendable {
    let port: UInt16
    private let listener: Int32
    private let received = PthreadLock<[UInt8]>([])
    private let stopping = Atomic<Bool>(false)
    private let done = Atomic<Bool>(false)

    init(port: UInt16 = 0) throws {
        (listener, self.port) = try bindLoopback(Int32(SOCK_STREAM.rawValue), port: port, reuseAddress: true)
        let thread = Thread { [self] in serve() }
        thread.start()
    }

    var text: String { received.withLock { String(decoding: $0, as: UTF8.self) } }

    private func serve() {
        defer { done.store(true, ordering: .releasing) }
        while !stopping.load(ordering: .acquiring) {
            var p = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 50) > 0 else { continue }
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else { continue }
            var buffer = [UInt8](repeating: 0, count: 65536)
            while !stopping.load(ordering: .acquiring) {
                var q = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&q, 1, 50) > 0 else { continue }
                let n = recv(fd, &buffer, buffer.count, 0)
                if n <= 0 { break }
                received.withLock { $0.append(contentsOf: buffer[0..<n]) }
            }
            close(fd)
        }
    }

    deinit {
        stopping.store(true, ordering: .releasing)
        while !done.load(ordering: .acquiring) { usleep(1000) }
        close(listener)
    }
}

@Test func graphiteWaitsInTheQueueWhileTheReceiverIsDownThenReconnects() throws {
    let port = try freePort()
    let agent = try StatorProcess(agent: [
        "--flush_interval", "200ms", "--sinks.json.path", "", "--sinks.graphite.address", "127.0.0.1:\(port)",
        "--sinks.graphite.prefix", "host1",
    ])
    try agent.send("down.hits:4|c|#env:ci")
    // Nothing listens: each attempt fails, is counted, and the flushes wait.
    try scrape(agent, until: "a failed connect") { (sample($0, #"stator_sink_errors_total{sink="graphite"}"#) ?? 0) >= 1 }
    #expect(try selfMetric(agent, "stator_graphite_queue_bytes") > 0)
    let receiver = try LineReceiver(port: port)
    try eventually(timeout: 40, "the queued flush at the receiver") {
        receiver.text.contains("host1.stats.counters.down.hits.count;env=ci 4 ")
    }
    try scrape(agent, until: "an empty queue") { sample($0, "stator_graphite_queue_bytes") == 0 }
    #expect(try agent.stop() == 0)
    // Every line whole: path, value, whole seconds.
    for line in receiver.text.split(separator: "\n") {
        #expect(line.split(separator: " ").count == 3, "\(line)")
        #expect(line.hasPrefix("host1.stats."), "\(line)")
    }
    #expect(receiver.text.hasSuffix("\n"))
}

@Test func aFullGraphiteQueueDropsTheOldestFlushesAndCountsThem() throws {
    let port = try freePort()  // never listened on
    let agent = try StatorProcess(agent: [
        "--flush_interval", "100ms", "--sinks.json.path", "", "--sinks.graphite.address", "127.0.0.1:\(port)",
        "--sinks.graphite.max_queue_bytes", "1024",
    ])
    for k in 0..<5 {
        try agent.send((0..<20).map { "full.\(k).\($0):1|c" }.joined(separator: "\n"))
        usleep(150_000)
    }
    try scrape(agent, until: "dropped series counted") {
        (sample($0, #"stator_series_dropped_total{reason="queue_full",sink="graphite"}"#) ?? 0) >= 20
    }
    #expect(try selfMetric(agent, "stator_graphite_queue_bytes") <= 1024 + 4096)
    #expect(try agent.stop() == 0)
    #expect(agent.stderr.text.contains("graphite queue full (max_queue_bytes): oldest flushes dropped"))
}

extension HeavyEndToEndTests {
    /// Debian's graphite-carbon, the reference Graphite receiver, on loopback with a temporary
    /// storage directory: what it wrote to whisper is read back with `whisper-fetch`.
    // Budget: 11.7 s plain and under TSan with one core busy, most of it carbon-cache starting (2026-12-07);
    // its waits are 30 s to listen and 20 s to write.
    @Test func graphiteCarbonStoresWhatTheSinkSends() throws {
        let dir = try TemporaryDirectory()
        let config = dir.file("carbon.conf")
        try "[default]\npattern = .*\nretentions = 1s:1d\n".write(
            toFile: dir.file("storage-schemas.conf"), atomically: true, encoding: .utf8)
        let carbon = try PeerProcess("/usr/bin/carbon-cache", ports: 3, directory: dir.path) { ports in
            try """
            [cache]
            STORAGE_DIR = \(dir.path)/storage
            LOCAL_DATA_DIR = \(dir.path)/storage/whisper
            WHITELISTS_DIR = \(dir.path)/storage/lists
            CONF_DIR = \(dir.path)
            LOG_DIR = \(dir.path)/log
            PID_DIR = \(dir.path)
            ENABLE_LOGROTATION = False
            USER =
            MAX_CACHE_SIZE = inf
            MAX_UPDATES_PER_SECOND = inf
            MAX_CREATES_PER_MINUTE = inf
            LINE_RECEIVER_INTERFACE = 127.0.0.1
            LINE_RECEIVER_PORT = \(ports[0])
            ENABLE_UDP_LISTENER = False
            PICKLE_RECEIVER_INTERFACE = 127.0.0.1
            PICKLE_RECEIVER_PORT = \(ports[1])
            CACHE_QUERY_INTERFACE = 127.0.0.1
            CACHE_QUERY_PORT = \(ports[2])
            ENABLE_TAGS = False
            WHISPER_AUTOFLUSH = True
            """.write(toFile: config, atomically: true, encoding: .utf8)
            return ["--config=\(config)", "--nodaemon", "start"]
        } ready: { ports in
            acceptsConnections(ports[0])
        }
        defer { withExtendedLifetime(carbon) {} }
        let linePort = carbon.ports[0]

        let agent = try StatorProcess(agent: [
            "--flush_interval", untilShutdown, "--sinks.json.path", "", "--sinks.graphite.address", "127.0.0.1:\(linePort)",
            "--sinks.graphite.tags", "none",
        ])
        // Names of non-ASCII letters stay distinct (escaped), as carbon stores them.
        try agent.send("carbon.hits:6|c|#env:ci\ncarbon.lat:10:30|ms\ncarbon.café:2|c\ncarbon.cafè:3|c")
        #expect(try agent.stop() == 0)
        func stored(_ path: String) throws -> [Double] {
            let file = "\(dir.path)/storage/whisper/\(path.replacingOccurrences(of: ".", with: "/")).wsp"
            guard FileManager.default.fileExists(atPath: file) else { return [] }
            let now = Int(Date().timeIntervalSince1970)
            let (_, output) = try runProgram("/usr/bin/whisper-fetch", ["--from=\(now - 120)", "--until=\(now + 5)", file])
            return output.split(separator: "\n").compactMap { line in
                let fields = line.split(separator: "\t")
                return fields.count == 2 && fields[1] != "None" ? Double(fields[1]) : nil
            }
        }
        try eventually(timeout: 20, "carbon to write the counter") { try stored("stats.counters.carbon.hits.count") == [6] }
        #expect(try stored("stats.timers.carbon.lat.mean") == [20])
        #expect(try stored("stats.timers.carbon.lat.upper_90") == [30])
        #expect(try stored("stats.counters.carbon.caf%C3%A9.count") == [2])
        #expect(try stored("stats.counters.carbon.caf%C3%A8.count") == [3])
    }
}
