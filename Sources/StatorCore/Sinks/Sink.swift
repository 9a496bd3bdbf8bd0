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

    /// Called once after the last batch, before the agent exits. The default does nothing.
    func shutdown()
}

extension Sink {
    public func reopen() {}
    public func shutdown() {}
}
