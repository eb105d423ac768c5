import Foundation
@testable import CordonAudit
import CordonSQLite
import Testing

/// model_calls: one row per model call; a rating is the caller's own, once, of a call that
/// answered; retention removes old rows but keeps refused ones and those with denials while
/// denials are kept.
@Suite struct ModelCallsTests {
    static func call(_ id: String, uid: UInt32 = 1000, time: Double = 1000, outcome: String = "ok", denials: String = "[]") -> NewModelCall {
        NewModelCall(completionID: id, time: time, caller: Submitter(uid: uid, gid: uid, pid: 42, exe: "/usr/bin/python3"), requested: "auto",
                     taskType: "chat", model: "small", provider: "standin", reason: "selector: highest draw", attempts: "[]", stream: false,
                     inputTokens: 9, outputTokens: 5, cost: 0.001, firstTokenSeconds: nil, latencySeconds: 0.02, outcome: outcome,
                     message: nil, finishReason: "stop", upstreamID: "chatcmpl-up", policy: "model-worker", policyHash: "abc",
                     denials: denials, requestBytes: 100, answerBytes: 20)
    }

    @Test func aCallIsRatedOnceByItsCallerOnly() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        _ = try store.recordModelCall(Self.call("chatcmpl-a"))
        _ = try store.recordModelCall(Self.call("chatcmpl-b", outcome: "unavailable"))
        #expect(try store.rateModelCall(completionID: "chatcmpl-a", uid: 2000, value: 1, at: 1001) == .unknown)
        #expect(try store.rateModelCall(completionID: "chatcmpl-zz", uid: 1000, value: 1, at: 1001) == .unknown)
        #expect(try store.rateModelCall(completionID: "chatcmpl-b", uid: 1000, value: 1, at: 1001) == .notAnswered)
        #expect(try store.rateModelCall(completionID: "chatcmpl-a", uid: 1000, value: 0.25, at: 1001) == .rated(model: "small", taskType: "chat"))
        #expect(try store.rateModelCall(completionID: "chatcmpl-a", uid: 1000, value: 1, at: 1002) == .alreadyRated)
        #expect(throws: AuditError.self) { try store.rateModelCall(completionID: "chatcmpl-a", uid: 1000, value: .nan, at: 1002) }
        let rows = try store.modelCalls(uid: 1000)
        #expect(rows.map(\.completionID) == ["chatcmpl-b", "chatcmpl-a"])
        #expect(rows.last?.feedback == 0.25)
        // A completion id is unique: a second row with it is refused, not a second call to rate.
        #expect(throws: AuditError.self) { _ = try store.recordModelCall(Self.call("chatcmpl-a")) }
    }

    @Test func retentionRemovesOldCallsButKeepsRefusedAndDeniedOnesWhileDenialsAreKept() throws {
        let dir = TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let store = try AuditStore(path: dir.database)
        _ = try store.recordModelCall(Self.call("old-ok", time: 100))
        _ = try store.recordModelCall(Self.call("old-refused", time: 100, outcome: "refused"))
        _ = try store.recordModelCall(Self.call("old-denied", time: 100, denials: "[{\"kind\":\"connection\",\"what\":\"10.0.0.1:80\"}]"))
        _ = try store.recordModelCall(Self.call("new-ok", time: 5000))
        var rules = RetentionRules(olderThan: 1000)
        rules.keepDenialsSince = 50
        _ = try store.prune(rules)
        #expect(Set(try store.modelCalls().map(\.completionID)) == ["old-refused", "old-denied", "new-ok"])
        rules.keepDenialsSince = 500
        _ = try store.prune(rules)
        #expect(try store.modelCalls().map(\.completionID) == ["new-ok"])
        // Each user's records are measured with their model calls.
        #expect((try store.usage()[1000]?.recordBytes ?? 0) > 0)
    }
}
