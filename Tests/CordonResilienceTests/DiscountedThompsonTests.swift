import Foundation
import Testing
@testable import CordonResilience

typealias Learner = DiscountedThompson

/// The learner's arithmetic and rules, one at a time.
@Suite struct DiscountedThompsonTests {
    let objective = try! Learner.Objective(successWeight: 0.6, latencyWeight: 0.3, costWeight: 0.1,
                                            latencyReferenceSeconds: 4, costReference: 0.01, exploration: 0, posteriorSamples: 0)
    let two = [Learner.Candidate("a"), Learner.Candidate("b")]

    func makeLearner(discount: Double = 0.98, maxArms: Int = 256) -> Learner {
        Learner(try! .init(discount: discount, maxArms: maxArms))
    }

    func explain(_ learner: Learner, _ candidates: [Learner.Candidate], objective: Learner.Objective? = nil, seed: UInt64 = 1) -> [String: Learner.Explanation] {
        var random = SplitMix64(seed: seed)
        let choice = learner.choose(among: candidates, objective: objective ?? self.objective, using: &random)!
        return Dictionary(uniqueKeysWithValues: choice.candidates.map { ($0.arm, $0) })
    }

    /// works' posterior mean: the arm's counts on a prior worth 2 calls, centred on the pooled
    /// rate (positive + ½)/(all + 1).
    func posteriorMean(own positive: Double, _ negative: Double, pooled pooledPositive: Double, _ pooledNegative: Double) -> Double {
        let centre = (pooledPositive + 0.5) / (pooledPositive + pooledNegative + 1)
        return (2 * centre + positive) / (2 + positive + negative)
    }

    func close(_ a: Double, _ b: Double) -> Bool {
        abs(a - b) < 1e-12
    }

    func arm(_ learner: Learner, _ name: String) -> Learner.ArmState? {
        learner.state.arms.first { $0.arm == name }
    }

    // MARK: Discount

    /// Lazy decay: an arm's numbers are multiplied by γ^Δ when it is next touched; reading
    /// (`choose`) sees them decayed without storing it.
    @Test func decayIsGammaToTheCallsSinceTheArmWasTouched() {
        var learner = makeLearner(discount: 0.5)
        learner.record("a", outcome: .success, latencySeconds: 1, inputTokens: 10, outputTokens: 20)
        for _ in 0..<3 { learner.record("b", outcome: .failure, latencySeconds: 1, inputTokens: 10, outputTokens: 20) }
        #expect(learner.calls == 4)
        // Stored as of its last touch (call 1)…
        #expect(arm(learner, "a")?.successes == 1 && arm(learner, "a")?.decayedAt == 1)
        // …read as of call 4: 0.5³. b's three failures: 0.25 + 0.5 + 1.
        let explained = explain(learner, two)
        #expect(explained["a"]?.callWeight == 0.125)
        #expect(explained["b"]?.callWeight == 1.75)
        #expect(close(explained["a"]!.works, posteriorMean(own: 0.125, 0, pooled: 0.125, 1.75)))
        #expect(explained["a"]?.callsSinceRecorded == 3)
        #expect(explained["b"]?.callsSinceRecorded == 0)
        // Touching it stores the decay, then adds.
        learner.record("a", outcome: .failure, latencySeconds: 1, inputTokens: 10, outputTokens: 20)
        #expect(arm(learner, "a")?.successes == 0.0625)
        #expect(arm(learner, "a")?.failures == 1)
        #expect(arm(learner, "a")?.decayedAt == 5)
    }

