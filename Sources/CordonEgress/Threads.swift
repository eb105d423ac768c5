#if canImport(Glibc)
import CordonSystem
import Glibc
#endif
import Synchronization

/// The engine's threads: each is joinable and joined exactly once, either by `reap` after it
/// finished or by `joinAll` at stop, so none outlives the engine.
final class ThreadSet: Sendable {
    private struct State {
        var live: [Int: Threads.Joinable] = [:]
        var finished: [Threads.Joinable] = []
        var nextKey = 0
        var closed = false
    }

    private let state = Mutex(State())

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
            guard let thread = try? Threads.start(name, signals: .noSIGPIPE, { [self] in
                body()
                self.state.withLock { s in
                    // Whoever removes a thread from `live` is responsible for joining it.
                    if let thread = s.live.removeValue(forKey: key) { s.finished.append(thread) }
                }
            }) else { return false }
            // The new thread cannot remove itself before this insert: it needs the lock we hold.
            s.live[key] = thread
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
        for thread in done { thread.join() }
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
        for thread in all { thread.join() }
    }
}
