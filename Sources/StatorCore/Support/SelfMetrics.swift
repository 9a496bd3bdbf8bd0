import Synchronization

/// An atomic counter that can live in an array. Updates release and reads acquire, so a
/// reader that sees one update also sees every update the same thread made before it (the
/// receive path adds a batch's lines last; on x86 this costs nothing over relaxed ordering).
public final class AtomicCounter: Sendable {
    private let storage = Atomic<UInt64>(0)

    public init() {}

    @inline(__always)
    public func add(_ n: UInt64) { storage.wrappingAdd(n, ordering: .releasing) }

    @inline(__always)
    public func store(_ n: UInt64) { storage.store(n, ordering: .releasing) }

    public var value: UInt64 { storage.load(ordering: .acquiring) }
}

/// Where lines come in (SPEC section 9): the `input` label of the receive counters.
public enum Input: Int, CaseIterable, Sendable, CustomStringConvertible {
    case udp, unixgram, tcp

    public var description: String {
        switch self {
        case .udp: "udp"
        case .unixgram: "unixgram"
        case .tcp: "tcp"
        }
    }
}

/// One input's counters: packets (UDP and Unix datagrams, TCP reads), lines, invalid lines by reason.
public final class InputCounters: Sendable {
    public let packets = AtomicCounter()
    public let lines = AtomicCounter()
    /// Indexed by `ParseFailure.rawValue`.
    public let invalid: [AtomicCounter] = ParseFailure.allCases.map { _ in AtomicCounter() }

    /// Counts one rejected line.
    @inline(__always)
    public func invalid(_ reason: ParseFailure, _ n: UInt64 = 1) { invalid[Int(reason.rawValue)].add(n) }
}

/// Why a valid line was not aggregated (`stator_lines_dropped_total{reason}`).
public enum DropReason: Int, CaseIterable, Sendable, CustomStringConvertible {
    /// A mapping rule with `action: drop` matched it.
    case mapping
    /// A mapping rule gave it a name that cannot be used (empty, or over `max_name_bytes`).
    case mappingInvalidName

    public var description: String {
        switch self {
        case .mapping: "mapping"
        case .mappingInvalidName: "mapping_invalid_name"
        }
    }
}

/// What the mapping said of a new series identity (`stator_mapping_series_total{result}`).
public enum MappingResult: Int, CaseIterable, Sendable, CustomStringConvertible {
    case matched, unmatched, dropped

    public var description: String {
        switch self {
        case .matched: "matched"
        case .unmatched: "unmatched"
        case .dropped: "dropped"
        }
    }
}

/// The agent's own counters (SPEC section 6), updated lock-free by every
/// stage and read live by `/metrics`. Reader threads add once per batch.
public final class SelfMetrics: Sendable {
    /// Packets, lines and invalid lines by input (`stator_*_total{input}`), indexed by `Input.rawValue`.
    public let inputs: [InputCounters] = Input.allCases.map { _ in InputCounters() }
    /// Event and service-check lines received, valid or not (`stator_events_received_total`).
    public let eventsReceived = AtomicCounter()
    /// Valid DogStatsD events and service checks, indexed by `DogEvent.Kind.rawValue`
    /// (`stator_events_total{kind}`).
    public let events: [AtomicCounter] = DogEvent.Kind.allCases.map { _ in AtomicCounter() }
    /// Open TCP connections (`stator_tcp_connections`).
    public let tcpConnections = AtomicCounter()
    /// Per reader socket: the kernel's drop counter as last read (`SO_MEMINFO`).
    public let kernelDrops: [AtomicCounter]
    public let flushes = AtomicCounter()
    /// The last refused lines of each reason (`/api/v1/top`).
    public let refused = RefusedSamples()
    /// Bytes of Graphite text waiting for the connection (`sinks.graphite`).
    public let graphiteQueueBytes = AtomicCounter()
    /// Indexed by `DropReason.rawValue` (`stator_lines_dropped_total{reason}`).
    public let linesDropped: [AtomicCounter] = DropReason.allCases.map { _ in AtomicCounter() }
    /// New series identities by what the mapping said: indexed by `MappingResult.rawValue`.
    public let mappingSeries: [AtomicCounter] = MappingResult.allCases.map { _ in AtomicCounter() }
    /// Mapping reloads that put new rules in force, and those that kept the old ones.
    public let mappingReloadsSucceeded = AtomicCounter()
    public let mappingReloadsFailed = AtomicCounter()
    /// Series started again because a reload changed their rule's buckets or `observer_type`.
    public let mappingSeriesResets = AtomicCounter()
    /// Bit pattern of the last flush's duration in seconds.
    public let lastFlushDurationBits = AtomicCounter()
    private let labeled = PthreadLock<[String: UInt64]>([:])
    /// The process start time, seconds since the epoch.
    public let startTime: Double

    public init(readers: Int) {
        kernelDrops = (0..<max(readers, 1)).map { _ in AtomicCounter() }
        startTime = WallClock.nowSeconds()
    }

    /// The counters of one input.
    @inline(__always)
    public func input(_ input: Input) -> InputCounters { inputs[input.rawValue] }

    /// Lines refused for `reason` over every input.
    public func invalidTotal(_ reason: ParseFailure) -> UInt64 {
        inputs.reduce(0) { $0 &+ $1.invalid[Int(reason.rawValue)].value }
    }

    /// Datagrams dropped by the kernel on all our sockets.
    public var kernelDropsTotal: UInt64 { kernelDrops.reduce(0) { $0 &+ $1.value } }

    /// Adds to a counter identified by its full series text, e.g.
    /// `stator_sink_errors_total{sink="json"}`. For rare events only.
    public func addLabeled(_ series: String, _ n: UInt64 = 1) {
        labeled.withLock { $0[series, default: 0] &+= n }
    }

    /// Registers a labeled counter at 0 so that it shows before its first event.
    public func registerLabeled(_ series: String) {
        labeled.withLock { if $0[series] == nil { $0[series] = 0 } }
    }

    /// A labeled counter's value.
    public func labeledValue(_ series: String) -> UInt64 { labeled.withLock { $0[series] ?? 0 } }

    /// All labeled counters, sorted by series text.
    public func labeledSnapshot() -> [(String, UInt64)] {
        labeled.withLock { $0.sorted { $0.key < $1.key } }
    }

    /// The last flush's duration in seconds.
    public var lastFlushDuration: Double { Double(bitPattern: lastFlushDurationBits.value) }

    /// `stator_sink_errors_total{sink=...}` series text.
    public static func sinkErrors(_ sink: String) -> String { "stator_sink_errors_total{sink=\"\(sink)\"}" }

    /// `stator_series_dropped_total{sink=...,reason=...}` series text.
    public static func seriesDropped(_ sink: String, _ reason: String) -> String {
        "stator_series_dropped_total{reason=\"\(reason)\",sink=\"\(sink)\"}"
    }
}
