import CStatorSys
import Glibc
import Synchronization

/// Configuration of the TCP input (`tcp.*`); off while `address` is empty.
public struct TCPConfiguration: Sendable {
    /// Where to listen (`tcp.address`).
    public var address = ""
    /// Connections served at once (`tcp.max_connections`); a newcomer past it is closed at once.
    public var maxConnections = 256
    /// A connection that sends nothing for this long is closed (`tcp.idle_timeout`; 0: never).
    public var idleTimeoutMillis: Int64 = 300_000
    /// The longest line (`tcp.max_line_bytes`); a longer one is `line_too_long`.
    public var maxLineBytes = 65_536

    public init() {}
}

/// The TCP input (SPEC section 9): newline-delimited statsd lines on stream connections.
///
/// One thread serves every connection with `poll`, so that no connection can starve another:
/// each turn reads at most one chunk from each readable connection. What a turn reads goes to
/// the thread's `ReaderAggregator` as one receive batch: per connection, the complete lines of
/// the chunk (the partial line left from its last chunk in front), while the part after the
/// last newline waits in the connection for the next chunk. So a connection holds at most
/// `tcp.max_line_bytes` of a partial line, whatever a client trickles; a line longer than that
/// is counted once as `line_too_long` and skipped up to its newline, the connection kept.
/// Past `tcp.max_connections` a new connection is closed at once; the others are not touched.
/// At close (the client's, or the agent's at shutdown, after reading what was sent) a last line
/// without its newline counts as a line.
public final class TCPInput: Sendable {
    private let listener: Int32
    private let configuration: TCPConfiguration
    private let table: ShardedTable
    private let metrics: SelfMetrics
    private let logger: Logger
    private let stopping = Atomic<Bool>(false)
    /// Monotonic seconds (as bits) after which the shutdown drain stops reading.
    private let drainDeadline = Atomic<UInt64>(Double.infinity.bitPattern)
    private let thread = PthreadLock<WorkerThread?>(nil)
    private let badLineLog = InvalidLineLog.limiter()
    /// The address the listener is bound to.
    public let boundAddress: String

    /// Bytes read from one connection per turn.
    static let chunk = 64 << 10
    /// The turn's buffer: chunks, each with its connection's partial line in front, stay here
    /// until the batch is committed.
    static let turnBuffer = 1 << 20

    /// Binds and listens (so a port in use fails here, before serving).
    public init(configuration: TCPConfiguration, table: ShardedTable, metrics: SelfMetrics, logger: Logger) throws {
        self.configuration = configuration
        self.table = table
        self.metrics = metrics
        self.logger = logger
        AcceptLoop.register("tcp", in: metrics)
        // A burst of connects waits in the backlog, not in SYN retransmits.
        let (fd, bound) = try SocketAddress(parsing: configuration.address).listen(backlog: 4096, purpose: "tcp")
        listener = fd
        boundAddress = bound.description
    }

    deinit { Glibc.close(listener) }

    public func start() {
        thread.withLock { $0 = WorkerThread(name: "tcp-reader") { [self] in serve() } }
    }

    /// Stops accepting, reads what the connected clients already sent, and returns once it is staged and counted.
    /// - Parameter deadline: monotonic seconds; clients still sending then (a trickle that is
    ///   never quiet) are read no further, so that no client can hold the shutdown.
    public func stop(drainUntil deadline: Double = .infinity) {
        drainDeadline.store(deadline.bitPattern, ordering: .relaxed)
        stopping.store(true, ordering: .releasing)
        let t = thread.withLock { t in
            let copy = t
            t = nil
            return copy
        }
        t?.join()
    }

    /// One client connection.
    private final class Connection {
        let fd: Int32
        /// The client's address, for the log of its invalid lines.
        let peer: String
        /// The stream cut into lines: the partial line, or the long line being skipped.
        var framer: TCPLineFramer
        var lastActivity: Double

