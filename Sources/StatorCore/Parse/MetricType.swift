/// The statsd metric types of SPEC section 1.
public enum MetricType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case counter = 0, gauge, set, timer, histogram, distribution

    /// The name used in JSON output (`counter`, `gauge`, ...).
    public var description: String {
        switch self {
        case .counter: "counter"
        case .gauge: "gauge"
        case .set: "set"
        case .timer: "timer"
        case .histogram: "histogram"
        case .distribution: "distribution"
        }
    }

    /// Whether samples of this type are summarised with count/percentiles.
    public var isSampled: Bool { self == .timer || self == .histogram || self == .distribution }
}

extension MetricType {
    /// The type of a statsd type code as a line writes it (`c`, `g`, `s`, `ms`, `h`, `d`).
    public init?(statsdCode: String) {
        switch statsdCode {
        case "c": self = .counter
        case "g": self = .gauge
        case "s": self = .set
        case "ms": self = .timer
        case "h": self = .histogram
        case "d": self = .distribution
        default: return nil
        }
    }
}
