import CordonJSON
import CordonModels
import CordonResilience
import Testing
@testable import CordonModelGateway

/// The selector's state file: what it writes reads back to the same learners (change evidence
/// and counts included), a file written before the change detector existed still reads, and
/// a learner whose saved numbers are impossible starts afresh without taking the others along.
@Suite struct SelectorFileTests {
    /// A learner that has seen a change: `a` got three times slower after 40 calls.
    static func learnerWithAChange() -> DiscountedThompson {
        var learner = DiscountedThompson(try! .init())
        var random = SplitMix64(seed: 11)
        for i in 0..<80 {
            let slow = i >= 40 ? 3.0 : 1.0
            let name = i % 2 == 0 ? "a" : "b"
            let latency = (name == "a" ? 0.2 * slow : 0.5) * (1 + 0.1 * Double(random.next() >> 11) / 9007199254740992)
            learner.record(name, outcome: .success, latencySeconds: latency, inputTokens: 10, outputTokens: 20)
            learner.feedback(name, success: i % 3 != 0)
        }
        return learner
    }

    @Test func whatIsWrittenReadsBackTheSame() throws {
        let learner = Self.learnerWithAChange()
        #expect(learner.state.arms.contains { $0.changes > 0 })
        #expect(learner.state.arms.contains { $0.evidence != DiscountedThompson.ChangeEvidence() })
        let snapshot = SelectorFile.Snapshot(learners: ["chat": learner.state], models: [:])
        let read = try #require(SelectorFile.parse(Array(SelectorFile.json(snapshot).text.utf8)))
        #expect(read.learners["chat"] == learner.state)
    }

    /// A file of the shape written before change detection (no evidence, no changes) reads,
    /// with no evidence and no changes.
    @Test func aFileFromBeforeTheDetectorReads() throws {
        let learner = Self.learnerWithAChange()
        let snapshot = SelectorFile.Snapshot(learners: ["chat": learner.state], models: [:])
        guard case .object(var root) = SelectorFile.json(snapshot) else { Issue.record("not an object"); return }
        var old = root
        for (i, member) in root.enumerated() where member.0 == "selectors" {
            guard case .object(var selectors) = member.1, case .object(var chat) = selectors[0].1 else { continue }
            for (j, field) in chat.enumerated() where field.0 == "arms" {
                guard case .array(let arms) = field.1 else { continue }
                chat[j].1 = .array(arms.map { arm in
                    guard case .object(let fields) = arm else { return arm }
                    return .object(fields.filter { !["evidence", "changes", "changedAt"].contains($0.0) })
                })
            }
            selectors[0].1 = .object(chat)
            old[i].1 = .object(selectors)
        }
        root = old
        let text = JSON.object(root).text
        #expect(!text.contains("evidence") && !text.contains("changedAt"))
        let read = try #require(SelectorFile.parse(Array(text.utf8)))
        let arms = try #require(read.learners["chat"]?.arms)
        #expect(arms.count == 2)
        #expect(arms.allSatisfy { $0.evidence == DiscountedThompson.ChangeEvidence() && $0.changes == 0 && $0.changedAt == 0 })
        #expect(arms.map(\.successes) == learner.state.arms.map(\.successes))
    }

    /// Negative evidence is no evidence a call could have made: that task type's learner starts
    /// afresh, the other keeps what it learnt.
    @Test func aLearnerWithImpossibleEvidenceStartsAfresh() throws {
        let learner = Self.learnerWithAChange()
        var broken = learner.state
        broken.arms[0].evidence.latency.rise = -3
        let snapshot = SelectorFile.Snapshot(learners: ["chat": broken, "code": learner.state], models: [:])
        let read = try #require(SelectorFile.parse(Array(SelectorFile.json(snapshot).text.utf8)))
        let selection = try Selection(settings: ModelCatalog.SelectorSettings(), restoring: read)
        let saved = try #require(selection.snapshotIfChanged(force: true))
        #expect(saved.learners["chat"] == nil)
        #expect(saved.learners["code"] == learner.state)
    }
}