    /// ln-latencies 1 then 3 with γ = 0.5: weights 0.5 and 1, weighted mean 7/3, weighted
    /// squared deviations 0.5·(4/3)² + (2/3)² = 4/3 — what n, Σx and Σx² would give.
    @Test func latencyKeepsTheWeightedMeanAndDeviations() {
        var learner = makeLearner(discount: 0.5)
        learner.record("a", outcome: .success, latencySeconds: exp(1), inputTokens: 0, outputTokens: 0)
        learner.record("a", outcome: .success, latencySeconds: exp(3), inputTokens: 0, outputTokens: 0)
        let a = arm(learner, "a")!
        #expect(a.latencyWeight == 1.5)
        #expect(abs(a.latencyMean - 7.0 / 3) < 1e-12)
        #expect(abs(a.latencySquaredDeviations - 4.0 / 3) < 1e-12)
        var undecayed = makeLearner(discount: 1)
        for x in [1.0, 3.0] { undecayed.record("a", outcome: .success, latencySeconds: exp(x), inputTokens: 0, outputTokens: 0) }
        #expect(abs(arm(undecayed, "a")!.latencyMean - 2) < 1e-12)
        #expect(abs(arm(undecayed, "a")!.latencySquaredDeviations - 2) < 1e-12)
    }

    /// γ = 1 forgets nothing: a hundred calls later the first still weighs 1.
    @Test func discountOfOneForgetsNothing() {
        var learner = makeLearner(discount: 1)
        learner.record("a", outcome: .success, latencySeconds: 1, inputTokens: 1, outputTokens: 1)
        for _ in 0..<100 { learner.record("b", outcome: .success, latencySeconds: 1, inputTokens: 1, outputTokens: 1) }
        #expect(explain(learner, two)["a"]?.callWeight == 1)
        #expect(explain(learner, two)["b"]?.callWeight == 100)
    }

    /// An arm left alone drifts back to its prior: its effective sizes shrink and its interval
    /// widens, which is what makes it worth trying again.
    @Test func anArmLeftAloneWidensTowardsItsPrior() {
        var learner = makeLearner(discount: 0.9)
        for _ in 0..<50 { learner.record("a", outcome: .success, latencySeconds: 0.5, inputTokens: 1, outputTokens: 1) }
        let before = explain(learner, two)["a"]!
        for _ in 0..<100 { learner.record("b", outcome: .success, latencySeconds: 1, inputTokens: 1, outputTokens: 1) }
        let after = explain(learner, two)["a"]!
        #expect(after.callWeight < before.callWeight * 0.01)
        #expect(after.latencyHighSeconds / after.latencyLowSeconds > 4 * before.latencyHighSeconds / before.latencyLowSeconds)
        // The prior's median: half the latency reference.
        #expect(abs(after.latencyMedianSeconds - 2) < 0.05)
    }

    /// An arm known little about (new, or not called lately) is assumed to work like the task
    /// type's arms on average; whether its answers are right stays a coin toss.
    @Test func worksPriorIsCentredOnThePooledRate() {
        var learner = makeLearner(discount: 0.98)
        learner.record("b", outcome: .failure, latencySeconds: 1, inputTokens: 1, outputTokens: 1)
        for _ in 0..<300 {
            learner.record("a", outcome: .success, latencySeconds: 1, inputTokens: 1, outputTokens: 1)
            learner.feedback("a", success: true)
        }
        let b = explain(learner, two)["b"]!
        #expect(b.callWeight < 0.01)
        #expect(b.works > 0.9)
        #expect(abs(b.correct - 0.5) < 0.01)
        // Nothing pooled yet: Beta(1, 1).
        #expect(explain(makeLearner(), two)["a"]?.works == 0.5)
    }

    // MARK: Feedback

    @Test func feedbackMovesTheCorrectPosterior() {
        var learner = makeLearner(discount: 1)
        learner.record("a", outcome: .success, latencySeconds: 1, inputTokens: 1, outputTokens: 1)
        #expect(explain(learner, two)["a"]?.correct == 0.5)
        for _ in 0..<5 { learner.feedback("a", success: true) }
        let explained = explain(learner, two)["a"]!
        #expect(explained.correct == 6.0 / 7)
        // works: the only arm's counts are also the pool its prior is centred on.
        #expect(close(explained.success, posteriorMean(own: 1, 0, pooled: 1, 0) * 6 / 7))
        // A score is a fractional update and wins over `success`.
        var accepted = learner.feedback("a", success: true, score: 0.25)
        #expect(accepted)
        #expect(arm(learner, "a")?.correct == 5.25)
        #expect(arm(learner, "a")?.incorrect == 0.75)
        #expect(explain(learner, two)["a"]?.feedbackWeight == 6)
        accepted = learner.feedback("a", success: false)
        #expect(accepted)
        #expect(arm(learner, "a")?.incorrect == 1.75)
        // Feedback does not advance the clock or touch works.
        #expect(learner.calls == 1)
        #expect(arm(learner, "a")?.successes == 1)
    }

