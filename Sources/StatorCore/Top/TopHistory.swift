/// The page's charts: lines received and kernel drops per second at each flush of the last
/// 15 minutes, read from the agent's own counters. At most `capacity` points (15 minutes at
/// a 1 s flush interval; a shorter interval keeps the last 900 flushes): 24 bytes each,
/// about 22 KB.
struct TopHistory {
    struct Point: Sendable {
        /// The flush's wall-clock time.
        var time: EpochMillis
        var linesPerSecond: Double
        var dropsPerSecond: Double
    }

    static let seconds: EpochMillis = 900
    static let capacity = 900

    private(set) var points: [Point] = []
    /// The counters at the previous flush (nil before the first).
    private var previous: (lines: UInt64, drops: UInt64)?

    /// Adds the flush at `time`, `interval` seconds after the previous, with the counters then.
    mutating func add(time: EpochMillis, interval: Double, lines: UInt64, drops: UInt64) {
        defer { previous = (lines, drops) }
        guard let previous, interval > 0 else { return }
        points.append(
            Point(
                time: time, linesPerSecond: Double(lines &- previous.lines) / interval,
                dropsPerSecond: Double(drops &- previous.drops) / interval))
        let start = time - Self.seconds * 1000
        var old = 0
        while old < points.count, points[old].time < start || points.count - old > Self.capacity { old += 1 }
        points.removeFirst(old)
    }
}
