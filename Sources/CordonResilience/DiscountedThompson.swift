#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Which of several arms (models) to call next, learnt online from how calls went and what
/// clients said of the answers: discounted Thompson sampling (Raj and Kalyani 2017; Qi, Wang
/// and Zhu 2023) over a reward of three parts. One learner per task type; arms are named by
/// the caller (model names). The gateway filters first (context, tools, access, price cap, open
/// breakers); this only ranks what is left.
///
/// Per arm it keeps, every number decayed by the same clock:
/// - works: Beta(1 + S, 1 + F), S and F the calls that returned an answer or failed;
/// - correct: Beta(1 + Q⁺, 1 + Q⁻), from clients' feedback only: `success` adds 1 to Q⁺ or
///   Q⁻, a `score` s in [0, 1] adds s to Q⁺ and 1 − s to Q⁻ (a fractional Bernoulli update);
/// - latency: x = ln(seconds) as a Normal: the decayed weight n, weighted mean x̄ and weighted
///   sum of squared deviations M (the information of n, Σx, Σx², kept as West's weighted
///   Welford update so that nothing cancels);
/// - tokens: decayed means of input and output tokens per call, for the expected cost.
///
/// Discount: the clock is the number of calls recorded for the task type. An observation made
/// at clock t weighs γ^(T − t) at clock T: every arm's counts and weights (not its means) are
/// multiplied by γ^Δ when it is next touched, Δ the calls since it was last decayed (lazy, so a
/// call costs O(1) however many arms there are). Memory is about 1/(1 − γ) calls; the priors
/// are added after decay, so an arm not called for a while drifts back to them and gets tried
/// again. γ = 1: nothing is forgotten.
///
/// A choice, for candidates c with prices and an `Objective`:
/// 1. Posterior per candidate. Success: p = works × correct. Latency: with n₀ prior
///    pseudo-calls at m₀ = ln(L_ref / 2) (an unknown arm is assumed to use half the budget),
///    the location μ ~ N(m, s²/(n₀ + n)) where m = (n₀m₀ + n·x̄)/(n₀ + n) and the per-call
///    spread s² = max(floor, (n₀·1 + M)/(n₀ + n)) (a prior variance of 1, a factor e either
///    way). Cost: (E[in]·p_in + E[out]·p_out)/1000 from the arm's token means, or the means
///    over all arms when it has none, or 1000 and 1000 when nothing was recorded yet; a point
///    estimate (prices are known, token counts vary little).
/// 2. Draw every candidate: p from its two Betas, μ from its Normal, and score
///       u = w_s·p + w_l·(1 − E[min(L, L_ref)]/L_ref) + w_c·(1 − min(1, cost/C_ref)),
///    L ~ LogNormal(μ, s²). The latency term is the expected value of the linear score
///    1 − min(1, L/L_ref) over one call's latency, not the score of one latency: smooth in μ,
///    it ranks arms by what a call is expected to score. C_ref is the objective's, or else the
///    dearest candidate's expected cost (all free: every cost score is 1). Weights are
///    normalised to sum to 1.
/// 3. Pick: an arm never recorded first (uniformly among those); else with probability ε a
///    uniformly random candidate (so each has at least ε/count, whatever the posteriors);
///    else the highest draw (ties uniformly).
/// 4. Explain: for every candidate the posterior means, effective sample sizes, its draw, and
///    P(best): the share of K further joint draws in which it scored highest.
///
/// Inputs are bounded: a latency that is not a finite number is ignored (the outcome still
/// counts) and a finite one is clamped to [1 µs, 10⁶ s]; negative token counts are ignored,
/// larger ones are clamped to 10⁹; a score that is not finite is ignored, a finite one is
/// clamped to [0, 1]. At most `maxArms` arms are kept: recording a new one past that forgets
/// the one recorded least recently. Every stored number is therefore finite.
///
/// Deterministic: the generator is passed in (`SplitMix64` from a seed replays every choice).
/// A value the caller owns and guards, like `SlidingWindow`; `choose` reads, `record` and
/// `feedback` write.
public struct DiscountedThompson: Sendable {
    public let configuration: Configuration
    /// Calls recorded: the clock of the discount.
    public private(set) var calls: UInt64 = 0
    private var arms: [ArmState] = []
    private var slots: [String: Int] = [:]

