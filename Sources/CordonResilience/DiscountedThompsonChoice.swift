#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

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
        /// Changes the detector found in this arm, and calls of the task type since the last
        /// (nil: none).
        public let changes: UInt64
        public let callsSinceChange: UInt64?
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

/// How `DiscountedThompson` scores a draw: the objective's weights and references.
struct Scorer {
    let weights: DiscountedThompson.Objective.Weights
    let latencyReference: Double
    let logLatencyReference: Double
    let costReference: Double

    init(objective: DiscountedThompson.Objective, costReference: Double) {
        weights = objective.weights
        latencyReference = objective.latencyReferenceSeconds
        logLatencyReference = log(objective.latencyReferenceSeconds)
        self.costReference = costReference
    }

    /// 1 − E[min(L, L_ref)]/L_ref for L ~ LogNormal(μ, s²), s > 0: the expected value of the
    /// linear score 1 − min(1, L/L_ref). With a = (ln L_ref − μ)/s,
    /// E[min(L, L_ref)] = e^(μ + s²/2)·Φ(a − s) + L_ref·(1 − Φ(a)).
    func latencyScore(location: Double, spread: Double) -> Double {
        let a = (logLatencyReference - location) / spread
        let below = standardNormalCDF(a - spread)
        // Relative to L_ref, and 0 when Φ underflows, so e^(large) · 0 never makes a NaN.
        let partial = below > 0 ? exp(location + spread * spread / 2 - logLatencyReference) * below : 0
        let expected = partial + (1 - standardNormalCDF(a))
        return min(1, max(0, 1 - expected))
    }

    /// 1 − min(1, cost/C_ref); 1 when C_ref is 0 (every candidate is free).
    func costScore(_ cost: Double) -> Double {
        costReference > 0 ? 1 - min(1, cost / costReference) : 1
    }

    func utility(success: Double, location: Double, spread: Double, cost: Double) -> Double {
        weights.success * success + weights.latency * latencyScore(location: location, spread: spread)
            + weights.cost * costScore(cost)
    }
}

/// The decayed sums over every arm of a task type: the centre of the works prior and the token
/// means of an arm that has none.
struct Pool {
    var successes = 0.0
    var failures = 0.0
    var tokenWeight = 0.0
    /// Weighted sums (weight × mean).
    var inputTokens = 0.0
    var outputTokens = 0.0

    /// The works prior: mean (S + ½)/(S + F + 1) over the pooled counts, worth
    /// `Posterior.worksPriorWeight` calls; Beta(1, 1) with nothing pooled.
    var worksPrior: (alpha: Double, beta: Double) {
        // Kept off 0 and 1: a pool of 2^53 successes rounds the mean to 1, and Beta(·, 0)
        // cannot be drawn.
        let mean = min(1 - 1e-6, max(1e-6, (successes + 0.5) / (successes + failures + 1)))
        return (Posterior.worksPriorWeight * mean, Posterior.worksPriorWeight * (1 - mean))
    }
}

/// One candidate's posterior under the priors (`DiscountedThompson`'s comment has the model).
struct Posterior {
    /// What the works prior weighs, in calls.
    static let worksPriorWeight = 2.0
    /// The prior per-call variance of ln(latency): a factor e either way.
    static let latencyPriorVariance = 1.0
    /// Tokens assumed per call before anything was recorded for any arm.
    static let nominalTokens = 1000.0
    /// Φ⁻¹(0.95): the half-width of a 90 % interval in standard deviations.
    static let z95 = 1.6448536269514722

    let worksAlpha: Double
    let worksBeta: Double
    let correctAlpha: Double
    let correctBeta: Double
    /// m: the posterior mean of μ, the location of ln(latency).
    let latencyLocation: Double
    /// The posterior standard deviation of μ: s/√(n₀ + n).
    let locationDeviation: Double
    /// s: the per-call standard deviation of ln(latency).
    let latencySpread: Double
    let inputTokens: Double
    let outputTokens: Double
    let expectedCost: Double

