/// The last refused lines of each reason, as sent, for `/api/v1/top` and the page.
///
/// Fed where a refused line is logged (`InvalidLineLog`), so only refused lines pay for it,
/// and each reason takes at most one sample per `period`: a flood of junk costs a clock
/// read it already paid for and one atomic load per line, and the rings hold the last
/// `kept` samples of `shownBytes` at most (17 reasons x 5 x 200 bytes: about 17 KB).
public final class RefusedSamples: Sendable {
    /// One refused line.
    public struct Sample: Sendable, Equatable {
        /// The line's first `shownBytes` bytes, as sent.
        public let line: [UInt8]
        /// Whether the line was longer (it was cut).
        public let truncated: Bool
        /// The input's label (`udp`, `tcp`, `unixgram`).
        public let input: String
        /// When it came (wall clock).
        public let time: EpochMillis
    }

    /// Samples kept per reason.
    public static let kept = 5
    /// The longest part of a line kept.
    public static let shownBytes = InvalidLineLog.shownBytes
    /// Seconds between two samples of one reason.
    static let period = 1.0

    /// Per reason: the monotonic time (as bits) before which no sample is taken.
    private let due: [AtomicCounter] = ParseFailure.allCases.map { _ in AtomicCounter() }
    /// Per reason: the samples, oldest first.
    private let rings = PthreadLock([[Sample]](repeating: [], count: ParseFailure.allCases.count))

    public init() {}

    /// Keeps `line` as the newest sample of `reason` unless one was taken less than `period`
    /// ago. With a tag policy that hides values (`withhold`) the line is replaced by
    /// `TagPolicy.withheld`: the policy promises that their values are never shown.
    func offer(_ reason: ParseFailure, line: UnsafeRawBufferPointer, input: String, withhold: Bool, now: Double) {
        let slot = Int(reason.rawValue)
        guard now >= Double(bitPattern: due[slot].value) else { return }
        due[slot].store((now + Self.period).bitPattern)
        let sample = Sample(
            line: withhold ? Array(TagPolicy.withheld.utf8) : Array(line.prefix(Self.shownBytes)),
            truncated: !withhold && line.count > Self.shownBytes, input: input, time: WallClock.nowMillis())
        rings.withLock { rings in
            if rings[slot].count >= Self.kept { rings[slot].removeFirst() }
            rings[slot].append(sample)
        }
    }

    /// Every reason's samples, oldest first.
    public func snapshot() -> [(reason: ParseFailure, samples: [Sample])] {
        let rings = rings.withLock { $0 }
        return ParseFailure.allCases.map { ($0, rings[Int($0.rawValue)]) }
    }
}
