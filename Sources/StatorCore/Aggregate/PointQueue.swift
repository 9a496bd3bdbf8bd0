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
    private let pending = PthreadLock<[TimestampedPoint]>([])

    init(capacity: Int) { self.capacity = capacity }

    /// Queues `point`.
    /// - Returns: `false` when the interval already holds `capacity` points.
    func offer(_ point: TimestampedPoint) -> Bool {
        pending.withLock { points in
            guard points.count < capacity else { return false }
            points.append(point)
            return true
        }
    }

    /// Takes every queued point, oldest first.
    func drain() -> [TimestampedPoint] {
        pending.withLock { points in
            defer { points = [] }
            return points
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
