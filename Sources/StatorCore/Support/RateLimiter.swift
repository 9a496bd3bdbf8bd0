/// Lets through at most one event per `period` and counts what it held back,
/// so repeated errors (bad lines, a failing sink) cost one log line per period.
public final class RateLimiter: Sendable {
    private struct State {
        var nextAllowed: Double = 0
        var suppressed: UInt64 = 0
    }

    private let period: Double
    private let state = PthreadLock(State())

    /// Creates a limiter letting one event through per `period` seconds.
    public init(period: Double) { self.period = period }

    /// Asks whether to log now.
    /// - Returns: `nil` to stay quiet, or the number of events suppressed since the last one let through.
    public func admit(now: Double = WallClock.monotonicSeconds()) -> UInt64? {
        state.withLock { s in
            guard now >= s.nextAllowed else {
                s.suppressed &+= 1
                return nil
            }
            s.nextAllowed = now + period
            let held = s.suppressed
            s.suppressed = 0
            return held
        }
    }
}
