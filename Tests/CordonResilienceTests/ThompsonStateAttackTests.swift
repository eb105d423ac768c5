import Testing
@testable import CordonResilience

/// Saved states an attacker's review found `init(_:restoring:)` accepting and then trapping on
/// (every restart would have crashed the same way): refused now, or harmless.
@Suite struct ThompsonStateAttackTests {
    let objective = try! DiscountedThompson.Objective(successWeight: 0.6, latencyWeight: 0.3, costWeight: 0.1,
                                                      latencyReferenceSeconds: 4, exploration: 0, posteriorSamples: 0)
    let config = try! DiscountedThompson.Configuration()

    /// calls = UInt64.max: refused (the next record's `calls += 1` trapped).
    @Test func aClockAtItsMaximumIsRefusedOrStandsStill() throws {
        #expect(throws: ResilienceError.self) { try DiscountedThompson(config, restoring: .init(calls: .max, arms: [])) }
        var learner = try DiscountedThompson(config, restoring: .init(calls: DiscountedThompson.maxCalls, arms: []))
        learner.record("a", outcome: .success, latencySeconds: 1, inputTokens: 1, outputTokens: 1)
        #expect(learner.calls == DiscountedThompson.maxCalls)
    }

    /// An arm claiming more successes than calls (1e17 of 1): refused. Before, the pooled works
    /// mean rounded to exactly 1, the prior's β was 0, and drawing Gamma(0) trapped.
    @Test func countsBeyondTheirCallsAreRefused() {
        let arm = DiscountedThompson.ArmState(arm: "a", calls: 1, lastRecordedAt: 1, decayedAt: 1, successes: 1e17)
        #expect(throws: ResilienceError.self) { try DiscountedThompson(config, restoring: .init(calls: 1, arms: [arm])) }
    }

    /// Two arms whose counts sum past the largest Double (the pool was inf, its mean NaN).
    @Test func countsThatWouldOverflowThePoolAreRefused() {
        let a = DiscountedThompson.ArmState(arm: "a", calls: 1, lastRecordedAt: 1, decayedAt: 2, successes: 1e308, failures: 1)
        let b = DiscountedThompson.ArmState(arm: "b", calls: 1, lastRecordedAt: 2, decayedAt: 2, successes: 1e308, failures: 1)
        #expect(throws: ResilienceError.self) { try DiscountedThompson(config, restoring: .init(calls: 2, arms: [a, b])) }
    }

    /// A legitimate state whose pooled works mean rounds to 1 (2^60 successes, no failure):
    /// the prior is kept off 0 and 1, so choosing still draws.
    @Test func aPoolOfOnlySuccessesStillChooses() throws {
        let n = UInt64(1) << 60
        let arm = DiscountedThompson.ArmState(arm: "a", calls: n, lastRecordedAt: n, decayedAt: n, successes: Double(n))
        let learner = try DiscountedThompson(config, restoring: .init(calls: n, arms: [arm]))
        var random = SplitMix64(seed: 1)
        for _ in 0..<100 {
            #expect(learner.choose(among: [.init("a")], objective: objective, using: &random) != nil)
        }
    }
}
