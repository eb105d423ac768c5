import CordonSystem
import Synchronization

/// A count of changes others wait on without holding a thread: `watch` answers once the count
/// differs from what the caller last saw, or at its deadline with the count unchanged (a long
/// poll). A count starts where its owner says (cordond: the start time in milliseconds), so a
/// caller that saw another process's count (a restarted daemon's predecessor) is answered at
/// once: what it knew may be stale.
///
/// Expired waits are answered by `expire`, which its owner calls on a timer (cordond's main
/// loop, every second): nothing here keeps a thread. Completions run outside the lock, on the
/// thread that bumped or expired.
public final class ChangeFeed: Sendable {
    private struct Waiter {
        var id: UInt64
        var deadline: Double
        var completion: @Sendable (UInt64) -> Void
    }
    private struct State {
        var generation: UInt64
        var waiters: [Waiter] = []
        var nextID: UInt64 = 0
    }
    private let state: Mutex<State>
    /// Waits held at once; past this a watch is answered at once (the caller's connection is
    /// what bounds its waits: one per connection, connections per user capped).
    public static let maxWaiters = 4096

    public init(start: UInt64 = 1) { state = Mutex(State(generation: start)) }

    public var generation: UInt64 { state.withLock { $0.generation } }

    /// Counts a change and answers every wait.
    public func bump() {
        let (generation, waiters) = state.withLock { s -> (UInt64, [Waiter]) in
            s.generation &+= 1
            defer { s.waiters = [] }
            return (s.generation, s.waiters)
        }
        for w in waiters { w.completion(generation) }
    }

    /// `completion(generation)` once the count is not `after`, or at `deadline` (CLOCK_MONOTONIC
    /// seconds) with it unchanged. Returns what lets go of the wait unanswered (its caller is
    /// gone): a wait must not outlive the connection it was made for.
    @discardableResult
    public func watch(after: UInt64, deadline: Double, completion: @escaping @Sendable (UInt64) -> Void) -> @Sendable () -> Void {
        let (now, id): (UInt64?, UInt64) = state.withLock { s in
            if s.generation != after || s.waiters.count >= Self.maxWaiters { return (s.generation, 0) }
            s.nextID += 1
            s.waiters.append(Waiter(id: s.nextID, deadline: deadline, completion: completion))
            return (nil, s.nextID)
        }
        if let now {
            completion(now)
            return {}
        }
        return { [self] in state.withLock { s in s.waiters.removeAll { $0.id == id } } }
    }

    /// Answers the waits whose deadline has passed.
    public func expire(now: Double = MonotonicClock.now) {
        let (generation, expired) = state.withLock { s -> (UInt64, [Waiter]) in
            let expired = s.waiters.filter { $0.deadline <= now }
            if !expired.isEmpty { s.waiters.removeAll { $0.deadline <= now } }
            return (s.generation, expired)
        }
        for w in expired { w.completion(generation) }
    }

    /// Waits held now.
    public var waiting: Int { state.withLock { $0.waiters.count } }
}
