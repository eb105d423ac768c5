import CordonJSON
import CordonModels
import CordonResilience
import CordonSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What the gateway learns from calls: one `DiscountedThompson` per task type (named calls teach
/// the task types their model serves, so `auto` benefits from them), and per-model counts for
/// `model.stats`. Guarded by one lock: a choice or a record is microseconds of arithmetic.
final class Selection: Sendable {
    /// The hot path's objective draws no P(best) (a choice is then a few µs); `explaining`'s does.
    let objective: DiscountedThompson.Objective
    let explaining: DiscountedThompson.Objective
    let configuration: DiscountedThompson.Configuration
    private let state: Mutex<State>

    struct State {
        var learners: [String: DiscountedThompson] = [:]
        var models: [String: ModelStats] = [:]
        var changed = false
    }

    init(settings: ModelCatalog.SelectorSettings, restoring saved: SelectorFile.Snapshot?) throws {
        configuration = try DiscountedThompson.Configuration(discount: settings.discount, changeThreshold: settings.changeThreshold)
        objective = try DiscountedThompson.Objective(successWeight: settings.successWeight, latencyWeight: settings.latencyWeight,
                                                     costWeight: settings.costWeight, latencyReferenceSeconds: settings.latencyReferenceSeconds,
                                                     costReference: settings.costReference, exploration: settings.exploration,
                                                     posteriorSamples: 0)
        explaining = try DiscountedThompson.Objective(successWeight: settings.successWeight, latencyWeight: settings.latencyWeight,
                                                      costWeight: settings.costWeight, latencyReferenceSeconds: settings.latencyReferenceSeconds,
                                                      costReference: settings.costReference, exploration: settings.exploration,
                                                      posteriorSamples: 2000)
        var s = State()
        if let saved {
            for (type, learner) in saved.learners {
                // A state that does not restore (another discount's arithmetic is fine; a
                // corrupt one is not) starts afresh rather than stopping the daemon.
                if let restored = try? DiscountedThompson(configuration, restoring: learner) { s.learners[type] = restored }
            }
            s.models = saved.models
        }
        let initial = s
        state = Mutex(initial)
    }

    func choose(taskType: String, among candidates: [DiscountedThompson.Candidate], explain: Bool = false) -> DiscountedThompson.Choice? {
        let learner = state.withLock { $0.learners[taskType] } ?? DiscountedThompson(configuration)
        var random = SystemRandomNumberGenerator()
        return learner.choose(among: candidates, objective: explain ? explaining : objective, using: &random)
    }

    /// Records one finished attempt of `model` for each of `taskTypes`.
    func record(_ model: String, taskTypes: [String], outcome: CallOutcome, latency: Double, inputTokens: Int, outputTokens: Int, cost: Double) {
        state.withLock { s in
            for type in taskTypes {
                if s.learners[type] == nil { s.learners[type] = DiscountedThompson(configuration) }
                s.learners[type]!.record(model, outcome: outcome, latencySeconds: latency, inputTokens: inputTokens, outputTokens: outputTokens)
            }
            s.models[model, default: ModelStats()].add(outcome: outcome, latency: latency, inputTokens: inputTokens, outputTokens: outputTokens, cost: cost)
            s.changed = true
        }
    }

    func feedback(_ model: String, taskTypes: [String], success: Bool?, score: Double?) {
        state.withLock { s in
            for type in taskTypes { s.learners[type]?.feedback(model, success: success, score: score) }
            let good = score.map { $0 >= 0.5 } ?? success ?? false
            if good { s.models[model, default: ModelStats()].feedbackGood += 1 } else { s.models[model, default: ModelStats()].feedbackBad += 1 }
            s.changed = true
        }
    }

    func stats(_ model: String) -> ModelStats { state.withLock { $0.models[model] ?? ModelStats() } }

    func snapshotIfChanged(force: Bool) -> SelectorFile.Snapshot? {
        state.withLock { s in
            guard s.changed || force else { return nil }
            s.changed = false
            return SelectorFile.Snapshot(learners: s.learners.mapValues(\.state), models: s.models)
        }
    }
}

/// Per-model counts since the state file was made.
struct ModelStats: Sendable, Equatable {
    var calls = 0
    var failures = 0
    var inputTokens = 0
    var outputTokens = 0
    var cost = 0.0
    var latencySeconds = 0.0
    var feedbackGood = 0
    var feedbackBad = 0

    mutating func add(outcome: CallOutcome, latency: Double, inputTokens: Int, outputTokens: Int, cost: Double) {
        calls += 1
        if outcome == .failure { failures += 1 }
        self.inputTokens = self.inputTokens.addingReportingOverflow(max(0, inputTokens)).partialValue
        self.outputTokens = self.outputTokens.addingReportingOverflow(max(0, outputTokens)).partialValue
        if cost.isFinite && cost >= 0 { self.cost += cost }
        if latency.isFinite && latency >= 0 { latencySeconds += latency }
    }

    var json: JSON {
        .object([("calls", .int(Int64(calls))), ("failures", .int(Int64(failures))), ("inputTokens", .int(Int64(inputTokens))),
                 ("outputTokens", .int(Int64(outputTokens))), ("cost", .double(cost)), ("latencySeconds", .double(latencySeconds)),
                 ("feedbackGood", .int(Int64(feedbackGood))), ("feedbackBad", .int(Int64(feedbackBad)))])
    }

    init() {}

    /// Reads what `json` wrote; nil for anything else.
    init?(json: JSON) {
        func count(_ key: String) -> Int? {
            guard let n = json[key]?.intValue, n >= 0, n <= Int64(Int.max / 2) else { return nil }
            return Int(n)
        }
        func real(_ key: String) -> Double? {
            guard let d = json[key]?.doubleValue, d.isFinite, d >= 0 else { return nil }
            return d
        }
        guard let calls = count("calls"), let failures = count("failures"), failures <= calls, let i = count("inputTokens"),
              let o = count("outputTokens"), let cost = real("cost"), let latency = real("latencySeconds"),
              let good = count("feedbackGood"), let bad = count("feedbackBad") else { return nil }
        (self.calls, self.failures, inputTokens, outputTokens, self.cost, latencySeconds, feedbackGood, feedbackBad) =
            (calls, failures, i, o, cost, latency, good, bad)
    }
}

/// The selector's state file (`models-selector.json` in the state directory): root's, mode
/// 0600, replaced atomically (written beside, fsynced, renamed). One that cannot be read is
/// set aside (`.corrupt` suffix) and learning starts afresh: it is an optimisation, never a
/// reason not to serve.
enum SelectorFile {
    struct Snapshot: Sendable {
        var learners: [String: DiscountedThompson.State]
        var models: [String: ModelStats]
    }

    static let maxBytes = 16 << 20

    static func read(_ path: String) -> Snapshot? {
        guard let bytes = try? FileSystem.readRegularFile(path, limit: maxBytes, noFollow: true) else { return nil }
        if let snapshot = parse(bytes) { return snapshot }
        _ = rename(path, path + ".corrupt")
        return nil
    }

    static func parse(_ bytes: [UInt8]) -> Snapshot? {
        guard let root = try? JSON.parse(bytes, options: JSON.ParseOptions(maxDepth: 8, maxValues: 2_000_000, maxBytes: maxBytes)),
              root["version"]?.intValue == 1, case .object(let selectors)? = root["selectors"], case .object(let models)? = root["models"] else { return nil }
        var snapshot = Snapshot(learners: [:], models: [:])
        for (type, value) in selectors {
            guard let calls = value["calls"]?.intValue, calls >= 0, case .array(let arms)? = value["arms"] else { return nil }
            var states: [DiscountedThompson.ArmState] = []
            for arm in arms {
                guard let state = armState(arm) else { return nil }
                states.append(state)
            }
            snapshot.learners[type] = DiscountedThompson.State(calls: UInt64(calls), arms: states)
        }
        for (name, value) in models {
            guard let stats = ModelStats(json: value) else { return nil }
            snapshot.models[name] = stats
        }
        return snapshot
    }

    static let armFields = ["successes", "failures", "correct", "incorrect", "latencyWeight", "latencyMean", "latencySquaredDeviations",
                            "tokenWeight", "inputTokenMean", "outputTokenMean"]

    static func armState(_ value: JSON) -> DiscountedThompson.ArmState? {
        guard let arm = value["arm"]?.stringValue, let calls = value["calls"]?.intValue, calls >= 0,
              let last = value["lastRecordedAt"]?.intValue, last >= 0, let decayed = value["decayedAt"]?.intValue, decayed >= 0 else { return nil }
        var numbers: [Double] = []
        for field in armFields {
            guard let d = value[field]?.doubleValue, d.isFinite else { return nil }
            numbers.append(d)
        }
        var s = DiscountedThompson.ArmState(arm: arm, calls: UInt64(calls), lastRecordedAt: UInt64(last), decayedAt: UInt64(decayed))
        (s.successes, s.failures, s.correct, s.incorrect, s.latencyWeight, s.latencyMean, s.latencySquaredDeviations) =
            (numbers[0], numbers[1], numbers[2], numbers[3], numbers[4], numbers[5], numbers[6])
        (s.tokenWeight, s.inputTokenMean, s.outputTokenMean) = (numbers[7], numbers[8], numbers[9])
        // The change detector's numbers came later: a file without them starts with none.
        if let evidence = value["evidence"] {
            for (name, detector) in evidenceDetectors {
                guard let rise = evidence[name]?["rise"]?.doubleValue, let fall = evidence[name]?["fall"]?.doubleValue else { return nil }
                s.evidence[keyPath: detector] = .init(rise: rise, fall: fall)
            }
        }
        if value["changes"] != nil || value["changedAt"] != nil {
            guard let changes = value["changes"]?.intValue, changes >= 0, let at = value["changedAt"]?.intValue, at >= 0 else { return nil }
            (s.changes, s.changedAt) = (UInt64(changes), UInt64(at))
        }
        return s
    }

    static var evidenceDetectors: [(String, WritableKeyPath<DiscountedThompson.ChangeEvidence, DiscountedThompson.ChangeEvidence.Sums>)] {
        [("latency", \.latency), ("failure", \.failure), ("wrong", \.wrong)]
    }

    static func json(_ snapshot: Snapshot) -> JSON {
        let selectors = snapshot.learners.sorted { $0.key < $1.key }.map { type, state -> (String, JSON) in
            (type, .object([("calls", .int(Int64(state.calls))), ("arms", .array(state.arms.map { a in
                .object([("arm", .string(a.arm)), ("calls", .int(Int64(a.calls))), ("lastRecordedAt", .int(Int64(a.lastRecordedAt))),
                         ("decayedAt", .int(Int64(a.decayedAt))), ("successes", .double(a.successes)), ("failures", .double(a.failures)),
                         ("correct", .double(a.correct)), ("incorrect", .double(a.incorrect)), ("latencyWeight", .double(a.latencyWeight)),
                         ("latencyMean", .double(a.latencyMean)), ("latencySquaredDeviations", .double(a.latencySquaredDeviations)),
                         ("tokenWeight", .double(a.tokenWeight)), ("inputTokenMean", .double(a.inputTokenMean)),
                         ("outputTokenMean", .double(a.outputTokenMean)),
                         ("evidence", .object(evidenceDetectors.map { name, detector in
                             let sums = a.evidence[keyPath: detector]
                             return (name, JSON.object([("rise", .double(sums.rise)), ("fall", .double(sums.fall))]))
                         })),
                         ("changes", .int(Int64(clamping: a.changes))), ("changedAt", .int(Int64(clamping: a.changedAt)))])
            }))]))
        }
        let models = snapshot.models.sorted { $0.key < $1.key }.map { ($0.key, $0.value.json) }
        return .object([("version", .int(1)), ("selectors", .object(selectors)), ("models", .object(models))])
    }

    static func write(_ snapshot: Snapshot, to path: String) {
        try? FileSystem.writeAtomically(path, Array(json(snapshot).text.utf8), mode: 0o600)
    }
}