    public init(_ configuration: Configuration) {
        self.configuration = configuration
    }

    /// A learner that continues from `state` (as `state` exported it). Refuses a state with
    /// more arms than `maxArms`, a repeated arm, a number that is not finite or is negative
    /// where only non-negative ones are stored, or a clock reading after `calls`.
    public init(_ configuration: Configuration, restoring state: State) throws(ResilienceError) {
        self.configuration = configuration
        guard state.arms.count <= configuration.maxArms else {
            throw .invalid("selector.state", "selector: the saved state has \(state.arms.count) arms, more than the \(configuration.maxArms) allowed")
        }
        for arm in state.arms {
            if let problem = arm.problem(clock: state.calls) {
                throw .invalid("selector.state", "selector: the saved state of arm '\(arm.arm)' \(problem)")
            }
            guard slots[arm.arm] == nil else {
                throw .invalid("selector.state", "selector: the saved state has arm '\(arm.arm)' twice")
            }
            slots[arm.arm] = arms.count
            arms.append(arm)
        }
        calls = state.calls
    }

    /// Everything learnt, to persist and restore with `init(_:restoring:)`. Numbers are as last
    /// decayed (each arm says when); restoring continues the same arithmetic.
    public var state: State {
        State(calls: calls, arms: arms)
    }

    // MARK: Learning

    /// Records a finished call of `arm` (any call of this task type advances the clock):
    /// `outcome` is `.success` when it returned an answer, `latencySeconds` the time it took
    /// (a failure's too: a timeout is slow), tokens as billed.
    public mutating func record(_ arm: String, outcome: CallOutcome, latencySeconds: Double, inputTokens: Int, outputTokens: Int) {
        calls += 1
        let slot = slot(for: arm)
        arms[slot].decay(to: calls, discount: configuration.discount)
        arms[slot].record(outcome: outcome, latencySeconds: latencySeconds, inputTokens: inputTokens, outputTokens: outputTokens, at: calls)
    }

    /// A client's verdict on an answer of `arm`: `score` in [0, 1] when it is a finite number,
    /// else `success`. Applied to the arm's current (decayed) counts and does not advance the
    /// clock. Returns false, changing nothing, for an arm this learner does not hold or a
    /// verdict with neither.
    @discardableResult
    public mutating func feedback(_ arm: String, success: Bool?, score: Double? = nil) -> Bool {
        guard let slot = slots[arm] else { return false }
        let value: Double
        if let score, score.isFinite {
            value = min(1, max(0, score))
        } else if let success {
            value = success ? 1 : 0
        } else {
            return false
        }
        arms[slot].decay(to: calls, discount: configuration.discount)
        arms[slot].correct += value
        arms[slot].incorrect += 1 - value
        return true
    }

    /// Forgets `arm` (its provider or upstream model changed: what was learnt is about another
    /// model). Returns whether it was held.
    @discardableResult
    public mutating func remove(_ arm: String) -> Bool {
        guard let slot = slots.removeValue(forKey: arm) else { return false }
        let last = arms.count - 1
        if slot != last {
            arms[slot] = arms[last]
            slots[arms[slot].arm] = slot
        }
        arms.removeLast()
        return true
    }

    private mutating func slot(for arm: String) -> Int {
        if let slot = slots[arm] { return slot }
        if arms.count >= configuration.maxArms, let stalest = arms.indices.min(by: { arms[$0].lastRecordedAt < arms[$1].lastRecordedAt }) {
            remove(arms[stalest].arm)
        }
        slots[arm] = arms.count
        arms.append(ArmState(arm: arm, decayedAt: calls))
        return arms.count - 1
    }

    // MARK: Choosing

