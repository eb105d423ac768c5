import Testing
@testable import CordonPolicy

struct SeccompProfileTests {
    func parse(_ json: String) throws -> SeccompProfile {
        try SeccompProfile.parse(Array(json.utf8), file: "p.json")
    }

    func parseError(_ json: String) -> String {
        do { _ = try parse(json); return "" } catch let e as SeccompProfile.ParseError { return e.description } catch { return "\(error)" }
    }

    @Test func parsesOCIProfile() throws {
        let p = try parse("""
        {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "syscalls": [
          {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
          {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
          {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
        ]}
        """)
        #expect(p.defaultAction == .errno(1))
        #expect(p.rules.count == 3)
        #expect(p.rules[1].args == [SeccompProfile.Arg(index: 0, value: 2_114_060_288, valueTwo: 0, op: .maskedEq)])
        #expect(p.rules[2].action == .errno(38))
    }

    @Test(arguments: [
        ("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [], \"extra\": 1}", "p.json: extra: unknown key"),
        ("{\"defaultAction\": \"SCMP_ACT_NOPE\", \"syscalls\": []}", "p.json: defaultAction: unknown action \"SCMP_ACT_NOPE\""),
        ("{\"defaultAction\": \"SCMP_ACT_NOTIFY\", \"syscalls\": []}", "p.json: defaultAction: SCMP_ACT_NOTIFY is reserved: Cordon reports denials itself"),
        ("{\"defaultAction\": \"SCMP_ACT_ERRNO\"}", "p.json: syscalls: missing or not an array"),
        ("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": [], \"action\": \"SCMP_ACT_ALLOW\"}]}", "p.json: syscalls[0].names: expected a non-empty array of strings"),
        ("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": [\"x\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 7, \"value\": 1, \"op\": \"SCMP_CMP_EQ\"}]}]}", "p.json: syscalls[0].args[0].index: expected 0...5"),
        ("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": [\"x\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 0, \"value\": 1, \"op\": \"EQ\"}]}]}", "p.json: syscalls[0].args[0].op: expected one of SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_EQ, SCMP_CMP_GE, SCMP_CMP_GT, SCMP_CMP_MASKED_EQ"),
        ("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": [\"x\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 0, \"value\": 1, \"op\": \"SCMP_CMP_EQ\"}, {\"index\": 0, \"value\": 2, \"op\": \"SCMP_CMP_EQ\"}]}]}", "p.json: syscalls[0].args[1]: a second comparison on argument 0 in one rule (libseccomp allows one per argument; write two rules)"),
        ("[1]", "p.json: expected a JSON object"),
        ("{", "p.json: not valid JSON"),
    ])
    func errors(_ c: (String, String)) {
        #expect(parseError(c.0).hasPrefix(c.1), "\(parseError(c.0))")
    }

    /// A deny rule wins over an unconditional allow: the allow becomes the exact complement.
    /// Checked exhaustively over an 8-bit mask.
    @Test func complementIsExact() throws {
        let profile = SeccompProfile(defaultAction: .errno(1), rules: [
            .init(names: ["ioctl"], action: .allow),
            .init(names: ["ioctl"], action: .errno(1), args: [.init(index: 1, value: 0xff, valueTwo: 0x12, op: .maskedEq)]),
            .init(names: ["ioctl"], action: .errno(1), args: [.init(index: 1, value: 0xff, valueTwo: 0x1c, op: .maskedEq)]),
        ])
        let rules = try profile.normalized()
        let allows = rules.filter { $0.action == .allow }
        #expect(!allows.contains { $0.args.isEmpty }, "the unconditional allow must be gone")
        for value: UInt64 in 0..<256 {
            for high: UInt64 in [0, 0xffff_ffff_0000_0000] {
                let arg = value | high
                let allowed = allows.contains { rule in rule.args.allSatisfy { arg & $0.value == $0.valueTwo } }
                let expectAllowed = value != 0x12 && value != 0x1c
                #expect(allowed == expectAllowed, "value \(arg)")
            }
        }
        // And the patterns never overlap (so the filter has no ambiguity to resolve).
        for v: UInt64 in 0..<256 {
            #expect(allows.filter { r in r.args.allSatisfy { v & $0.value == $0.valueTwo } }.count <= 1)
        }
    }

    @Test func complementRejectsWhatItCannotExpress() {
        let profile = SeccompProfile(defaultAction: .errno(1), rules: [
            .init(names: ["socket"], action: .allow),
            .init(names: ["socket"], action: .errno(1), args: [.init(index: 0, value: 5, op: .gt)]),
        ])
        #expect(throws: SeccompProfile.NormalizeError.self) { try profile.normalized() }
    }

    @Test func shippedDefaultProfileNormalizes() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("profiles/seccomp/default.json").path
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let rules = try SeccompProfile.parse(bytes, file: path).normalized()
        #expect(rules.contains { $0.name == "read" && $0.action == .allow })
        #expect(!rules.contains { $0.name == "ioctl" && $0.action == .allow && $0.args.isEmpty })
        #expect(!rules.contains { $0.name == "ptrace" && $0.action == .allow })
    }
}

import Foundation