    @Test func feedbackIsDecayedLikeCalls() {
        var learner = makeLearner(discount: 0.5)
        learner.record("a", outcome: .success, latencySeconds: 1, inputTokens: 1, outputTokens: 1)
        learner.feedback("a", success: false)
        learner.record("b", outcome: .success, latencySeconds: 1, inputTokens: 1, outputTokens: 1)
        learner.feedback("a", success: true)
        #expect(arm(learner, "a")?.incorrect == 0.5)
        #expect(arm(learner, "a")?.correct == 1)
    }

    @Test func feedbackThatSaysNothingOrNamesNoArmChangesNothing() {
        var learner = makeLearner()
        learner.record("a", outcome: .success, latencySeconds: 1, inputTokens: 1, outputTokens: 1)
        let before = learner.state
        var accepted = learner.feedback("nobody", success: true)
        #expect(!accepted)
        accepted = learner.feedback("a", success: nil)
        #expect(!accepted)
        accepted = learner.feedback("a", success: nil, score: .nan)
        #expect(!accepted)
        accepted = learner.feedback("a", success: nil, score: .infinity)
        #expect(!accepted)
        #expect(learner.state == before)
        // A score that is not a number falls back to `success`; one out of range is clamped.
        accepted = learner.feedback("a", success: false, score: .nan)
        #expect(accepted)
        #expect(arm(learner, "a")?.incorrect == 1)
        accepted = learner.feedback("a", success: nil, score: 7)
        #expect(accepted)
        #expect(arm(learner, "a")?.correct == 1)
        accepted = learner.feedback("a", success: nil, score: -3)
        #expect(accepted)
        #expect(arm(learner, "a")?.incorrect == 2)
    }

    // MARK: Inputs that are not numbers

    @Test func inputsThatAreNotNumbersAreIgnoredAndTheRestClamped() {
        var learner = makeLearner(discount: 1)
        learner.record("a", outcome: .success, latencySeconds: .nan, inputTokens: 5, outputTokens: 5)
        learner.record("a", outcome: .failure, latencySeconds: .infinity, inputTokens: -1, outputTokens: 5)
        learner.record("a", outcome: .success, latencySeconds: -.infinity, inputTokens: 5, outputTokens: -7)
        var a = arm(learner, "a")!
        #expect(a.calls == 3 && a.successes > 0 && a.failures > 0)
        #expect(a.latencyWeight == 0)
        #expect(a.tokenWeight == 1)
        // Finite but absurd: clamped to [1 µs, 10⁶ s] and 10⁹ tokens.
        learner.record("a", outcome: .success, latencySeconds: -5, inputTokens: .max, outputTokens: 0)
        learner.record("a", outcome: .success, latencySeconds: 1e300, inputTokens: 0, outputTokens: .max)
        a = arm(learner, "a")!
        #expect(abs(a.latencyMean - (log(1e-6) + log(1e6)) / 2) < 1e-9)
        #expect(a.inputTokenMean <= 1e9 && a.outputTokenMean <= 1e9)
        let numbers = [a.successes, a.failures, a.correct, a.incorrect, a.latencyWeight, a.latencyMean,
                       a.latencySquaredDeviations, a.tokenWeight, a.inputTokenMean, a.outputTokenMean]
        let stored = numbers.allSatisfy(\.isFinite)
        #expect(stored)
        let explained = explain(learner, [.init("a", inputPricePer1k: 1e6, outputPricePer1k: 1e6), .init("b")])
        for e in explained.values {
            let shown: [Double] = [e.works, e.correct, e.success, e.latencyMedianSeconds, e.latencyLowSeconds, e.latencyHighSeconds,
                                   e.expectedCost, e.meanUtility, e.draw.success, e.draw.latencySeconds, e.draw.utility]
            let finite = shown.allSatisfy(\.isFinite)
            #expect(finite, "\(e)")
            #expect((0...1).contains(e.draw.utility))
            #expect((0...1).contains(e.meanUtility))
        }
    }

