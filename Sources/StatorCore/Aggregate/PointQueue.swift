/// A counter or gauge sample sent with a `|T` timestamp: kept out of the interval's aggregate
/// and forwarded as a point of its own, at its own time, by the sinks that carry a timestamp
/// (SPEC section 15).
public struct TimestampedPoint: Sendable {
    /// The series (a counter or gauge key, tracked by the table like any series).
    public let key: MetricKey
    /// A counter's rate-scaled sum of the line's values; a gauge's last value, as written
    /// (`-3` is -3: a point of its own has no earlier value to move).
    public let value: Double
    /// The line's `|T`, in milliseconds since the Unix epoch (whole seconds).
    public let timestamp: EpochMillis

    public init(key: MetricKey, value: Double, timestamp: EpochMillis) {
        self.key = key
        self.value = value
        self.timestamp = timestamp
    }
}

/// The timestamped points of the open interval, from every reader, taken whole by the flush
/// into its batch. Bounded like `EventQueue`: past `capacity` a point is refused as
/// `series_limit`.
final class PointQueue: Sendable {
    /// Points kept per interval at most.
    let capacity: Int
    /// The queued points, and the places promised by `reserve` not yet filled or given back.
    private let pending = PthreadLock<(points: [TimestampedPoint], reserved: Int)>(([], 0))

    init(capacity: Int) { self.capacity = capacity }

    /// Promises a place for one point, before its series is admitted: a point the queue would
    /// refuse must not make a series (it would hold a place under `max_series` for nothing).
    /// - Returns: `false` when the interval already holds (or was promised) `capacity` points.
    func reserve() -> Bool {
        pending.withLock { q in
            guard q.points.count + q.reserved < capacity else { return false }
            q.reserved += 1
            return true
        }
    }

    /// Fills a place `reserve` promised with `point`, or gives it back (`nil`: its series was
    /// refused).
    func fill(_ point: TimestampedPoint?) {
        pending.withLock { q in
            q.reserved -= 1
            if let point { q.points.append(point) }
        }
    }

    /// Takes every queued point, oldest first.
    func drain() -> [TimestampedPoint] {
        pending.withLock { q in
            defer { q.points = [] }
            return q.points
        }
    }
}

/// How far a `|T` timestamp may be from the agent's clock (SPEC section 15): an hour back, ten
/// minutes ahead, as the Datadog agent bounds them.
enum TimestampBounds {
    static let maxAgeSeconds: Int64 = 3600
    static let maxAheadSeconds: Int64 = 600

    /// Whether `seconds` (a line's `|T`) is within the bounds of `now` (Unix milliseconds).
    static func accepts(_ seconds: Int64, now: EpochMillis) -> Bool {
        let nowSeconds = now.floorDiv(1000)
        return seconds >= nowSeconds - maxAgeSeconds && seconds <= nowSeconds + maxAheadSeconds
    }
}
