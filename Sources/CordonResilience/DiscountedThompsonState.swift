#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

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
        /// The change detector's evidence (one-sided CUSUMs, decayed like the counts): that
        /// ln(latency) rose or fell, that the failure rate rose or fell, that the share of
        /// wrong answers rose or fell.
        public var evidence = ChangeEvidence()
        /// Changes detected in this arm, and the clock at the last (0: none).
        public var changes: UInt64 = 0
        public var changedAt: UInt64 = 0

        public init(arm: String, calls: UInt64 = 0, lastRecordedAt: UInt64 = 0, decayedAt: UInt64,
                    successes: Double = 0, failures: Double = 0, correct: Double = 0, incorrect: Double = 0,
                    latencyWeight: Double = 0, latencyMean: Double = 0, latencySquaredDeviations: Double = 0,
                    tokenWeight: Double = 0, inputTokenMean: Double = 0, outputTokenMean: Double = 0,
                    evidence: ChangeEvidence = ChangeEvidence(), changes: UInt64 = 0, changedAt: UInt64 = 0) {
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
            self.evidence = evidence
            self.changes = changes
            self.changedAt = changedAt
        }

        /// ln of the latency clamp [1 µs, 10⁶ s].
        static let logLatencyRange = log(1e-6)...log(1e6)
        static let maxTokens = 1e9

        mutating func decay(to clock: UInt64, discount: Double) {
            let factor = discountFactor(discount, steps: clock - decayedAt)
            decayedAt = clock
            guard factor != 1 else { return }
            scaleCounts(by: factor)
            evidence.scale(by: factor)
        }

        /// Multiplies every count and weight (not the means) by `factor`.
        private mutating func scaleCounts(by factor: Double) {
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

        /// ln(seconds), clamped to `logLatencyRange`.
        static func logLatency(_ seconds: Double) -> Double {
            min(logLatencyRange.upperBound, max(logLatencyRange.lowerBound, log(max(seconds, 1e-6))))
        }

        /// Adds a call's evidence of a change, judged against the arm's (decayed) statistics
        /// before the call is recorded; true when any of it reaches `threshold`.
        mutating func gatherEvidence(outcome: CallOutcome, latencySeconds: Double, inputTokens: Int, outputTokens: Int,
                                     threshold: Double) -> Bool {
            var reached = false
            if latencyWeight >= ChangeEvidence.leastWeight, latencySeconds.isFinite,
               comparable(inputTokens: inputTokens, outputTokens: outputTokens) {
                let deviation = max(ChangeEvidence.leastVariance, latencySquaredDeviations / latencyWeight).squareRoot()
                reached = evidence.latency.addNormal((Self.logLatency(latencySeconds) - latencyMean) / deviation, threshold: threshold)
            }
            if successes + failures >= ChangeEvidence.leastWeight {
                let rate = (failures + 0.5) / (successes + failures + 1)
                reached = evidence.failure.addBernoulli(outcome == .failure ? 1 : 0, rate: rate, threshold: threshold) || reached
            }
            return reached
        }

        /// Whether a call's size is like the arm's usual calls: token counts known, and each
        /// within a factor of 2 of the arm's decayed mean (counted with 8 tokens more, so that
        /// small counts are not judged by a token or two). Latency depends on size, so only such
        /// calls are evidence of a change in latency: one-token answers or huge prompts, which
        /// any client can ask for, say nothing of the model.
        func comparable(inputTokens: Int, outputTokens: Int) -> Bool {
            guard inputTokens >= 0, outputTokens >= 0, tokenWeight >= ChangeEvidence.leastWeight else { return false }
            func near(_ count: Int, _ mean: Double) -> Bool {
                abs(log((min(Double(count), Self.maxTokens) + 8) / (mean + 8))) <= log(2.0)
            }
            return near(inputTokens, inputTokenMean) && near(outputTokens, outputTokenMean)
        }

        /// Adds a verdict's evidence (`right` in [0, 1]) that the share of wrong answers changed.
        mutating func gatherEvidence(right: Double, threshold: Double) -> Bool {
            guard correct + incorrect >= ChangeEvidence.leastWeight else { return false }
            return evidence.wrong.addBernoulli(1 - right, rate: (incorrect + 0.5) / (correct + incorrect + 1), threshold: threshold)
        }

        /// Keeps `factor` of every count and weight (means stay) and clears the evidence.
        mutating func forget(keeping factor: Double) {
            scaleCounts(by: factor)
            evidence = ChangeEvidence()
        }

        mutating func record(outcome: CallOutcome, latencySeconds: Double, inputTokens: Int, outputTokens: Int, at clock: UInt64) {
            calls += 1
            lastRecordedAt = clock
            switch outcome {
            case .success: successes += 1
            case .failure: failures += 1
            }
            if latencySeconds.isFinite {
                let x = Self.logLatency(latencySeconds)
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
            if let problem = evidence.problem { return problem }
            guard Self.logLatencyRange.contains(latencyMean) else {
                return "has latencyMean \(latencyMean), outside ln(1 µs)...ln(10⁶ s)"
            }
            guard inputTokenMean <= Self.maxTokens, outputTokenMean <= Self.maxTokens else {
                return "has a token mean above \(Self.maxTokens)"
            }
            guard decayedAt <= clock, lastRecordedAt <= clock, calls <= clock else {
                return "was decayed or recorded at call \(max(decayedAt, lastRecordedAt)) or has \(calls) calls, past the state's \(clock) calls"
            }
            guard changedAt <= clock, (changes == 0) == (changedAt == 0) else {
                return "changed last at call \(changedAt) with \(changes) changes: past the state's \(clock) calls, or a count without a time"
            }
            // Decayed counts never exceed the calls they count (a little slack for rounding):
            // a count from nowhere would let a saved file steer every choice, and a huge one
            // round a posterior's parameter to zero.
            let most = Double(calls) * (1 + 1e-9) + 1e-9
            for (name, value) in [("successes + failures", successes + failures), ("correct + incorrect", correct + incorrect),
                                  ("latencyWeight", latencyWeight), ("tokenWeight", tokenWeight)] where value > most {
                return "has \(name) \(value), more than its \(calls) calls"
            }
            let width = Self.logLatencyRange.upperBound - Self.logLatencyRange.lowerBound
            guard latencySquaredDeviations <= latencyWeight * width * width + 1e-9 else {
                return "has latencySquaredDeviations \(latencySquaredDeviations), more than its latencies can spread"
            }
            return nil
        }
    }
}

