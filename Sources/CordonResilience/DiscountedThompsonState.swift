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
            guard decayedAt <= clock, lastRecordedAt <= clock, calls <= clock else {
                return "was decayed or recorded at call \(max(decayedAt, lastRecordedAt)) or has \(calls) calls, past the state's \(clock) calls"
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

/// γ^steps; 1 when nothing happened in between (also for γ = 1).
func discountFactor(_ discount: Double, steps: UInt64) -> Double {
    steps == 0 || discount == 1 ? 1 : pow(discount, Double(steps))
}