    // MARK: Choosing

    /// Every arm is tried once before any is preferred.
    @Test func untriedArmsComeFirst() {
        var learner = makeLearner()
        let three = two + [Learner.Candidate("c")]
        var random = SplitMix64(seed: 3)
        var tried: [String] = []
        for _ in 0..<3 {
            let choice = learner.choose(among: three, objective: objective, using: &random)!
            #expect(choice.pick == .untried)
            #expect(!tried.contains(choice.arm))
            tried.append(choice.arm)
            learner.record(choice.arm, outcome: .failure, latencySeconds: 100, inputTokens: 1, outputTokens: 1)
        }
        #expect(learner.choose(among: three, objective: objective, using: &random)?.pick == .exploit)
        #expect(learner.choose(among: [], objective: objective, using: &random) == nil)
    }

    /// With one arm clearly best, Thompson sampling alone nearly always takes it; ε adds a
    /// uniform pick at rate ε, and says so.
    @Test(arguments: [0.0, 0.1, 0.3])
    func explorationPicksUniformlyAtRateEpsilon(epsilon: Double) throws {
        var learner = makeLearner(discount: 1)
        for _ in 0..<200 {
            learner.record("a", outcome: .success, latencySeconds: 0.2, inputTokens: 1, outputTokens: 1)
            learner.feedback("a", success: true)
            learner.record("b", outcome: .failure, latencySeconds: 3, inputTokens: 1, outputTokens: 1)
        }
        let objective = try Learner.Objective(successWeight: 0.6, latencyWeight: 0.3, costWeight: 0.1,
                                               latencyReferenceSeconds: 4, exploration: epsilon, posteriorSamples: 0)
        var random = SplitMix64(seed: 17)
        let rounds = 20_000
        var explored = 0, pickedB = 0
        for _ in 0..<rounds {
            let choice = learner.choose(among: two, objective: objective, using: &random)!
            if choice.pick == .explore { explored += 1 }
            if choice.arm == "b" {
                pickedB += 1
                #expect(choice.pick == .explore)
            }
        }
        #expect(abs(Double(explored) / Double(rounds) - epsilon) < 0.01)
        #expect(abs(Double(pickedB) / Double(rounds) - epsilon / 2) < 0.01)
    }

    /// The same state, candidates and seed give the same choice, explanation and all; another
    /// seed gives other draws.
    @Test func choicesReplayFromTheSeed() throws {
        var learner = makeLearner()
        var history = SplitMix64(seed: 8)
        for i in 0..<300 {
            let name = ["a", "b", "c"][i % 3]
            learner.record(name, outcome: Sample.unit(using: &history) < 0.8 ? .success : .failure,
                           latencySeconds: 0.1 + Sample.unit(using: &history), inputTokens: 100, outputTokens: 50 * (i % 3))
            learner.feedback(name, success: nil, score: Sample.unit(using: &history))
        }
        let three = [Learner.Candidate("a", inputPricePer1k: 1, outputPricePer1k: 2), .init("b", inputPricePer1k: 0.5), .init("c")]
        let objective = try Learner.Objective(successWeight: 1, latencyWeight: 1, costWeight: 1, latencyReferenceSeconds: 2,
                                               exploration: 0.1, posteriorSamples: 50)
        func choices(_ seed: UInt64) -> [Learner.Choice] {
            var random = SplitMix64(seed: seed)
            return (0..<40).map { _ in learner.choose(among: three, objective: objective, using: &random)! }
        }
        #expect(choices(21) == choices(21))
        #expect(choices(21).map(\.candidates) != choices(22).map(\.candidates))
    }

