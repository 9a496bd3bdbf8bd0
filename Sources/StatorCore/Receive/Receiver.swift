import CStatorSys
import Glibc
import Synchronization

/// Configuration of the receive stage (`udp.*`).
public struct ReceiverConfiguration: Sendable {
    /// Where to listen (`udp.address`).
    public var address: String = "127.0.0.1:8125"
    /// Reader threads, each with its own `SO_REUSEPORT` socket (`udp.readers`).
    public var readers: Int = ReceiverConfiguration.defaultReaders
    /// Receive buffer to ask the kernel for, per socket (`udp.receive_buffer_bytes`).
    public var receiveBufferBytes: Int = 8 << 20
    /// Datagrams per `recvmmsg` call.
    public var batchSize: Int = 32

    /// One reader per core.
    public static var defaultReaders: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    public init() {}
}

/// The receive stage: reader threads that take datagrams off their sockets in batches
/// and hand each batch to their `ReaderAggregator` (the aggregate stage's engine): three
/// calls, `stage(batch:)`, `commit` and `flushCounts(to:)`. Everything past the socket,
/// parsing included, happens behind those calls.
public final class Receiver: Sendable {
    private let sockets: [UDPSocket]
    /// The Unix datagram input (`unixgram.path`), when configured.
    private let unixSocket: UnixDatagramSocket?
    private let table: ShardedTable
    private let metrics: SelfMetrics
    private let logger: Logger
    private let configuration: ReceiverConfiguration
    private let stopping = Atomic<Bool>(false)
    /// Monotonic seconds (as bits) after which a stopping reader leaves what its socket still holds.
    private let drainDeadline = Atomic<UInt64>(Double.infinity.bitPattern)
    private let threads = PthreadLock<[WorkerThread]>([])
    private let badLineLog = InvalidLineLog.limiter()
    /// The longest a reader naps between batches (see `readLoop`).
    private let maxNapNanos: Int
    /// The address the sockets are bound to.
    public let boundAddress: String

    /// Binds every reader's socket (so a port in use fails here, before serving).
    /// - Throws: `ConfigError` for a bad address, `SystemError` when binding fails.
    public init(
        configuration: ReceiverConfiguration, unixgram: UnixgramConfiguration = UnixgramConfiguration(), table: ShardedTable,
        metrics: SelfMetrics, logger: Logger
    ) throws {
        self.configuration = configuration
        self.table = table
        self.metrics = metrics
        self.logger = logger
        var address = try SocketAddress(parsing: configuration.address)
        // SO_REUSEPORT would silently share a port with another agent of ours: probe without it first.
        address = try UDPSocket.probe(address)
        var sockets: [UDPSocket] = []
        for _ in 0..<max(1, configuration.readers) {
            sockets.append(try UDPSocket(address: address, receiveBuffer: configuration.receiveBufferBytes, reusePort: true))
        }
        self.sockets = sockets
        unixSocket = unixgram.path.isEmpty ? nil : try UnixDatagramSocket(configuration: unixgram)
        if unixSocket != nil, let queue = ProcessStats.readNumber("/proc/sys/net/unix/max_dgram_qlen"), queue < 128 {
            logger.warning(
                "the kernel queues few datagrams on the Unix socket; its senders will wait often",
                metadata: [
                    ("net.unix.max_dgram_qlen", "\(queue)"), ("fix", "sysctl -w net.unix.max_dgram_qlen=1024"),
                ])
        }
        // 1 ms with the default 8 MiB buffer; proportionally less when the kernel grants less.
        maxNapNanos = min(1_000_000, sockets[0].grantedReceiveBuffer * 1_000_000 / (8 << 20))
        boundAddress = sockets[0].localAddress()?.description ?? configuration.address
        let granted = sockets[0].grantedReceiveBuffer
        if granted < configuration.receiveBufferBytes {
            logger.warning(
                "kernel granted a smaller UDP receive buffer than configured; bursts may be dropped",
                metadata: [
                    ("udp.receive_buffer_bytes", "\(configuration.receiveBufferBytes)"),
                    ("granted_bytes", "\(granted)"),
                    ("fix", "sysctl -w net.core.rmem_max=\(configuration.receiveBufferBytes)"),
                ])
        }
    }

    /// The bound Unix socket's path, when that input is on.
    public var unixPath: String? { unixSocket?.path }

    /// Starts the reader threads: one per UDP socket, and one for the Unix socket.
    public func start() {
        threads.withLock { threads in
            for (n, socket) in sockets.enumerated() {
                let source = DatagramSource(
                    fd: socket.fd, input: .udp, maxDatagram: DatagramBatchReader.udpDatagram, udp: (socket, n))
                threads.append(WorkerThread(name: "udp-reader-\(n)") { [self] in readLoop(source) })
            }
            if let unix = unixSocket {
                let source = DatagramSource(fd: unix.fd, input: .unixgram, maxDatagram: unix.maxDatagram, udp: nil)
                threads.append(WorkerThread(name: "unixgram-reader") { [self] in readLoop(source) })
            }
        }
    }

