import CordonResilience
import Foundation
import Synchronization
import Testing

/// 3 failures within 10 s trip it; open 5 s, doubling up to 40 s; a probe has 2 s.
func breaker(failureCount: Int? = 3, failureRatio: CircuitBreaker.Configuration.FailureRatio? = nil,
             cooldown: Duration = .seconds(5), maxCooldown: Duration? = .seconds(40)) -> CircuitBreaker {
    CircuitBreaker(try! CircuitBreaker.Configuration(failureCount: failureCount, failureRatio: failureRatio,
                                                     window: .seconds(10), buckets: 10, cooldown: cooldown,
                                                     maxCooldown: maxCooldown, probeTimeout: .seconds(2)))
}

struct Refused: Error {}

/// Asks `breaker` for a call at `instant` and expects to be let through.
func admit(_ breaker: CircuitBreaker, at instant: MonotonicInstant,
           sourceLocation: SourceLocation = #_sourceLocation) throws -> CircuitBreaker.Ticket {
    switch breaker.acquire(at: instant) {
    case .allowed(let ticket):
        return ticket
    case .refused(let reopensAt):
        Issue.record("refused at \(instant) (reopens at \(reopensAt))", sourceLocation: sourceLocation)
        throw Refused()
    }
}

/// Asks `breaker` for a call at `instant`: when it reopens if refused, nil if let through (the
/// ticket is dropped unreported).
func refusal(_ breaker: CircuitBreaker, at instant: MonotonicInstant) -> MonotonicInstant? {
    switch breaker.acquire(at: instant) {
    case .allowed: nil
    case .refused(let reopensAt): reopensAt
    }
}

/// One admitted call that ends with `outcome` at `instant`.
@discardableResult
func call(_ breaker: CircuitBreaker, _ outcome: CallOutcome, at instant: MonotonicInstant, times: Int = 1,
          sourceLocation: SourceLocation = #_sourceLocation) throws -> CircuitBreaker.Recorded {
    var recorded = CircuitBreaker.Recorded.stale
    for _ in 0..<times {
        let ticket = try admit(breaker, at: instant, sourceLocation: sourceLocation)
        recorded = breaker.record(ticket, outcome: outcome, at: instant)
    }
    return recorded
}

// MARK: - Threads

/// Runs `body(i)` for i in 0..<count, each on a thread of its own, released together once all
/// have started; returns when all have finished.
func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let gate = Gate(count)
    let done = DispatchGroup()
    for index in 0..<count {
        done.enter()
        Thread.detachNewThread {
            gate.arriveAndWait()
            body(index)
            done.leave()
        }
    }
    done.wait()
}

final class Gate: Sendable {
    let expected: Int
    let arrived = Atomic<Int>(0)

    init(_ expected: Int) { self.expected = expected }

    func arriveAndWait() {
        arrived.add(1, ordering: .sequentiallyConsistent)
        while arrived.load(ordering: .sequentiallyConsistent) < expected { sched_yield() }
    }
}

final class Counter: Sendable {
    let value = Atomic<Int>(0)
    func increment() { value.add(1, ordering: .relaxed) }
    var count: Int { value.load(ordering: .sequentiallyConsistent) }
}