    /// P(best) is a distribution over the candidates, nearly all on one that dominates; K = 0
    /// skips it.
    @Test func probabilityBestSumsToOneAndFindsADominantArm() throws {
        var learner = makeLearner(discount: 1)
        for _ in 0..<100 {
            learner.record("a", outcome: .success, latencySeconds: 0.3, inputTokens: 1, outputTokens: 1)
            learner.feedback("a", success: true)
            learner.record("b", outcome: .success, latencySeconds: 0.3, inputTokens: 1, outputTokens: 1)
            learner.feedback("b", success: false)
        }
        let objective = try Learner.Objective(successWeight: 0.6, latencyWeight: 0.3, costWeight: 0.1,
                                               latencyReferenceSeconds: 4, posteriorSamples: 400)
        let explained = explain(learner, two, objective: objective)
        let total = explained.values.reduce(0) { $0 + $1.probabilityBest! }
        #expect(abs(total - 1) < 1e-12)
        #expect(explained["a"]!.probabilityBest! > 0.99)
        #expect(explained["a"]!.meanUtility > explained["b"]!.meanUtility + 0.4)
        #expect(explain(learner, two)["a"]?.probabilityBest == nil)
    }

    /// Equal arms split P(best) evenly (ties broken at random, not by order).
    @Test func tiesAreBrokenUniformly() throws {
        let learner = makeLearner()
        let costOnly = try Learner.Objective(successWeight: 0, latencyWeight: 0, costWeight: 1, latencyReferenceSeconds: 1,
                                              exploration: 0, posteriorSamples: 4000)
        let explained = explain(learner, two, objective: costOnly)
        #expect(abs(explained["a"]!.probabilityBest! - 0.5) < 0.03)
    }

    /// The latency term is E[1 − min(1, L/L_ref)] for a log-normal L: checked against its
    /// definition by Monte Carlo, with draws independent of the formula.
    @Test(arguments: [(-1.0, 0.3), (0.5, 0.2), (1.2, 0.8), (2.5, 1.5), (-6.0, 0.22)])
    func latencyScoreIsTheExpectedLinearScore(location: Double, spread: Double) throws {
        let objective = try Learner.Objective(successWeight: 0, latencyWeight: 1, costWeight: 0, latencyReferenceSeconds: 4)
        let scorer = Scorer(objective: objective, costReference: 1)
        var random = SplitMix64(seed: 4)
        var sum = 0.0
        let n = 200_000
        for _ in 0..<n {
            let latency = exp(location + spread * Sample.normal(using: &random))
            sum += 1 - min(1, latency / 4)
        }
        #expect(abs(scorer.latencyScore(location: location, spread: spread) - sum / Double(n)) < 0.003)
        // The extremes are finite and in range.
        #expect(scorer.latencyScore(location: 14, spread: 28) >= 0)
        #expect(scorer.latencyScore(location: -14, spread: 0.2) <= 1)
        #expect(scorer.latencyScore(location: 14, spread: 0.2) == 0)
    }

