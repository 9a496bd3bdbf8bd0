import CStatorSys
import Glibc

/// Wall-clock time as milliseconds since the Unix epoch.
public typealias EpochMillis = Int64

/// Reads the real-time clock.
public enum WallClock {
    /// Now, in milliseconds since the Unix epoch.
    public static func nowMillis() -> EpochMillis {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return EpochMillis(ts.tv_sec) * 1000 + EpochMillis(ts.tv_nsec / 1_000_000)
    }

    /// Now, in seconds since the Unix epoch, with sub-second precision.
    public static func nowSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Monotonic seconds, for measuring durations.
    public static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Formats `millis` as RFC 3339 UTC with milliseconds: `2026-11-21T19:00:10.000Z`.
    public static func rfc3339(_ millis: EpochMillis) -> String {
        var bytes: [UInt8] = []
        appendRFC3339(millis, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends `millis` as RFC 3339 UTC with milliseconds to `bytes`.
    static func appendRFC3339(_ millis: EpochMillis, to bytes: inout [UInt8]) {
        var seconds = time_t(millis.floorDiv(1000))
        let ms = Int(millis - Int64(seconds) * 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ v: Int) { bytes.append(UInt8(48 + v / 10)); bytes.append(UInt8(48 + v % 10)) }
        let year = Int(parts.tm_year) + 1900
        bytes.append(UInt8(48 + year / 1000 % 10)); bytes.append(UInt8(48 + year / 100 % 10))
        two(year % 100); bytes.append(UInt8(ascii: "-"))
        two(Int(parts.tm_mon) + 1); bytes.append(UInt8(ascii: "-"))
        two(Int(parts.tm_mday)); bytes.append(UInt8(ascii: "T"))
        two(Int(parts.tm_hour)); bytes.append(UInt8(ascii: ":"))
        two(Int(parts.tm_min)); bytes.append(UInt8(ascii: ":"))
        two(Int(parts.tm_sec)); bytes.append(UInt8(ascii: "."))
        bytes.append(UInt8(48 + ms / 100)); two(ms % 100)
        bytes.append(UInt8(ascii: "Z"))
    }
}

extension Int64 {
    /// Division rounding toward negative infinity.
    func floorDiv(_ d: Int64) -> Int64 {
        let q = self / d
        return (self % d != 0 && (self < 0) != (d < 0)) ? q - 1 : q
    }
}
