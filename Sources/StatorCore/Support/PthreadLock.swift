import CStatorSys
import Glibc

/// A value behind a `pthread_mutex_t`.
///
/// Used where ThreadSanitizer must see the locking: it intercepts pthread mutexes but
/// not the futex-based `Synchronization.Mutex` of the Linux standard library (whose
/// atomics are not instrumented), so it reports races inside every `Mutex.withLock`.
public final class PthreadLock<Value>: @unchecked Sendable {
    // SAFETY: `value` is only touched inside `withLock`, with `mutex` held; the mutex lives
    // at a stable heap address for the lifetime of the object.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    public init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the value, holding the lock.
    @inline(__always)
    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