    /// Expected cost from the arm's token means; an arm without any borrows the others' means;
    /// with nothing recorded, 1000 and 1000. C_ref defaults to the dearest candidate's.
    @Test func expectedCostUsesTokenMeansAndPrices() {
        var learner = makeLearner(discount: 1)
        let priced = [Learner.Candidate("a", inputPricePer1k: 2, outputPricePer1k: 4), .init("b", inputPricePer1k: 1, outputPricePer1k: 1)]
        var random = SplitMix64(seed: 1)
        let objective = try! Learner.Objective(successWeight: 0, latencyWeight: 0, costWeight: 1, latencyReferenceSeconds: 1, exploration: 0)
        var choice = learner.choose(among: priced, objective: objective, using: &random)!
        #expect(choice.candidates.map(\.expectedCost) == [6, 2])
        #expect(choice.costReference == 6)
        learner.record("a", outcome: .success, latencySeconds: 1, inputTokens: 100, outputTokens: 300)
        learner.record("a", outcome: .success, latencySeconds: 1, inputTokens: 300, outputTokens: 100)
        choice = learner.choose(among: priced, objective: objective, using: &random)!
        // (200·2 + 200·4)/1000 and, from a's means, (200·1 + 200·1)/1000.
        #expect(choice.candidates[0].expectedCost == 1.2)
        #expect(choice.candidates[1].expectedCost == 0.4)
        #expect(choice.costReference == 1.2)
        // b costs a third of C_ref: its mean utility is the cost score 1 − 1/3; a's is 0.
        #expect(abs(choice.candidates[1].meanUtility - 2.0 / 3) < 1e-12)
        #expect(choice.candidates[0].meanUtility == 0)
        // All free: every cost score is 1.
        choice = learner.choose(among: two, objective: objective, using: &random)!
        #expect(choice.costReference == 0)
        #expect(choice.candidates.map(\.meanUtility) == [1, 1])
    }

    /// Many equal latencies: the median is that latency, and the 90 % interval is as narrow as
    /// the variance floor allows (e^(±1.645·√0.05), about ×0.69 to ×1.44).
    @Test func latencyExplanationIsMedianAndInterval() {
        var learner = makeLearner(discount: 1)
        for _ in 0..<1000 { learner.record("a", outcome: .success, latencySeconds: 2, inputTokens: 1, outputTokens: 1) }
        let a = explain(learner, two)["a"]!
        #expect(abs(a.latencyMedianSeconds - 2) < 0.01)
        #expect(abs(a.latencyLowSeconds / 2 - 0.692) < 0.01)
        #expect(abs(a.latencyHighSeconds / 2 - 1.445) < 0.01)
        #expect(a.latencyWeight == 1000)
    }

    // MARK: Bounds and state

    /// Past `maxArms`, a new arm replaces the one recorded least recently.
    @Test func armsAreCappedForgettingTheLeastRecentlyRecorded() {
        var learner = makeLearner(maxArms: 3)
        for name in ["a", "b", "c", "a", "d"] {
            learner.record(name, outcome: .success, latencySeconds: 1, inputTokens: 1, outputTokens: 1)
        }
        #expect(Set(learner.state.arms.map(\.arm)) == ["a", "c", "d"])
        var accepted = learner.feedback("b", success: true)
        #expect(!accepted)
        accepted = learner.remove("c")
        #expect(accepted)
        accepted = learner.remove("c")
        #expect(!accepted)
        #expect(Set(learner.state.arms.map(\.arm)) == ["a", "d"])
        learner.record("d", outcome: .failure, latencySeconds: 1, inputTokens: 1, outputTokens: 1)
        #expect(arm(learner, "d")?.calls == 2)
    }

    /// Export, restore, and the two learners continue identically.
    @Test func stateRoundTrips() throws {
        var learner = makeLearner(discount: 0.9)
        var history = SplitMix64(seed: 30)
        for i in 0..<120 {
            let name = "m\(i % 4)"
            learner.record(name, outcome: i % 5 == 0 ? .failure : .success, latencySeconds: Sample.unit(using: &history) * 3,
                           inputTokens: i, outputTokens: 2 * i)
            if i % 3 == 0 { learner.feedback(name, success: nil, score: Sample.unit(using: &history)) }
        }
        var restored = try Learner(learner.configuration, restoring: learner.state)
        #expect(restored.state == learner.state)
        let candidates = (0..<5).map { Learner.Candidate("m\($0)", inputPricePer1k: Double($0)) }
        let objective = try Learner.Objective(successWeight: 0.5, latencyWeight: 0.3, costWeight: 0.2, latencyReferenceSeconds: 3)
        for step in 0..<20 {
            var one = SplitMix64(seed: UInt64(step)), other = SplitMix64(seed: UInt64(step))
            let choice = learner.choose(among: candidates, objective: objective, using: &one)
            #expect(choice == restored.choose(among: candidates, objective: objective, using: &other))
            learner.record(choice!.arm, outcome: .success, latencySeconds: 0.5, inputTokens: 3, outputTokens: 4)
            restored.record(choice!.arm, outcome: .success, latencySeconds: 0.5, inputTokens: 3, outputTokens: 4)
        }
        #expect(restored.state == learner.state)
    }

