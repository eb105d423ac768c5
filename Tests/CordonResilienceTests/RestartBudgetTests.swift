import Testing
@testable import CordonResilience

@Suite struct RestartBudgetTests {
    /// A restart at t counts in [t, t + window) and no longer at t + window, to the nanosecond.
    @Test func aRestartLeavesTheWindowExactlyAWindowLater() throws {
        var budget = try RestartBudget(maxRestarts: 3, within: .seconds(10))
        budget.record(at: t(0))
        budget.record(at: t(1))
        #expect(!budget.exhausted(at: t(1)))
        budget.record(at: t(2))
        #expect(budget.count(at: t(2)) == 3)
        #expect(budget.exhausted(at: t(2)))
        #expect(budget.exhausted(at: justBefore(t(10))))
        #expect(budget.count(at: t(10)) == 2)
        #expect(!budget.exhausted(at: t(10)))
        #expect(budget.count(at: justBefore(t(11))) == 2)
        #expect(budget.count(at: t(11)) == 1)
        #expect(budget.count(at: t(12)) == 0)
    }

    /// The window slides with each restart, it is not reset at fixed intervals.
    @Test func theWindowSlides() throws {
        var budget = try RestartBudget(maxRestarts: 2, within: .seconds(10))
        budget.record(at: t(0))
        budget.record(at: t(5))
        #expect(budget.exhausted(at: t(9)))
        #expect(!budget.exhausted(at: t(10)))
        budget.record(at: t(10))
        #expect(budget.exhausted(at: t(14.5)))
        #expect(budget.exhausted(at: justBefore(t(15))))
        #expect(!budget.exhausted(at: t(15)))
    }

    /// Only the last `maxRestarts` restarts are kept, and they are the ones that decide.
    @Test func memoryIsBoundedByTheBudget() throws {
        var budget = try RestartBudget(maxRestarts: 4, within: .seconds(1))
        for i in 0..<1_000 { budget.record(at: MonotonicInstant(nanoseconds: Int64(i) * 1_000_000)) }
        #expect(budget.restarts.count == 4)
        let last = MonotonicInstant(nanoseconds: 999_000_000)
        #expect(budget.count(at: last) == 4)
        #expect(budget.exhausted(at: last))
        // The oldest kept is the 997th (996 ms): free again once it leaves.
        #expect(budget.exhausted(at: justBefore(t(1) + .milliseconds(996))))
        #expect(!budget.exhausted(at: t(1) + .milliseconds(996)))
    }

    @Test func aBudgetOfZeroNeverRestarts() throws {
        var budget = try RestartBudget(maxRestarts: 0, within: .seconds(60))
        #expect(budget.exhausted(at: t(0)))
        budget.record(at: t(0))
        #expect(budget.count(at: t(0)) == 0)
        let reason = try #require(budget.exhaustion(at: t(1000)))
        #expect(reason.restarts == 0 && reason.oldest == nil)
        #expect(reason.description == "restarting is not allowed (a restart budget of 0)")
    }

    @Test func exhaustionSaysWhy() throws {
        var budget = try RestartBudget(maxRestarts: 3, within: .seconds(60))
        #expect(budget.exhaustion(at: t(0)) == nil)
        for s in [4.0, 2.0, 8.0] { budget.record(at: t(s)) }
        let reason = try #require(budget.exhaustion(at: t(9)))
        #expect(reason == RestartBudget.Exhaustion(restarts: 3, window: .seconds(60), oldest: t(2)))
        #expect(reason.description == "restarted 3 times within 60.0 seconds, the most its restart budget allows")
        #expect(budget.exhaustion(at: t(62)) == nil)
    }

    /// A reading that went backwards (another thread's clock) still counts: erring towards
    /// "too many restarts", never towards a crash loop.
    @Test func anInstantFromTheFutureStillCounts() throws {
        var budget = try RestartBudget(maxRestarts: 2, within: .seconds(10))
        budget.record(at: t(100))
        budget.record(at: t(99))
        #expect(budget.exhausted(at: t(99)))
        #expect(budget.exhausted(at: justBefore(t(109))))
        #expect(budget.count(at: t(109)) == 1)
    }

    @Test func invalidSettingsAreRefused() {
        #expect(throws: ResilienceError.invalid("restartBudget.maxRestarts", "restart budget: -1 restarts is negative")) {
            try RestartBudget(maxRestarts: -1, within: .seconds(1))
        }
        #expect((try? RestartBudget(maxRestarts: 1, within: .zero)) == nil)
        #expect((try? RestartBudget(maxRestarts: 1, within: .nanoseconds(1))) != nil)
    }
}