    /// Stops reading: each thread drains what its socket already holds, then exits.
    /// - Parameter deadline: monotonic seconds; a reader still finding datagrams then (a sender
    ///   that keeps sending) stops there, so that no sender can hold the shutdown.
    public func stop(drainUntil deadline: Double = .infinity) {
        drainDeadline.store(deadline.bitPattern, ordering: .relaxed)
        stopping.store(true, ordering: .releasing)
        let all = threads.withLock { t in
            let copy = t
            t = []
            return copy
        }
        for t in all { t.join() }
        unixSocket?.remove()
    }

    /// A socket a reader thread takes datagrams from.
    private struct DatagramSource {
        let fd: Int32
        let input: Input
        let maxDatagram: Int
        /// A UDP socket and its place in `SelfMetrics.kernelDrops` (the Unix socket drops nothing:
        /// its senders block).
        let udp: (socket: UDPSocket, index: Int)?
    }

    private func readLoop(_ source: DatagramSource) {
        let reader = DatagramBatchReader(capacity: configuration.batchSize, maxDatagram: source.maxDatagram)
        var aggregator = ReaderAggregator(table: table)
        let errorLog = RateLimiter(period: 10)
        var batchesSinceDrops = 0
        var nap = ReaderNap(capacity: reader.capacity, maxNanos: maxNapNanos)
        while true {
            let stop = stopping.load(ordering: .acquiring)
            let n: Int
            do {
                n = try reader.read(from: source.fd, wait: !stop)
            } catch {
                if let suppressed = errorLog.admit() {
                    logger.error("recvmmsg failed", metadata: [("error", "\(error)"), ("suppressed", "\(suppressed)")])
                }
                if stop { return }
                continue
            }
            if n == 0 {
                if stop { return }  // drained after the stop request
                continue
            }
            if stop, WallClock.monotonicSeconds() >= Double(bitPattern: drainDeadline.load(ordering: .relaxed)) {
                logger.warning(
                    "datagrams still arriving at the shutdown deadline: the rest are not read",
                    metadata: [("input", source.input.description)])
                return
            }
            // Stage the whole batch, then record it shard by shard.
            let report: ReaderAggregator.Rejection = { reason, datagram, range in
                InvalidLineLog.log(
                    reason, line: UnsafeRawBufferPointer(rebasing: reader.payload(datagram)[range]),
                    sender: reader.sender(datagram), input: source.input.description,
                    withhold: self.table.configuration.tagPolicy?.hidesValues == true, limiter: self.badLineLog,
                    logger: self.logger, samples: self.metrics.refused)
            }
            if source.input == .unixgram {
                // A datagram longer than the buffer was cut: its lines are not read at all.
                for i in 0..<n where reader.isTruncated(i) {
                    aggregator.countRefused(.lineTooLong)
                    if let suppressed = errorLog.admit() {
                        logger.warning(
                            "unixgram datagram longer than the reader's buffer dropped",
                            metadata: [("buffer_bytes", "\(reader.maxDatagram)"), ("suppressed", "\(suppressed)")])
                    }
                }
            }
            aggregator.stage(
                batch: n, payload: { reader.isTruncated($0) ? UnsafeRawBufferPointer(start: nil, count: 0) : reader.payload($0) },
                rejected: report)
            aggregator.commit(rejected: report)
            metrics.input(source.input).packets.add(UInt64(n))
            aggregator.flushCounts(to: metrics, input: source.input)
            // The kernel's drop count: whenever the socket was drained, and every 256 full batches.
            batchesSinceDrops += 1
            if let (socket, index) = source.udp, n < reader.capacity || batchesSinceDrops >= 256,
                let drops = socket.kernelDrops
            {
                metrics.kernelDrops[index].store(UInt64(drops))
                batchesSinceDrops = 0
            }
            // (Never on the Unix socket: its senders wait for the reader, and its queue is
            // short, net.unix.max_dgram_qlen, so a nap would only hold them up.)
            let pause = source.input == .unixgram ? 0 : nap.after(batchOf: n)
            if pause > 0, !stop {
                var time = timespec(tv_sec: 0, tv_nsec: pause)
                nanosleep(&time, nil)
            }
        }
    }
}

/// How long a reader naps after a batch, so that it wakes once per batch rather than once
/// per few datagrams: each wake-up is a context switch, which cost a small datagram more
/// than receiving it. When a call drained the socket, the reader naps while datagrams
/// gather for the next one. The nap adapts: it halves when a call fills its batch (so
/// about one batch waits at most, far below what the receive buffer holds) and doubles,
/// up to `maxNanos`, when a call finds fewer than half a batch. At low rates a line waits
/// at most `maxNanos` longer; under load the batches fill and no nap happens.
struct ReaderNap {
    let capacity: Int
    let maxNanos: Int
    /// The first nap after a run of full batches.
    static let minimumNanos = 20_000
    private(set) var nanos = 0

    init(capacity: Int, maxNanos: Int) {
        self.capacity = capacity
        self.maxNanos = maxNanos
    }

    /// Nanoseconds to nap after a call returned `n` datagrams (0: call again at once).
    mutating func after(batchOf n: Int) -> Int {
        if n >= capacity {
            nanos /= 2
            return 0
        }
        if n < capacity / 2 { nanos = min(maxNanos, max(nanos * 2, Self.minimumNanos)) }
        return nanos
    }
}
