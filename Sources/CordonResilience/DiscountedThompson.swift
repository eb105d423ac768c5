/// Which of several arms (models) to call next, learnt online from how calls went and what
/// clients said of the answers: discounted Thompson sampling (Raj and Kalyani 2017; Qi, Wang
/// and Zhu 2023) over a reward of three parts. One learner per task type; arms are named by
/// the caller (model names). The gateway filters first (context, tools, access, price cap, open
/// breakers); this only ranks what is left.
///
/// Per arm it keeps, every number decayed by the same clock:
/// - works: S and F, the calls that returned an answer and those that failed;
/// - correct: Q⁺ and Q⁻, from clients' feedback only: `success` adds 1 to one of them, a
///   `score` s in [0, 1] adds s to Q⁺ and 1 − s to Q⁻ (a fractional Bernoulli update). A call
///   nobody rates changes neither; late feedback lands on the current, decayed counts;
/// - latency: x = ln(seconds) as a Normal: the decayed weight n, weighted mean x̄ and weighted
///   sum of squared deviations M (the information of n, Σx, Σx², kept as West's weighted
///   Welford update so that nothing cancels);
/// - tokens: decayed means of input and output tokens per call, for the expected cost.
///
/// Priors. works ~ Beta(α₀ + S, β₀ + F) with a prior worth 2 calls centred on the task type's
/// pooled rate, (ΣS + ½)/(ΣS + ΣF + 1) over every arm's decayed counts (Beta(1, 1) before
/// any call): whether a call returns at all is mostly a matter of the shared plumbing, so an
/// arm known little about is assumed to work like the others. correct ~ Beta(1 + Q⁺, 1 + Q⁻):
/// answer quality is what sets models apart, so ignorance stays uniform. (With both uniform,
/// an unknown arm's success averaged ¼, below any arm in use, and an arm that improved while
/// unused was found late: in the simulation test's workload over seeds 1–20 the worst regret
/// was 63 against 48, and 5 seeds of 20 missed half the better baseline's regret against 0.)
/// Latency: n₀ pseudo-calls at m₀ = ln(L_ref / 2), an unknown arm using half the budget.
///
/// Discount: the clock is the number of calls recorded for the task type. An observation made
/// at clock t weighs γ^(T − t) at clock T: every arm's counts and weights (not its means) are
/// multiplied by γ^Δ when it is next touched, Δ the calls since it was last decayed (lazy, so a
/// call costs O(1) however many arms there are). Memory is about 1/(1 − γ) calls; the priors
/// are added after decay, so an arm not called for a while drifts back to them and gets tried
/// again. γ = 1: nothing is forgotten.
///
/// Change detection (`ChangeEvidence`; h = `changeThreshold`, 0 turns it off). Discounting
/// alone forgets at one pace: after a model degrades, the roughly 1/(1 − γ) calls of its good
/// past outvote the bad present for tens of calls, and the arm that became best is found only
/// as fast as the leader's record fades. So every recorded call and every verdict is also
/// judged against the arm's own statistics by one-sided CUSUMs (latency up or down in standard
/// deviations of ln(latency), failure rate and wrong-answer rate up or down by a factor of three
/// in the odds). When one reaches h, that arm forgets everything it learnt (the observation
/// that tipped it is then recorded as its first) and every other arm keeps a tenth of its
/// weights: a change seen in one model often comes with others (a shared outage, a new kind of
/// request), and the wider posteriors get them tried again at once. That is O(arms), once per
/// change. On bench/models.sh's script simulated (`DiscountedThompsonSimulationTests`, 300
/// calls a phase, seeds 1–40) the mean regret is 22.0 with it and 27.6 without (phase 2, after
/// the leading model degrades: 9.9 against 15.3); on models that do not change, 19.6 either way.
///
/// A choice, for candidates c with prices and an `Objective`:
/// 1. Posterior per candidate. Success: p = works × correct. Latency: the location
///    μ ~ N(m, s²/(n₀ + n)) where m = (n₀m₀ + n·x̄)/(n₀ + n) and the per-call
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
/// 3. Pick: an arm never recorded, or not recorded since the task type's last change, first
///    (uniformly among those); else with probability ε a uniformly random candidate (so each
///    has at least ε/count, whatever the posteriors); else the highest draw (ties uniformly).
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
    /// The most calls a learner counts (a restored state may not claim more).
    public static let maxCalls: UInt64 = 1 << 62

    public init(_ configuration: Configuration, restoring state: State) throws(ResilienceError) {
        self.configuration = configuration
        guard state.calls <= Self.maxCalls else {
            throw .invalid("selector.state", "selector: the saved state counts \(state.calls) calls, more than \(Self.maxCalls)")
        }
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
        // 2^62 calls are centuries of them; past that the clock stands still rather than trap.
        guard calls < Self.maxCalls else { return }
        calls += 1
        let slot = slot(for: arm)
        arms[slot].decay(to: calls, discount: configuration.discount)
        if configuration.changeThreshold > 0,
           arms[slot].gatherEvidence(outcome: outcome, latencySeconds: latencySeconds, inputTokens: inputTokens, outputTokens: outputTokens,
                                     threshold: configuration.changeThreshold) {
            changed(slot)
        }
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
        if configuration.changeThreshold > 0, arms[slot].gatherEvidence(right: value, threshold: configuration.changeThreshold) {
            changed(slot)
        }
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

    /// What the other arms keep of their weights when one changes.
    static let keptAfterChange = 0.1

    /// Arm `slot` changed: it forgets everything it learnt (the observation that tipped the
    /// evidence is recorded after), and every other arm keeps a tenth of its weights: what
    /// changed one model (a shared outage, a new workload) may have changed the others, and
    /// their wider posteriors get them tried again soon.
    private mutating func changed(_ slot: Int) {
        arms[slot].forget(keeping: 0)
        arms[slot].changes = arms[slot].changes == .max ? .max : arms[slot].changes + 1
        arms[slot].changedAt = calls
        for i in arms.indices where i != slot {
            arms[i].decay(to: calls, discount: configuration.discount)
            arms[i].forget(keeping: Self.keptAfterChange)
        }
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
        let pool = pool()
        let posteriors = zip(candidates, decayed).map { candidate, arm in
            Posterior(arm: arm, candidate: candidate, pool: pool, objective: objective, configuration: configuration)
        }
        let costReference = objective.costReference ?? posteriors.map(\.expectedCost).max()!
        let scorer = Scorer(objective: objective, costReference: costReference)

        let draws = posteriors.map { $0.draw(scorer: scorer, using: &random) }
        // Untried: never recorded, or not since the last change detected in the task type (a
        // call recorded at the clock of a change a verdict tipped came before it); the arm that
        // changed then is excepted: it is the one just judged.
        let lastChange = arms.lazy.map(\.changedAt).max() ?? 0
        let untried = candidates.indices.filter { i in
            guard let arm = decayed[i], arm.calls > 0 else { return true }
            return arm.lastRecordedAt <= lastChange && arm.changedAt != lastChange
        }
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

    /// Every arm's statistics summed, decayed to now: what the task type's arms do on average.
    private func pool() -> Pool {
        var pool = Pool()
        for arm in arms {
            let factor = decayFactor(since: arm.decayedAt)
            pool.successes += factor * arm.successes
            pool.failures += factor * arm.failures
            let weight = factor * arm.tokenWeight
            pool.tokenWeight += weight
            pool.inputTokens += weight * arm.inputTokenMean
            pool.outputTokens += weight * arm.outputTokenMean
        }
        return pool
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
