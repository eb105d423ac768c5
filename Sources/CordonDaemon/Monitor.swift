#if canImport(Glibc)
import Glibc
#endif
import CordonSystem

/// A mutex with a condition variable (Synchronization's Mutex has no wait): the task table's
/// lock, which `task.wait` and drain sleep on until a task ends.
final class Monitor: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func locked<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Waits (the lock held by the caller, inside `locked`) until `done()` or the deadline
    /// (monotonic seconds, nil: none). Returns `done()`.
    func wait(until deadline: Double?, _ done: () -> Bool) -> Bool {
        while !done() {
            if let deadline {
                let now = UTCTime.monotonic()
                if now >= deadline { return false }
                var ts = timespec()
                clock_gettime(CLOCK_MONOTONIC, &ts)
                let wait = deadline - now
                var sec = ts.tv_sec + Int(wait)
                var nsec = ts.tv_nsec + Int((wait - wait.rounded(.down)) * 1e9)
                if nsec >= 1_000_000_000 { sec += 1; nsec -= 1_000_000_000 }
                ts.tv_sec = sec
                ts.tv_nsec = nsec
                pthread_cond_timedwait(condition, mutex, &ts)
            } else {
                pthread_cond_wait(condition, mutex)
            }
        }
        return true
    }

    func broadcast() { pthread_cond_broadcast(condition) }
}

/// Starts a detached thread with the daemon's signals blocked (they are read from a signalfd
/// by the main thread) and SIGPIPE blocked (a client that went away is an EPIPE, not a crash).
func startThread(_ body: @escaping @Sendable () -> Void) -> Bool {
    final class Box { let body: () -> Void; init(_ b: @escaping () -> Void) { body = b } }
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    var id = pthread_t()
    let context = Unmanaged.passRetained(Box(body))
    let rc = pthread_create(&id, &attributes, { raw in
        Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
        return nil
    }, context.toOpaque())
    if rc != 0 { context.release() }
    return rc == 0
}