    /// Chooses among `candidates` (names unique: a repeated one is a caller's bug and traps);
    /// nil when there are none. Reads only: the draws come from `random`, so the same state,
    /// candidates, objective and generator give the same choice.
    public func choose<R: RandomNumberGenerator>(among candidates: [Candidate], objective: Objective, using random: inout R) -> Choice? {
        guard !candidates.isEmpty else { return nil }
        var seen = Set<String>()
        for candidate in candidates {
            precondition(seen.insert(candidate.arm).inserted, "DiscountedThompson.choose: candidate '\(candidate.arm)' is listed twice")
        }
        let decayed = candidates.map { candidate in
            slots[candidate.arm].map { arms[$0].decayed(to: calls, discount: configuration.discount) }
        }
        let pooled = pooledTokens()
        let posteriors = zip(candidates, decayed).map { candidate, arm in
            Posterior(arm: arm, candidate: candidate, pooledTokens: pooled, objective: objective, configuration: configuration)
        }
        let costReference = objective.costReference ?? posteriors.map(\.expectedCost).max()!
        let scorer = Scorer(objective: objective, costReference: costReference)

        let draws = posteriors.map { $0.draw(scorer: scorer, using: &random) }
        let untried = candidates.indices.filter { (decayed[$0]?.calls ?? 0) == 0 }
        let picked: Int
        let pick: Choice.Pick
        if !untried.isEmpty {
            picked = untried[Sample.index(below: untried.count, using: &random)]
            pick = .untried
        } else if objective.exploration > 0, Sample.unit(using: &random) < objective.exploration {
            picked = Sample.index(below: candidates.count, using: &random)
            pick = .explore
        } else {
            picked = Self.highest(draws.map(\.utility), using: &random)
            pick = .exploit
        }

        var wins = [Int](repeating: 0, count: candidates.count)
        for _ in 0..<objective.posteriorSamples {
            let utilities = posteriors.map { $0.draw(scorer: scorer, using: &random).utility }
            wins[Self.highest(utilities, using: &random)] += 1
        }

        let explanations = candidates.indices.map { i in
            posteriors[i].explanation(
                arm: candidates[i].arm, state: decayed[i], clock: calls, scorer: scorer, draw: draws[i],
                probabilityBest: objective.posteriorSamples > 0 ? Double(wins[i]) / Double(objective.posteriorSamples) : nil)
        }
        return Choice(arm: candidates[picked].arm, index: picked, pick: pick, costReference: scorer.costReference,
                      weights: objective.weights, candidates: explanations)
    }

    /// Token means over every arm, decayed to now: the stand-in for an arm with none.
    private func pooledTokens() -> (input: Double, output: Double)? {
        var weight = 0.0, input = 0.0, output = 0.0
        for arm in arms {
            let w = arm.tokenWeight * decayFactor(since: arm.decayedAt)
            weight += w
            input += w * arm.inputTokenMean
            output += w * arm.outputTokenMean
        }
        guard weight > 0 else { return nil }
        return (input / weight, output / weight)
    }

    private func decayFactor(since instant: UInt64) -> Double {
        discountFactor(configuration.discount, steps: calls - instant)
    }

    /// The index of the largest value, ties broken uniformly (reservoir sampling over the ties,
    /// so a draw is spent only when there is one).
    private static func highest<R: RandomNumberGenerator>(_ values: [Double], using random: inout R) -> Int {
        var best = 0
        var ties = 1
        for i in values.indices.dropFirst() {
            if values[i] > values[best] {
                best = i
                ties = 1
            } else if values[i] == values[best] {
                ties += 1
                if Sample.index(below: ties, using: &random) == 0 { best = i }
            }
        }
        return best
    }
}

/// γ^steps; 1 when nothing happened in between (also for γ = 1).
func discountFactor(_ discount: Double, steps: UInt64) -> Double {
    steps == 0 || discount == 1 ? 1 : pow(discount, Double(steps))
}

// MARK: - Settings

extension DiscountedThompson {
    /// How the learner forgets and what it assumes of an arm it knows little about.
    public struct Configuration: Sendable, Equatable {
        /// γ in (0, 1]: each observation's weight shrinks by this factor per later call of the
        /// task type; memory ≈ 1/(1 − γ) calls. Default 0.98 (about 50 calls).
        public let discount: Double
        /// Arms kept (1...65536); default 256.
        public let maxArms: Int
        /// n₀ > 0: the latency prior counts as this many calls; default 1.
        public let latencyPriorWeight: Double
        /// The least per-call variance of ln(latency) (> 0); default 0.05, so a run of equal
        /// latencies does not make the selector certain.
        public let latencyVarianceFloor: Double

