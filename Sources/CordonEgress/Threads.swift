#if canImport(Glibc)
import CLinux
import CordonPolicy
import Glibc
#endif
import Synchronization

/// The engine's threads: each is joinable and joined exactly once, either by `reap` after it
/// finished or by `joinAll` at stop, so none outlives the engine.
final class ThreadSet: Sendable {
    private struct State {
        var live: [Int: pthread_t] = [:]
        var finished: [pthread_t] = []
        var nextKey = 0
        var closed = false
    }

    private let state = Mutex(State())

    private final class Start {
        let name: String
        let body: () -> Void
        init(_ name: String, _ body: @escaping () -> Void) { self.name = name; self.body = body }
    }

    /// Number of threads started and not yet joined.
    var count: Int { state.withLock { $0.live.count + $0.finished.count } }

    /// Number of threads still running their body.
    var running: Int { state.withLock { $0.live.count } }

    /// Starts `body` on a new thread named `name` (at most 15 bytes: what `top -H` and
    /// /proc/PID/task/TID/comm show) with SIGPIPE blocked (a write to a closed socket or a
    /// splice into one then fails with EPIPE instead of killing the supervisor). Returns false
    /// when the set is closed or the thread could not be created.
    @discardableResult
    func spawn(_ name: String, _ body: @escaping @Sendable () -> Void) -> Bool {
        state.withLock { s in
            guard !s.closed else { return false }
            let key = s.nextKey
            s.nextKey += 1
            let start = Start(name) { [self] in
                body()
                self.state.withLock { s in
                    // Whoever removes a thread from `live` is responsible for joining it.
                    if let id = s.live.removeValue(forKey: key) { s.finished.append(id) }
                }
            }
            var blocked = sigset_t(), previous = sigset_t()
            sigemptyset(&blocked)
            sigaddset(&blocked, SIGPIPE)
            pthread_sigmask(SIG_BLOCK, &blocked, &previous)
            defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
            var id = pthread_t()
            let context = Unmanaged.passRetained(start)
            let rc = pthread_create(&id, nil, { raw in
                let start = Unmanaged<Start>.fromOpaque(raw!).takeRetainedValue()
                _ = cl_set_thread_name(start.name)
                start.body()
                return nil
            }, context.toOpaque())
            guard rc == 0 else {
                context.release()
                return false
            }
            // The new thread cannot remove itself before this insert: it needs the lock we hold.
            s.live[key] = id
            return true
        }
    }

    /// Joins the threads that have finished.
    func reap() {
        let done = state.withLock { s in
            let d = s.finished
            s.finished = []
            return d
        }
        for id in done { pthread_join(id, nil) }
    }

    /// Refuses new threads, then joins every thread (the caller has told them to stop).
    func joinAll() {
        let all = state.withLock { s in
            s.closed = true
            let a = Array(s.live.values) + s.finished
            s.live = [:]
            s.finished = []
            return a
        }
        for id in all { pthread_join(id, nil) }
    }
}