    @Test func restoringRefusesABrokenState() throws {
        var learner = makeLearner()
        learner.record("a", outcome: .success, latencySeconds: 1, inputTokens: 1, outputTokens: 1)
        learner.record("b", outcome: .success, latencySeconds: 1, inputTokens: 1, outputTokens: 1)
        let good = learner.state
        var broken: [Learner.State] = []
        var twice = good
        twice.arms.append(good.arms[0])
        broken.append(twice)
        let mutations: [(inout Learner.ArmState) -> Void] = [
            { $0.successes = .nan }, { $0.failures = -1 }, { $0.latencyMean = .infinity }, { $0.latencyMean = 40 },
            { $0.outputTokenMean = 1e12 }, { $0.decayedAt = 3 }, { $0.lastRecordedAt = 9 },
        ]
        for mutate in mutations {
            var state = good
            mutate(&state.arms[1])
            broken.append(state)
        }
        for state in broken {
            #expect(refusedSetting { try Learner(learner.configuration, restoring: state) } == "selector.state", "\(state)")
        }
        #expect(refusedSetting { try Learner(try .init(maxArms: 1), restoring: good) } == "selector.state")
        #expect(refusedSetting { try Learner(learner.configuration, restoring: good) } == nil)
    }

    @Test func settingsOutOfRangeAreRefused() {
        #expect(refusedSetting { try Learner.Configuration(discount: 0) } == "selector.discount")
        #expect(refusedSetting { try Learner.Configuration(discount: 1.01) } == "selector.discount")
        #expect(refusedSetting { try Learner.Configuration(discount: .nan) } == "selector.discount")
        #expect(refusedSetting { try Learner.Configuration(discount: 1) } == nil)
        #expect(refusedSetting { try Learner.Configuration(maxArms: 0) } == "selector.maxArms")
        #expect(refusedSetting { try Learner.Configuration(latencyPriorWeight: 0) } == "selector.latencyPriorWeight")
        #expect(refusedSetting { try Learner.Configuration(latencyVarianceFloor: -1) } == "selector.latencyVarianceFloor")
        func makeObjective(success: Double = 1, latency: Double = 1, cost: Double = 1, reference: Double = 1, costReference: Double? = nil,
                       exploration: Double = 0, samples: Int = 0) throws -> Learner.Objective {
            try .init(successWeight: success, latencyWeight: latency, costWeight: cost, latencyReferenceSeconds: reference,
                      costReference: costReference, exploration: exploration, posteriorSamples: samples)
        }
        #expect(refusedSetting { try makeObjective(success: -1) } == "selector.successWeight")
        #expect(refusedSetting { try makeObjective(latency: .infinity) } == "selector.latencyWeight")
        #expect(refusedSetting { try makeObjective(success: 0, latency: 0, cost: 0) } == "selector.successWeight")
        #expect(refusedSetting { try makeObjective(reference: 0) } == "selector.latencyReferenceSeconds")
        #expect(refusedSetting { try makeObjective(costReference: .nan) } == "selector.costReference")
        #expect(refusedSetting { try makeObjective(exploration: 1.5) } == "selector.exploration")
        #expect(refusedSetting { try makeObjective(samples: -1) } == "selector.posteriorSamples")
        #expect(try! makeObjective(success: 2, latency: 1, cost: 1).weights == .init(success: 0.5, latency: 0.25, cost: 0.25))
    }
}
