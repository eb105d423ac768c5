import Foundation
import Testing
@testable import CordonResilience

/// The change detector (`DiscountedThompson.ChangeEvidence`): a model that changes is found in
/// a few calls and relearnt, one that does not change is left alone, and the evidence is kept,
/// decayed and restored like the rest of the state.
@Suite struct DiscountedThompsonChangeTests {
    let objective = try! Learner.Objective(successWeight: 0.6, latencyWeight: 0.3, costWeight: 0.1,
                                            latencyReferenceSeconds: 4, costReference: 0.01, exploration: 0, posteriorSamples: 0)

    func makeLearner(discount: Double = 0.98, changeThreshold: Double = 7) -> Learner {
        Learner(try! .init(discount: discount, changeThreshold: changeThreshold))
    }

    func arm(_ learner: Learner, _ name: String) -> Learner.ArmState {
        learner.state.arms.first { $0.arm == name }!
    }

    /// A call of `name` whose ln(latency) is N(ln median, spread²), failing at `failureRate`,
    /// rated right at `rightRate` when it answers.
    func call(_ learner: inout Learner, _ name: String, median: Double, spread: Double = 0.3, failureRate: Double = 0.02,
              rightRate: Double? = nil, _ random: inout SplitMix64) {
        let failed = Sample.unit(using: &random) < failureRate
        let latency = median * exp(spread * Sample.normal(using: &random))
        learner.record(name, outcome: failed ? .failure : .success, latencySeconds: latency, inputTokens: 500, outputTokens: 300)
        if !failed, let rightRate { learner.feedback(name, success: Sample.unit(using: &random) < rightRate) }
    }

    /// How many calls after `shift` starts until `a` records a change (nil: none in `limit`).
    func callsToDetect(limit: Int = 200, seed: UInt64, changeThreshold: Double = 7,
                       before: (inout Learner, inout SplitMix64) -> Void, after: (inout Learner, inout SplitMix64) -> Void) -> Int? {
        var learner = makeLearner(changeThreshold: changeThreshold)
        var random = SplitMix64(seed: seed)
        for _ in 0..<100 { before(&learner, &random) }
        guard arm(learner, "a").changes == 0 else { return -1 }
        for i in 1...limit {
            after(&learner, &random)
            if arm(learner, "a").changes > 0 { return i }
        }
        return nil
    }

    /// Latency more than doubling (87.5 ms after 37.5 ms, as bench/models.sh's steady model in
    /// its phase 2) is seen within a handful of calls (γ = 0.98 alone needs about 18 calls
    /// before the model's utility falls below the next one's there); so is a fall to a third.
    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func aLatencyShiftIsFoundInAFewCalls(seed: UInt64) {
        let rise = callsToDetect(seed: seed, before: { l, r in call(&l, "a", median: 0.0375, &r) },
                                 after: { l, r in call(&l, "a", median: 0.0875, &r) })
        let fall = callsToDetect(seed: seed, before: { l, r in call(&l, "a", median: 0.0375, &r) },
                                 after: { l, r in call(&l, "a", median: 0.0125, &r) })
        #expect(rise.map { (1...8).contains($0) } == true, "seed \(seed): \(String(describing: rise))")
        #expect(fall.map { (1...8).contains($0) } == true, "seed \(seed): \(String(describing: fall))")
    }

    /// A model whose every call starts failing at the same speed, or whose answers go from 95 %
    /// right to 30 %, is found from its rates alone within tens of calls (γ = 0.98 alone takes
    /// about 35 calls before the bad half of its record outweighs the good).
    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func aRateShiftIsFoundFromTheRatesAlone(seed: UInt64) {
        let failing = callsToDetect(seed: seed, before: { l, r in call(&l, "a", median: 1, spread: 0.05, failureRate: 0.02, &r) },
                                    after: { l, r in call(&l, "a", median: 1, spread: 0.05, failureRate: 1, &r) })
        let wrong = callsToDetect(seed: seed, before: { l, r in call(&l, "a", median: 1, spread: 0.05, rightRate: 0.95, &r) },
                                  after: { l, r in call(&l, "a", median: 1, spread: 0.05, rightRate: 0.3, &r) })
        #expect(failing.map { (1...25).contains($0) } == true, "seed \(seed): \(String(describing: failing))")
        #expect(wrong.map { (1...25).contains($0) } == true, "seed \(seed): \(String(describing: wrong))")
    }

    /// The test can fail: with threshold 0 the same shift is never called a change.
    @Test func thresholdZeroDetectsNothing() {
        let never = callsToDetect(seed: 1, changeThreshold: 0, before: { l, r in call(&l, "a", median: 0.0375, &r) },
                                  after: { l, r in call(&l, "a", median: 0.0875, failureRate: 0.5, &r) })
        #expect(never == nil)
    }