        public init(discount: Double = 0.98, maxArms: Int = 256, latencyPriorWeight: Double = 1,
                    latencyVarianceFloor: Double = 0.05) throws(ResilienceError) {
            guard discount.isFinite, discount > 0, discount <= 1 else {
                throw .invalid("selector.discount", "selector: discount \(discount) is not in (0, 1]")
            }
            guard (1...65536).contains(maxArms) else {
                throw .invalid("selector.maxArms", "selector: maximum arms \(maxArms) is not in 1...65536")
            }
            guard latencyPriorWeight.isFinite, latencyPriorWeight > 0 else {
                throw .invalid("selector.latencyPriorWeight", "selector: latency prior weight \(latencyPriorWeight) is not a positive number")
            }
            guard latencyVarianceFloor.isFinite, latencyVarianceFloor > 0 else {
                throw .invalid("selector.latencyVarianceFloor", "selector: latency variance floor \(latencyVarianceFloor) is not a positive number")
            }
            self.discount = discount
            self.maxArms = maxArms
            self.latencyPriorWeight = latencyPriorWeight
            self.latencyVarianceFloor = latencyVarianceFloor
        }
    }

    /// What a choice optimises, per request: the reward's weights and references, exploration,
    /// and how much explanation to compute.
    public struct Objective: Sendable, Equatable {
        /// The weights of success, latency and cost, normalised to sum to 1.
        public let weights: Weights
        /// L_ref > 0: a call expected to take this long scores 0 on latency (the request's
        /// deadline, or a configured budget).
        public let latencyReferenceSeconds: Double
        /// C_ref > 0: a call expected to cost this much scores 0 on cost; nil: the dearest
        /// candidate's expected cost.
        public let costReference: Double?
        /// ε in [0, 1]: the chance of a uniformly random pick among tried candidates.
        public let exploration: Double
        /// K in 0...100000: joint posterior draws for P(best); 0 skips it.
        public let posteriorSamples: Int

        public struct Weights: Sendable, Equatable {
            public let success: Double
            public let latency: Double
            public let cost: Double
        }

        /// Weights finite and ≥ 0, not all 0.
        public init(successWeight: Double, latencyWeight: Double, costWeight: Double, latencyReferenceSeconds: Double,
                    costReference: Double? = nil, exploration: Double = 0.02, posteriorSamples: Int = 200) throws(ResilienceError) {
            for (name, weight) in [("successWeight", successWeight), ("latencyWeight", latencyWeight), ("costWeight", costWeight)] {
                guard weight.isFinite, weight >= 0 else {
                    throw .invalid("selector.\(name)", "selector: \(name) \(weight) is not a finite number ≥ 0")
                }
            }
            let sum = successWeight + latencyWeight + costWeight
            guard sum > 0 else {
                throw .invalid("selector.successWeight", "selector: the weights of success, latency and cost are all 0")
            }
            guard latencyReferenceSeconds.isFinite, latencyReferenceSeconds > 0 else {
                throw .invalid("selector.latencyReferenceSeconds", "selector: latency reference \(latencyReferenceSeconds) s is not a positive number")
            }
            if let costReference {
                guard costReference.isFinite, costReference > 0 else {
                    throw .invalid("selector.costReference", "selector: cost reference \(costReference) is not a positive number")
                }
            }
            guard exploration.isFinite, exploration >= 0, exploration <= 1 else {
                throw .invalid("selector.exploration", "selector: exploration \(exploration) is not in [0, 1]")
            }
            guard (0...100_000).contains(posteriorSamples) else {
                throw .invalid("selector.posteriorSamples", "selector: posterior samples \(posteriorSamples) is not in 0...100000")
            }
            weights = Weights(success: successWeight / sum, latency: latencyWeight / sum, cost: costWeight / sum)
            self.latencyReferenceSeconds = latencyReferenceSeconds
            self.costReference = costReference
            self.exploration = exploration
            self.posteriorSamples = posteriorSamples
        }
    }

    /// An arm the request may go to, with its prices (per 1000 tokens, in any one currency).
    public struct Candidate: Sendable, Equatable {
        public let arm: String
        public let inputPricePer1k: Double
        public let outputPricePer1k: Double

