/// Configuration of the daily roll-up sink (`sinks.rollup`); off while `path` is empty.
public struct RollupConfiguration: Sendable {
    /// A daily limit on the sum of the names a glob matches, per tag value.
    public struct Limit: Sendable, Equatable {
        public var match: String
        public var daily: Double

        public init(match: String, daily: Double) {
            self.match = match
            self.daily = daily
        }
    }

    /// The SQLite database file (`path`).
    public var path: String = ""
    /// The tag to roll up by (`by`).
    public var by: String = "tenant"
    /// Globs on the statsd name; a series is rolled up when one matches (`match`).
    public var match: [String] = ["*"]
    /// Days kept, today included (`retention_days`).
    public var retentionDays: Int = 90
    /// Daily limits, shown as `stator_rollup_usage_ratio` (`limits`).
    public var limits: [Limit] = []

    public init() {}
}