    init(arm: DiscountedThompson.ArmState?, candidate: DiscountedThompson.Candidate, pool: Pool,
         objective: DiscountedThompson.Objective, configuration: DiscountedThompson.Configuration) {
        let worksPrior = pool.worksPrior
        worksAlpha = worksPrior.alpha + (arm?.successes ?? 0)
        worksBeta = worksPrior.beta + (arm?.failures ?? 0)
        correctAlpha = 1 + (arm?.correct ?? 0)
        correctBeta = 1 + (arm?.incorrect ?? 0)

        let n0 = configuration.latencyPriorWeight
        let n = arm?.latencyWeight ?? 0
        let priorLocation = log(objective.latencyReferenceSeconds / 2)
        let weight = n0 + n
        latencyLocation = (n0 * priorLocation + n * (arm?.latencyMean ?? 0)) / weight
        let variance = max(configuration.latencyVarianceFloor,
                           (n0 * Self.latencyPriorVariance + (arm?.latencySquaredDeviations ?? 0)) / weight)
        latencySpread = variance.squareRoot()
        locationDeviation = (variance / weight).squareRoot()

        if let arm, arm.tokenWeight > 0 {
            (inputTokens, outputTokens) = (arm.inputTokenMean, arm.outputTokenMean)
        } else if pool.tokenWeight > 0 {
            (inputTokens, outputTokens) = (pool.inputTokens / pool.tokenWeight, pool.outputTokens / pool.tokenWeight)
        } else {
            (inputTokens, outputTokens) = (Self.nominalTokens, Self.nominalTokens)
        }
        expectedCost = (inputTokens * candidate.inputPricePer1k + outputTokens * candidate.outputPricePer1k) / 1000
    }

    var works: Double { worksAlpha / (worksAlpha + worksBeta) }
    var correct: Double { correctAlpha / (correctAlpha + correctBeta) }

    /// One joint draw: works and correct from their Betas, μ from its Normal. Always four
    /// gamma draws and one normal, in that order.
    func draw<R: RandomNumberGenerator>(scorer: Scorer, using random: inout R) -> DiscountedThompson.Draw {
        let works = Sample.beta(worksAlpha, worksBeta, using: &random)
        let correct = Sample.beta(correctAlpha, correctBeta, using: &random)
        let location = latencyLocation + locationDeviation * Sample.normal(using: &random)
        let success = works * correct
        return DiscountedThompson.Draw(
            success: success, latencySeconds: exp(location),
            utility: scorer.utility(success: success, location: location, spread: latencySpread, cost: expectedCost))
    }

    func explanation(arm name: String, state: DiscountedThompson.ArmState?, clock: UInt64, scorer: Scorer,
                     draw: DiscountedThompson.Draw, probabilityBest: Double?) -> DiscountedThompson.Explanation {
        let predictive = (latencySpread * latencySpread + locationDeviation * locationDeviation).squareRoot()
        let success = works * correct
        return DiscountedThompson.Explanation(
            arm: name, works: works, correct: correct, success: success,
            latencyMedianSeconds: exp(latencyLocation),
            latencyLowSeconds: exp(latencyLocation - Self.z95 * predictive),
            latencyHighSeconds: exp(latencyLocation + Self.z95 * predictive),
            expectedInputTokens: inputTokens, expectedOutputTokens: outputTokens, expectedCost: expectedCost,
            callWeight: (state?.successes ?? 0) + (state?.failures ?? 0),
            feedbackWeight: (state?.correct ?? 0) + (state?.incorrect ?? 0),
            latencyWeight: state?.latencyWeight ?? 0,
            callsSinceRecorded: state.flatMap { $0.calls > 0 ? clock - $0.lastRecordedAt : nil },
            changes: state?.changes ?? 0,
            callsSinceChange: state.flatMap { $0.changes > 0 ? clock - $0.changedAt : nil },
            meanUtility: scorer.utility(success: success, location: latencyLocation, spread: latencySpread, cost: expectedCost),
            draw: draw, probabilityBest: probabilityBest)
    }
}