extension DiscountedThompson {
    /// One arm's change detectors, for ln(latency), the failure rate and the share of wrong
    /// answers: two one-sided CUSUMs each (Page 1954), one for a rise and one for a fall, each
    /// observation judged against the arm's statistics just before it. Latency: a call scores
    /// z = (ln L − x̄)/s against the decayed mean and standard deviation (at least √0.05),
    /// clamped to ±4, and the sums add z − ½ and −z − ½ (they look for a shift of one standard
    /// deviation). Rates: the log-likelihood ratio of the observation (a fraction for a scored
    /// verdict) under the rate of three times, or a third of, the odds of the arm's smoothed
    /// decayed rate (k + ½)/(n + 1), against that rate. Each sum stays ≥ 0; a sum reaching h is
    /// a change. Nothing is gathered against fewer than three decayed observations, and the
    /// sums decay with the counts, so evidence left standing fades like the statistics it was
    /// measured against. The reference follows the arm as the evidence grows: a detector whose
    /// reference stood still from the start of an excursion found the rates' changes in fewer
    /// calls, but its latency reference, estimated from a few calls, raised false changes on
    /// stationary models 60 times as often (bench/models.sh's phase-1 models for 900 calls, 200
    /// seeds, simulated: 2.1 changes a run against 0.035) and the bench's regret rose. So a
    /// sharp change is found in a few calls; a gradual or moderate one (failures from 2 % to 50 %
    /// at the same speed) may be absorbed by the moving reference and is left to the discount
    /// and, for failures, to the model's breaker.
    public struct ChangeEvidence: Sendable, Equatable {
        public var latency = Sums()
        public var failure = Sums()
        public var wrong = Sums()

        public init(latency: Sums = Sums(), failure: Sums = Sums(), wrong: Sums = Sums()) {
            (self.latency, self.failure, self.wrong) = (latency, failure, wrong)
        }

        public struct Sums: Sendable, Equatable {
            public var rise = 0.0
            public var fall = 0.0

            public init(rise: Double = 0, fall: Double = 0) {
                (self.rise, self.fall) = (rise, fall)
            }

            /// Adds a latency score z; true when a sum reaches `threshold`.
            mutating func addNormal(_ z: Double, threshold: Double) -> Bool {
                let limit = ChangeEvidence.scoreLimit
                let clamped = min(limit, max(-limit, z))
                rise = max(0, rise + clamped - ChangeEvidence.allowance)
                fall = max(0, fall - clamped - ChangeEvidence.allowance)
                return rise >= threshold || fall >= threshold
            }

            /// Adds `x` in [0, 1] observed where the rate was `rate` (in (0, 1)); true when a
            /// sum reaches `threshold`.
            mutating func addBernoulli(_ x: Double, rate: Double, threshold: Double) -> Bool {
                let odds = rate / (1 - rate)
                func ratio(_ alternative: Double) -> Double {
                    x * log(alternative / rate) + (1 - x) * log((1 - alternative) / (1 - rate))
                }
                let r = ChangeEvidence.oddsRatio
                rise = max(0, rise + ratio(odds * r / (1 + odds * r)))
                fall = max(0, fall + ratio(odds / r / (1 + odds / r)))
                return rise >= threshold || fall >= threshold
            }

            mutating func scale(by factor: Double) {
                rise *= factor
                fall *= factor
            }
        }

        static let leastWeight = 3.0
        static let leastVariance = 0.05
        static let scoreLimit = 4.0
        static let allowance = 0.5
        static let oddsRatio = 3.0

        mutating func scale(by factor: Double) {
            latency.scale(by: factor)
            failure.scale(by: factor)
            wrong.scale(by: factor)
        }

        /// The most a stored sum can hold: a sum that reaches the threshold is cleared, the
        /// threshold is at most `Configuration.maxChangeThreshold`, and one observation adds at
        /// most 3.5 (latency) or ln 3 (a rate).
        static let mostEvidence = Configuration.maxChangeThreshold + scoreLimit - allowance

        /// Why restored evidence cannot be used (a sum not a number from 0 to `mostEvidence`), or nil.
        var problem: String? {
            for (name, sums) in [("latency", latency), ("failure", failure), ("wrong", wrong)] {
                guard (0...Self.mostEvidence).contains(sums.rise), (0...Self.mostEvidence).contains(sums.fall) else {
                    return "has \(name) evidence \(sums.rise), \(sums.fall): not numbers from 0 to \(Self.mostEvidence)"
                }
            }
            return nil
        }
    }
}

/// γ^steps; 1 when nothing happened in between (also for γ = 1).
func discountFactor(_ discount: Double, steps: UInt64) -> Double {
    steps == 0 || discount == 1 ? 1 : pow(discount, Double(steps))
}