    /// Stationary models raise (almost) no alarm: three arms, 3,000 calls each, over ten seeds
    /// of latency spread 0.3 (a factor 1.35 either way), 3 % failures, 80 % right: at most one
    /// change in 90,000 calls.
    @Test func stationaryModelsAreLeftAlone() {
        var changes: UInt64 = 0
        for seed in 1...10 as ClosedRange<UInt64> {
            var learner = makeLearner()
            var random = SplitMix64(seed: seed)
            for i in 0..<9000 {
                call(&learner, ["a", "b", "c"][i % 3], median: [0.2, 1, 3][i % 3], failureRate: 0.03, rightRate: 0.8, &random)
            }
            changes += learner.state.arms.reduce(0) { $0 + $1.changes }
        }
        #expect(changes <= 1, "\(changes) changes")
    }

    /// After a change the changed arm starts over from the call that tipped the evidence, every
    /// other arm keeps a tenth of its weights (its means stay), and each other arm is tried once
    /// before the selector exploits again.
    @Test func aChangeRestartsTheArmWidensTheOthersAndRetriesThem() throws {
        var learner = makeLearner()
        var random = SplitMix64(seed: 9)
        for i in 0..<60 { call(&learner, ["a", "b", "c"][i % 3], median: 0.5, &random) }
        let bBefore = arm(learner, "b").decayed(to: learner.calls, discount: 0.98)
        var tipped = 0
        while arm(learner, "a").changes == 0 && tipped < 10 {
            learner.record("a", outcome: .success, latencySeconds: 5, inputTokens: 500, outputTokens: 300)
            tipped += 1
        }
        let a = arm(learner, "a")
        #expect(a.changes == 1 && a.changedAt == learner.calls)
        #expect(a.successes == 1 && a.failures == 0 && a.latencyWeight == 1 && abs(a.latencyMean - log(5)) < 1e-12)
        let bAfter = arm(learner, "b")
        #expect(abs(bAfter.latencyWeight - 0.1 * bBefore.latencyWeight * pow(0.98, Double(tipped))) < 1e-9)
        #expect(abs(bAfter.latencyMean - bBefore.latencyMean) < 1e-12)
        #expect(bAfter.evidence == Learner.ChangeEvidence())
        #expect(a.evidence == Learner.ChangeEvidence())

        let three = ["a", "b", "c"].map { Learner.Candidate($0) }
        var tried: [String] = []
        for _ in 0..<2 {
            let choice = try #require(learner.choose(among: three, objective: objective, using: &random))
            #expect(choice.pick == .untried && choice.arm != "a" && !tried.contains(choice.arm))
            tried.append(choice.arm)
            learner.record(choice.arm, outcome: .success, latencySeconds: 0.5, inputTokens: 500, outputTokens: 300)
        }
        #expect(learner.choose(among: three, objective: objective, using: &random)?.pick == .exploit)
        let explained = try #require(learner.choose(among: three, objective: objective, using: &random))
        let ofA = try #require(explained.candidates.first { $0.arm == "a" })
        #expect(ofA.changes == 1 && ofA.callsSinceChange == 2)
        #expect(explained.candidates.first { $0.arm == "b" }?.callsSinceChange == nil)
    }

    /// Evidence fades with the counts: an arm left alone for 100 calls at γ = 0.98 keeps
    /// 0.98¹⁰⁰ of it.
    @Test func evidenceDecaysLikeTheCounts() {
        var learner = makeLearner()
        var random = SplitMix64(seed: 4)
        for _ in 0..<30 { call(&learner, "a", median: 0.5, spread: 0.1, &random) }
        learner.record("a", outcome: .success, latencySeconds: 0.5 * exp(0.4), inputTokens: 500, outputTokens: 300)
        let before = arm(learner, "a")
        #expect(before.evidence.latency.rise > 0 && before.changes == 0)
        for _ in 0..<100 { call(&learner, "b", median: 0.5, &random) }
        let a = arm(learner, "a").decayed(to: learner.calls, discount: 0.98)
        #expect(abs(a.evidence.latency.rise - before.evidence.latency.rise * pow(0.98, 100)) < 1e-12)
    }

