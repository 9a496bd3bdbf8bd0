import CStatorSys
import Glibc

/// A value behind a `pthread_mutex_t`: the project's lock.
///
/// Used instead of `Synchronization.Mutex` so that ThreadSanitizer sees the locking: it
/// intercepts pthread mutexes but not the futex-based `Mutex` of the Linux standard
/// library (whose atomics are not instrumented), and reports false races inside its
/// `withLock` (`scripts/test --sanitize`).
public final class PthreadLock<Value: ~Copyable>: @unchecked Sendable {
    // SAFETY: `value` is only touched with `mutex` held: inside `withLock`, or through
    // `unsafeValue` between `lock()` and `unlock()` (the reader's share, see `LockedReaderAggregates`);
    // both live at stable heap addresses for the lifetime of the object. (Behind a pointer rather than a
    // stored `var`, so no run-time exclusivity tracking is paid on every lock.)
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let value: UnsafeMutablePointer<Value>

    public init(_ value: consuming Value) {
        self.value = .allocate(capacity: 1)
        self.value.initialize(to: value)
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        value.deinitialize(count: 1)
        value.deallocate()
    }

    /// Takes the lock, for a holder that keeps it across more than a closure can hold (a
    /// reader's share, locked while the reader handles a datagram): touch `unsafeValue` only
    /// until `unlock()`.
    @inline(__always)
    func lock() { pthread_mutex_lock(mutex) }

    @inline(__always)
    func unlock() { pthread_mutex_unlock(mutex) }

    /// The value, for use between `lock()` and `unlock()` only (checked in debug builds: the
    /// lock is held, by someone).
    var unsafeValue: UnsafeMutablePointer<Value> {
        assert(isHeld, "PthreadLock.unsafeValue read without the lock held")
        return value
    }

    /// Whether some thread holds the lock (for debug checks only: the answer may be stale).
    private var isHeld: Bool {
        guard pthread_mutex_trylock(mutex) == 0 else { return true }
        pthread_mutex_unlock(mutex)
        return false
    }

    /// Runs `body` with the value, holding the lock.
    @inline(__always)
    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value.pointee)
    }
}
