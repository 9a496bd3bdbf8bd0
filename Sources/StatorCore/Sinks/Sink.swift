/// A destination for flushed batches (JSON lines, Prometheus, HTTP push, or your own).
///
/// Each sink runs on its own thread and receives every batch in order through
/// `emit(_:)`; it knows nothing of the other sinks. A slow sink delays only itself.
///
/// Implementation requirements:
/// - `emit(_:)` may block (file or network I/O); it is never called concurrently with itself.
/// - Throwing from `emit(_:)` counts one error in `stator_sink_errors_total{sink=name}`;
///   the next batch still comes.
/// - `reopen()` is called from another thread on SIGHUP and must be thread-safe.
public protocol Sink: AnyObject, Sendable {
    /// A short stable name, used as the `sink` label (`json`, `prometheus`, ...).
    var name: String { get }

    /// Delivers one flush batch.
    /// - Throws: any error; it is counted and logged, and delivery goes on.
    func emit(_ batch: FlushBatch) throws

    /// Reopens files (SIGHUP). The default does nothing.
    func reopen()

    /// Called once after the last batch, before the agent exits, on the sink's own thread
    /// while the other sinks shut down beside it. Returns by `deadline` (monotonic seconds):
    /// what cannot be delivered by then is spooled, or counted as `reason="shutdown"`.
    /// The default does nothing.
    func shutdown(until deadline: Double)

    /// Called once when shutdown begins, from another thread, before the last batches reach
    /// `emit(_:)`: a sink whose `emit` can wait long (a lock held by another process) should
    /// give up by `deadline` from then on. Must be thread-safe. The default does nothing.
    func prepareForShutdown(until deadline: Double)
}

extension Sink {
    public func reopen() {}
    public func shutdown(until deadline: Double) {}
    public func prepareForShutdown(until deadline: Double) {}

    /// Shuts the sink down with the whole grace, for callers outside the agent.
    public func shutdown() { shutdown(until: WallClock.monotonicSeconds() + SinkShutdown.graceSeconds) }
}

/// How long the sinks together may keep trying at shutdown.
public enum SinkShutdown {
    /// The 5 s a push keeps trying for (docs/formats.md): shared by every sink, which
    /// drain at the same time, so that a service manager's stop timeout is never reached.
    public static let graceSeconds: Double = 5
    /// The longest the inputs read at shutdown what senders still send: what they sent
    /// before the signal takes milliseconds; a sender that keeps sending cannot hold the agent.
    public static let drainSeconds: Double = 1
}
