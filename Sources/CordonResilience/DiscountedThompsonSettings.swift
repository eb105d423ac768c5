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
        /// h, 0 or from 4 to 1000: the evidence (CUSUM, in standard deviations for latency and
        /// in nats for the two rates) at which an arm is taken to have changed; 0 never. Default
        /// 7 (`DiscountedThompson`'s comment has the detector). Below 4 one call could tip it
        /// (a call adds at most 3.5), and the selector would relearn without end: on
        /// bench/models.sh's script simulated, regret 36 at h = 3 and 76 at h = 1, against 22.
        public let changeThreshold: Double
        public static let leastChangeThreshold = 4.0
        public static let maxChangeThreshold = 1000.0

        public init(discount: Double = 0.98, maxArms: Int = 256, latencyPriorWeight: Double = 1,
                    latencyVarianceFloor: Double = 0.05, changeThreshold: Double = 7) throws(ResilienceError) {
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
            guard changeThreshold == 0 || (Self.leastChangeThreshold...Self.maxChangeThreshold).contains(changeThreshold) else {
                throw .invalid("selector.changeThreshold", "selector: change threshold \(changeThreshold) is neither 0 nor from 4 to 1000")
            }
            self.discount = discount
            self.changeThreshold = changeThreshold
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
        /// K in 0...100000: joint posterior draws for P(best); 0 skips it. Each is a draw of
        /// every candidate (four gammas and a normal apiece): on a request's path, 0; for
        /// `model.explain`, a few hundred.
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