        init(fd: Int32, now: Double, maxLineBytes: Int) {
            self.fd = fd
            var address = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let known = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) == 0 }
            }
            peer =
                known
                ? withUnsafeBytes(of: &address) { SocketAddress.format(UnsafeRawBufferPointer(rebasing: $0.prefix(Int(length)))) }
                : "?"
            framer = TCPLineFramer(maxLineBytes: maxLineBytes)
            lastActivity = now
        }
    }

    private func serve() {
        var connections: [Connection] = []
        var fds: [pollfd] = []
        var aggregator = ReaderAggregator(table: table)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: Self.turnBuffer, alignment: 16)
        defer { buffer.deallocate() }
        var turn = Turn(buffer: buffer)
        let idleTimeout = Double(configuration.idleTimeoutMillis) / 1000
        let acceptor = AcceptLoop(fd: listener, name: "tcp", logger: logger, metrics: metrics)
        while true {
            let stop = stopping.load(ordering: .acquiring)
            if stop {
                drain(&connections, &fds, &turn, &aggregator, acceptor)
                metrics.tcpConnections.store(0)
                return
            }
            fds.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: listener, events: acceptor.pollEvents(now: WallClock.monotonicSeconds()), revents: 0))
            for c in connections { fds.append(pollfd(fd: c.fd, events: Int16(POLLIN), revents: 0)) }
            _ = poll(&fds, nfds_t(fds.count), 100)
            let now = WallClock.monotonicSeconds()
            var open: [Connection] = []
            open.reserveCapacity(connections.count)
            for (n, c) in connections.enumerated() {
                let events = fds[n + 1].revents
                var keep = true
                if events & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                    c.lastActivity = now
                    keep = read(c, &turn, &aggregator) != .closed
                } else if idleTimeout > 0, now - c.lastActivity >= idleTimeout {
                    keep = false
                }
                if keep {
                    open.append(c)
                } else {
                    close(c, &turn, &aggregator)
                    acceptor.descriptorFreed()
                }
            }
            connections = open
            if fds[0].revents & Int16(POLLIN) != 0 { accept(into: &connections, acceptor, now: now) }
            finish(&turn, &aggregator)
            metrics.tcpConnections.store(UInt64(connections.count))
        }
    }

    /// At shutdown: reads what every client already sent, then closes the connections (a last
    /// line without its newline counts). A client the kernel connected but the loop had not
    /// accepted yet (still in the backlog) sent its lines as surely as the others: it is
    /// accepted first. What a client sent just before may still be on its way (a sender whose
    /// buffer was full hands the rest over as the agent reads), so the connections are read
    /// until they stay quiet for `quietMillis`, for at most `drainSeconds` and never past the
    /// deadline `stop` was given.
    private func drain(
        _ connections: inout [Connection], _ fds: inout [pollfd], _ turn: inout Turn, _ aggregator: inout ReaderAggregator,
        _ acceptor: AcceptLoop
    ) {
        accept(into: &connections, acceptor, now: WallClock.monotonicSeconds(), force: true)
        let deadline = min(
            WallClock.monotonicSeconds() + Self.drainSeconds, Double(bitPattern: drainDeadline.load(ordering: .relaxed)))
        while !connections.isEmpty, WallClock.monotonicSeconds() < deadline {
            fds.removeAll(keepingCapacity: true)
            for c in connections { fds.append(pollfd(fd: c.fd, events: Int16(POLLIN), revents: 0)) }
            guard poll(&fds, nfds_t(fds.count), Self.quietMillis) > 0 else { break }  // quiet: all read
            var open: [Connection] = []
            for (n, c) in connections.enumerated() {
                var result = ReadResult.drained
                if fds[n].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                    repeat { result = read(c, &turn, &aggregator) } while result == .more
                }
                if result == .closed { close(c, &turn, &aggregator) } else { open.append(c) }
            }
            connections = open
            finish(&turn, &aggregator)
        }
        for c in connections { close(c, &turn, &aggregator) }
        connections = []
        finish(&turn, &aggregator)
    }

    /// At shutdown, how long the connections must stay quiet to count as read to the end,
    /// and the longest the reading may take.
    static let quietMillis: Int32 = 50
    static let drainSeconds = 5.0

    /// Accepts every pending connection; past `tcp.max_connections` each is closed at once.
    /// Out of descriptors, `acceptor` pauses (see `AcceptLoop`); `force` tries anyway (at shutdown).
    private func accept(into connections: inout [Connection], _ acceptor: AcceptLoop, now: Double, force: Bool = false) {
        let cap = configuration.maxConnections
        let maxLineBytes = configuration.maxLineBytes
        acceptor.acceptAll(now: now, force: force) { fd in
            guard connections.count < cap else {
                Glibc.close(fd)
                return
            }
            connections.append(Connection(fd: fd, now: now, maxLineBytes: maxLineBytes))
        }
    }

    /// What a turn read: chunks and the regions of complete lines in them, in `buffer`.
    private struct Turn {
        let buffer: UnsafeMutableRawPointer
        var used = 0
        var regions: [Range<Int>] = []
        /// Whose lines the regions are: the connection's peer from each index on (one entry a
        /// read, not a line, so that the cost stays off the path of every line).
        var senders: [(from: Int, peer: String)] = []
        var reads = 0

        /// The peer that sent region `index`.
        func sender(of index: Int) -> String {
            senders.last { $0.from <= index }?.peer ?? "?"
        }
    }

    private enum ReadResult { case more, drained, closed }

    /// Reads one chunk from `c` into the turn and stages its complete lines.
    private func read(
        _ c: Connection, _ turn: inout Turn, _ aggregator: inout ReaderAggregator
    ) -> ReadResult {
        // Room for the partial line and a chunk; else this turn's batch goes first.
        let kept = c.framer.partial.count
        if turn.used + kept + Self.chunk > Self.turnBuffer { finish(&turn, &aggregator) }
        let start = turn.used
        // SAFETY: the partial line is at most `tcp.max_line_bytes` (`TCPLineFramer`), and the
        // turn buffer has room for it and a chunk (checked above; `tcp.max_line_bytes` is at
        // most 256 KiB).
        c.framer.partial.withUnsafeBytes { p in
            if let base = p.baseAddress { (turn.buffer + start).copyMemory(from: base, byteCount: p.count) }
        }
        // The partial line and the chunk together stay within 64 KiB, the size the line scanner
        // masks on the stack (a larger region costs it an allocation): the chunk shrinks
        // behind a long partial line, to 4 KiB at the least.
        let want = max(Self.chunk - kept, 4096)
        let n = recv(c.fd, turn.buffer + start + kept, want, 0)
        if n < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return .drained }
            return .closed
        }
        if n == 0 { return .closed }
        turn.reads += 1
        let data = start..<(start + kept + n)
        let bytes = UnsafeRawBufferPointer(start: turn.buffer, count: data.upperBound)
        turn.senders.append((turn.regions.count, c.peer))
        let (used, refused) = c.framer.frame(bytes, data, into: &turn.regions)
        for _ in 0..<refused { aggregator.countRefused(.lineTooLong) }
        turn.used = used
        return n == want ? .more : .drained
    }

    /// Closes `c`; a last line without its newline counts as a line.
    private func close(
        _ c: Connection, _ turn: inout Turn, _ aggregator: inout ReaderAggregator
    ) {
        if let last = c.framer.finish() {
            if turn.used + last.count > Self.turnBuffer { finish(&turn, &aggregator) }
            last.withUnsafeBytes { p in
                if let base = p.baseAddress { (turn.buffer + turn.used).copyMemory(from: base, byteCount: p.count) }
            }
            turn.senders.append((turn.regions.count, c.peer))
            turn.regions.append(turn.used..<(turn.used + last.count))
            turn.used += last.count
        }
        Glibc.close(c.fd)
    }

    /// Stages and commits what the turn read, and counts it.
    private func finish(_ turn: inout Turn, _ aggregator: inout ReaderAggregator) {
        if !turn.regions.isEmpty {
            let regions = turn.regions
            let base = turn.buffer
            let sent = turn
            let withhold = table.configuration.tagPolicy?.hidesValues == true
            let rejected: ReaderAggregator.Rejection = { [logger, badLineLog, metrics] reason, region, line in
                InvalidLineLog.log(
                    reason,
                    line: UnsafeRawBufferPointer(start: base + regions[region].lowerBound + line.lowerBound, count: line.count),
                    sender: sent.sender(of: region), input: "tcp",
                    withhold: withhold, limiter: badLineLog, logger: logger, samples: metrics.refused)
            }
            aggregator.stage(
                batch: regions.count,
                payload: { UnsafeRawBufferPointer(start: base + regions[$0].lowerBound, count: regions[$0].count) },
                rejected: rejected)
            aggregator.commit(rejected: rejected)
        }
        if turn.reads > 0 { metrics.input(.tcp).packets.add(UInt64(turn.reads)) }
        aggregator.flushCounts(to: metrics, input: .tcp)
        turn.regions.removeAll(keepingCapacity: true)
        turn.senders.removeAll(keepingCapacity: true)
        turn.used = 0
        turn.reads = 0
    }
}
