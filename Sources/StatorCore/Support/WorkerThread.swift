import CStatorSys
import Glibc

/// A dedicated OS thread, for blocking work (`recvmmsg`, `poll`, file writes)
/// that must never run on Swift's cooperative pool.
public final class WorkerThread: Sendable {
    private final class Box {
        let name: String
        let body: @Sendable () -> Void
        init(_ name: String, _ body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }

    // SAFETY: written once in init before the thread is shared; read only by join().
    private nonisolated(unsafe) var thread: pthread_t = pthread_t()

    /// Starts `body` on a new thread named `name` (at most 15 bytes are kept).
    public init(name: String, _ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Box(name, body)).toOpaque()
        let result = pthread_create(
            &thread, nil,
            { arg in
                guard let arg else { return nil }
                let box = Unmanaged<Box>.fromOpaque(arg).takeRetainedValue()
                CStatorSys_set_thread_name(box.name)
                box.body()
                return nil
            }, box)
        precondition(result == 0, "pthread_create failed: \(result)")
    }

    /// Waits for the thread to finish.
    public func join() {
        pthread_join(thread, nil)
    }

    /// Lets the thread run on unjoined (for a thread abandoned at a deadline); its
    /// resources are freed when it ends.
    public func detach() {
        pthread_detach(thread)
    }
}

/// A mutex with a condition variable, for threads that sleep until signalled
/// or until a deadline.
public final class ConditionLock: @unchecked Sendable {
    // SAFETY: the pthread objects live at stable heap addresses for the object's
    // lifetime and are only used through pthread calls, which are thread-safe.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let cond: UnsafeMutablePointer<pthread_cond_t>

    public init() {
        mutex = .allocate(capacity: 1)
        cond = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        cond.deallocate()
    }

    /// Runs `body` holding the lock.
    public func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Waits (the lock held) until signalled or until `deadline` (monotonic seconds).
    /// - Returns: `false` when the deadline passed.
    @discardableResult
    public func wait(until deadline: Double) -> Bool {
        var ts = timespec()
        let whole = deadline.rounded(.down)
        ts.tv_sec = Int(whole)
        ts.tv_nsec = Int((deadline - whole) * 1e9)
        return pthread_cond_timedwait(cond, mutex, &ts) == 0
    }

    /// Waits (the lock held) until signalled.
    public func wait() { pthread_cond_wait(cond, mutex) }

    /// Wakes every waiter.
    public func broadcast() { pthread_cond_broadcast(cond) }
}

/// A bounded first-in-first-out queue between one producer and one consumer thread.
public final class BlockingQueue<Element: Sendable>: @unchecked Sendable {
    // SAFETY: `items` and `closed` are only touched with `lock` held.
    private let lock = ConditionLock()
    /// Waiting elements, oldest first. A taken element leaves the array at once: a queue
    /// of flush batches must not keep old batches (and every key they name) alive.
    private var items: [Element] = []
    private var closed = false
    private var busy = false
    let capacity: Int

    public init(capacity: Int) { self.capacity = capacity }

    /// Adds an element unless the queue is full or closed.
    /// - Returns: whether it was added.
    public func offer(_ element: Element) -> Bool {
        lock.withLock {
            guard !closed, items.count < capacity else { return false }
            items.append(element)
            lock.broadcast()
            return true
        }
    }

    /// Takes the oldest element, waiting for one. Returns `nil` once closed and empty.
    public func take() -> Element? {
        lock.withLock {
            busy = false
            lock.broadcast()
            while items.isEmpty && !closed { lock.wait() }
            guard !items.isEmpty else { return nil }
            let e = items.removeFirst()  // O(capacity), a few elements
            busy = true
            return e
        }
    }

    /// The elements not taken yet, oldest first.
    public var waiting: [Element] { lock.withLock { items } }

    /// How many elements wait.
    public var count: Int { lock.withLock { items.count } }

    /// Stops accepting elements; `take()` drains what is left, then returns `nil`.
    public func close() {
        lock.withLock {
            closed = true
            lock.broadcast()
        }
    }

    /// Waits until the consumer has taken and finished everything, or until `deadline`.
    /// - Returns: whether the queue drained in time.
    public func waitUntilDrained(deadline: Double) -> Bool {
        lock.withLock {
            while !items.isEmpty || busy {
                if WallClock.monotonicSeconds() >= deadline { return false }
                lock.wait(until: min(deadline, WallClock.monotonicSeconds() + 0.05))
            }
            return true
        }
    }
}