        /// Prices finite and ≥ 0 (the catalogue has checked them; anything else traps).
        public init(_ arm: String, inputPricePer1k: Double = 0, outputPricePer1k: Double = 0) {
            precondition(inputPricePer1k.isFinite && inputPricePer1k >= 0 && outputPricePer1k.isFinite && outputPricePer1k >= 0,
                         "DiscountedThompson.Candidate: prices of '\(arm)' are not finite numbers ≥ 0")
            self.arm = arm
            self.inputPricePer1k = inputPricePer1k
            self.outputPricePer1k = outputPricePer1k
        }
    }
}

// MARK: - Choices and their explanation

extension DiscountedThompson {
    public struct Choice: Sendable, Equatable {
        public enum Pick: Sendable, Equatable {
            /// The arm had never been recorded: every arm is tried once first.
            case untried
            /// The highest draw: Thompson sampling's own choice (which explores by itself,
            /// in proportion to its uncertainty; compare `meanUtility` to see whether it did).
            case exploit
            /// The ε chance came up: a uniformly random candidate.
            case explore
        }

        public let arm: String
        /// Its index in the candidates.
        public let index: Int
        public let pick: Pick
        /// C_ref as used (the objective's, or the dearest candidate's expected cost).
        public let costReference: Double
        public let weights: Objective.Weights
        /// One per candidate, in the candidates' order.
        public let candidates: [Explanation]
    }

    /// What the learner believes of one candidate, and what this choice drew for it.
    public struct Explanation: Sendable, Equatable {
        public let arm: String
        /// Posterior means: P(a call returns an answer), P(a client finds it right), and their
        /// product, the success the reward uses.
        public let works: Double
        public let correct: Double
        public let success: Double
        /// Median latency of a call (e^m) and the interval holding 90 % of calls' latencies
        /// under the posterior predictive (5th to 95th percentile).
        public let latencyMedianSeconds: Double
        public let latencyLowSeconds: Double
        public let latencyHighSeconds: Double
        public let expectedInputTokens: Double
        public let expectedOutputTokens: Double
        public let expectedCost: Double
        /// Effective sample sizes: decayed calls (S + F), decayed feedback (Q⁺ + Q⁻), decayed
        /// latency weight.
        public let callWeight: Double
        public let feedbackWeight: Double
        public let latencyWeight: Double
        /// Calls of the task type since this arm was last recorded; nil: never.
        public let callsSinceRecorded: UInt64?
        /// The utility at the posterior means (the greedy ranking).
        public let meanUtility: Double
        /// This choice's draw for the arm.
        public let draw: Draw
        /// The share of K joint posterior draws in which this arm scored highest; nil when K = 0.
        /// The untried and ε rules are not part of it.
        public let probabilityBest: Double?
    }

    public struct Draw: Sendable, Equatable {
        /// works × correct as drawn.
        public let success: Double
        /// The median latency of the drawn distribution (e^μ).
        public let latencySeconds: Double
        public let utility: Double
    }
}

// MARK: - State

extension DiscountedThompson {
    /// Everything learnt, as plain numbers: the daemon persists it (as JSON) and restores it.
    public struct State: Sendable, Equatable {
        public var calls: UInt64
        public var arms: [ArmState]

        public init(calls: UInt64, arms: [ArmState]) {
            self.calls = calls
            self.arms = arms
        }
    }
}

extension DiscountedThompson {
    /// One arm's decayed statistics, as of clock `decayedAt`.
    public struct ArmState: Sendable, Equatable {
        public var arm: String
        /// Calls ever recorded, not decayed (0: untried).
        public var calls: UInt64 = 0
        /// The clock at the arm's last recorded call, and when its numbers were last decayed.
        public var lastRecordedAt: UInt64 = 0
        public var decayedAt: UInt64
        /// Decayed calls that returned an answer (S) and that failed (F).
        public var successes = 0.0
        public var failures = 0.0
        /// Decayed feedback: right (Q⁺) and wrong (Q⁻), fractional for scores.
        public var correct = 0.0
        public var incorrect = 0.0
        /// ln(latency in seconds): decayed weight n, weighted mean, weighted sum of squared
        /// deviations from it.
        public var latencyWeight = 0.0
        public var latencyMean = 0.0
        public var latencySquaredDeviations = 0.0
        /// Tokens per call: decayed weight and weighted means.
        public var tokenWeight = 0.0
        public var inputTokenMean = 0.0
        public var outputTokenMean = 0.0