    /// Evidence and changes are state: a restored learner continues the same sums, and a state
    /// with a negative or non-finite sum, or a change after its clock, is refused.
    @Test func evidenceIsStateAndIsChecked() throws {
        var learner = makeLearner()
        var random = SplitMix64(seed: 2)
        for _ in 0..<50 { call(&learner, "a", median: 0.5, rightRate: 0.9, &random) }
        for _ in 0..<10 { call(&learner, "a", median: 1.5, rightRate: 0.9, &random) }
        #expect(arm(learner, "a").changes >= 1)
        call(&learner, "a", median: 0.6, rightRate: 0.9, &random)
        var restored = try Learner(learner.configuration, restoring: learner.state)
        #expect(restored.state == learner.state)
        var one = SplitMix64(seed: 5), other = SplitMix64(seed: 5)
        for _ in 0..<40 {
            call(&learner, "a", median: 0.9, rightRate: 0.5, &one)
            call(&restored, "a", median: 0.9, rightRate: 0.5, &other)
        }
        #expect(restored.state == learner.state)

        let good = learner.state
        let mutations: [(inout Learner.ArmState) -> Void] = [
            { $0.evidence.latency.rise = -1 }, { $0.evidence.wrong.fall = .nan }, { $0.evidence.failure.rise = .infinity },
            { $0.evidence.latency.fall = 1e300 }, { $0.evidence.failure.fall = 1003.6 },
            { $0.changedAt = good.calls + 1 }, { $0.changes = 0 }, { $0.changes = 1; $0.changedAt = 0 },
        ]
        for mutate in mutations {
            var state = good
            mutate(&state.arms[0])
            #expect(refusedSetting { try Learner(learner.configuration, restoring: state) } == "selector.state", "\(state.arms[0])")
        }
    }

    /// 0, or from 4 (one call adds at most 3.5, so no single call tips it) to 1000.
    @Test func aThresholdOutsideZeroOrFourToAThousandIsRefused() {
        for refused in [-1, .nan, .infinity, 0.5, 3.9, 1000.5] as [Double] {
            #expect(refusedSetting { try Learner.Configuration(changeThreshold: refused) } == "selector.changeThreshold", "\(refused)")
        }
        for accepted in [0, 4, 7, 1000] as [Double] {
            #expect(refusedSetting { try Learner.Configuration(changeThreshold: accepted) } == nil, "\(accepted)")
        }
    }

    /// Latency is evidence only from calls of the model's usual size: any client can ask for a
    /// one-token answer (far quicker) or send a huge prompt (far slower), and a run of those
    /// must not make the model "change" for everyone. The same latencies on calls of the usual
    /// size do.
    @Test func callsOfAnotherSizeAreNoEvidenceOfALatencyChange() {
        for (input, output, factor) in [(500, 1, 0.2), (20_000, 300, 5.0), (500, 300, 0.2), (500, 300, 5.0)] {
            var learner = makeLearner()
            var random = SplitMix64(seed: 21)
            for _ in 0..<100 { call(&learner, "a", median: 0.5, &random) }
            for _ in 0..<50 {
                learner.record("a", outcome: .success, latencySeconds: 0.5 * factor * exp(0.3 * Sample.normal(using: &random)),
                               inputTokens: input, outputTokens: output)
            }
            let usual = input == 500 && output == 300
            #expect((arm(learner, "a").changes > 0) == usual, "\(input) in, \(output) out, latency ×\(factor)")
        }
        // Counts the provider did not report (negative) are not the usual size either.
        var learner = makeLearner()
        var random = SplitMix64(seed: 22)
        for _ in 0..<100 { call(&learner, "a", median: 0.5, &random) }
        for _ in 0..<50 { learner.record("a", outcome: .success, latencySeconds: 0.1, inputTokens: -1, outputTokens: -1) }
        #expect(arm(learner, "a").changes == 0)
    }

    /// A change a verdict tips leaves the model just judged out of the retries: the others are
    /// tried again, it is not.
    @Test func aChangeTippedByAVerdictRetriesTheOthersNotTheModelJudged() throws {
        var learner = makeLearner()
        var random = SplitMix64(seed: 6)
        for i in 0..<12 { call(&learner, ["a", "b", "c"][i % 3], median: 0.5, rightRate: 0.95, &random) }
        for _ in 0..<80 { call(&learner, "a", median: 0.5, rightRate: 0.95, &random) }
        // a's answers are found wrong, one verdict after each of its calls, while b and c are
        // called too (so a's last call is older than the change).
        var verdicts = 0
        while arm(learner, "a").changes == 0 && verdicts < 40 {
            learner.record("a", outcome: .success, latencySeconds: 0.5, inputTokens: 500, outputTokens: 300)
            call(&learner, "b", median: 0.5, rightRate: 0.95, &random)
            learner.feedback("a", success: false)
            verdicts += 1
        }
        let a = arm(learner, "a")
        try #require(a.changes == 1, "no change after \(verdicts) wrong verdicts")
        #expect(a.lastRecordedAt < a.changedAt)
        let three = ["a", "b", "c"].map { Learner.Candidate($0) }
        // b was recorded after a's last call but before the change: it is retried, as is c.
        var retried: Set<String> = []
        for _ in 0..<2 {
            let choice = try #require(learner.choose(among: three, objective: objective, using: &random))
            #expect(choice.pick == .untried && choice.arm != "a", "\(choice.arm) \(choice.pick)")
            retried.insert(choice.arm)
            learner.record(choice.arm, outcome: .success, latencySeconds: 0.5, inputTokens: 500, outputTokens: 300)
        }
        #expect(retried == ["b", "c"])
        #expect(learner.choose(among: three, objective: objective, using: &random)?.pick == .exploit)
    }
}