        public init(arm: String, calls: UInt64 = 0, lastRecordedAt: UInt64 = 0, decayedAt: UInt64,
                    successes: Double = 0, failures: Double = 0, correct: Double = 0, incorrect: Double = 0,
                    latencyWeight: Double = 0, latencyMean: Double = 0, latencySquaredDeviations: Double = 0,
                    tokenWeight: Double = 0, inputTokenMean: Double = 0, outputTokenMean: Double = 0) {
            self.arm = arm
            self.calls = calls
            self.lastRecordedAt = lastRecordedAt
            self.decayedAt = decayedAt
            self.successes = successes
            self.failures = failures
            self.correct = correct
            self.incorrect = incorrect
            self.latencyWeight = latencyWeight
            self.latencyMean = latencyMean
            self.latencySquaredDeviations = latencySquaredDeviations
            self.tokenWeight = tokenWeight
            self.inputTokenMean = inputTokenMean
            self.outputTokenMean = outputTokenMean
        }

        /// ln of the latency clamp [1 µs, 10⁶ s].
        static let logLatencyRange = log(1e-6)...log(1e6)
        static let maxTokens = 1e9

        mutating func decay(to clock: UInt64, discount: Double) {
            let factor = discountFactor(discount, steps: clock - decayedAt)
            decayedAt = clock
            guard factor != 1 else { return }
            successes *= factor
            failures *= factor
            correct *= factor
            incorrect *= factor
            latencyWeight *= factor
            latencySquaredDeviations *= factor
            tokenWeight *= factor
        }

        func decayed(to clock: UInt64, discount: Double) -> ArmState {
            var copy = self
            copy.decay(to: clock, discount: discount)
            return copy
        }

        mutating func record(outcome: CallOutcome, latencySeconds: Double, inputTokens: Int, outputTokens: Int, at clock: UInt64) {
            calls += 1
            lastRecordedAt = clock
            switch outcome {
            case .success: successes += 1
            case .failure: failures += 1
            }
            if latencySeconds.isFinite {
                let range = Self.logLatencyRange
                let x = min(range.upperBound, max(range.lowerBound, log(max(latencySeconds, 1e-6))))
                latencyWeight += 1
                let deviation = x - latencyMean
                latencyMean += deviation / latencyWeight
                latencySquaredDeviations += deviation * (x - latencyMean)
            }
            if inputTokens >= 0, outputTokens >= 0 {
                tokenWeight += 1
                inputTokenMean += (min(Double(inputTokens), Self.maxTokens) - inputTokenMean) / tokenWeight
                outputTokenMean += (min(Double(outputTokens), Self.maxTokens) - outputTokenMean) / tokenWeight
            }
        }

        /// Why a restored arm cannot be used, or nil.
        func problem(clock: UInt64) -> String? {
            let counts = [("successes", successes), ("failures", failures), ("correct", correct), ("incorrect", incorrect),
                          ("latencyWeight", latencyWeight), ("latencySquaredDeviations", latencySquaredDeviations),
                          ("tokenWeight", tokenWeight), ("inputTokenMean", inputTokenMean), ("outputTokenMean", outputTokenMean)]
            for (name, value) in counts where !(value.isFinite && value >= 0) {
                return "has \(name) \(value), not a finite number ≥ 0"
            }
            guard Self.logLatencyRange.contains(latencyMean) else {
                return "has latencyMean \(latencyMean), outside ln(1 µs)...ln(10⁶ s)"
            }
            guard inputTokenMean <= Self.maxTokens, outputTokenMean <= Self.maxTokens else {
                return "has a token mean above \(Self.maxTokens)"
            }
            guard decayedAt <= clock, lastRecordedAt <= clock else {
                return "was decayed or recorded at call \(max(decayedAt, lastRecordedAt)), after the state's \(clock) calls"
            }
            return nil
        }
    }
}
