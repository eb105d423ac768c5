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
        ("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [],}", "p.json: not valid JSON: at byte 51: expected a string key"),
        ("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [], \"defaultAction\": \"SCMP_ACT_ERRNO\"}", "p.json: defaultAction: given more than once"),
        ("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": [\"x\"], \"action\": \"SCMP_ACT_ERRNO\", \"action\": \"SCMP_ACT_ALLOW\"}]}", "p.json: syscalls[0].action: given more than once"),
        ("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": [\"x\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 0, \"value\": 1, \"value\": 2, \"op\": \"SCMP_CMP_EQ\"}]}]}", "p.json: syscalls[0].args[0].value: given more than once"),
        ("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": [\"x\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 0, \"value\": 1.5, \"op\": \"SCMP_CMP_EQ\"}]}]}", "p.json: syscalls[0].args[0].value: expected a non-negative integer"),
        ("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": [\"x\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 0, \"value\": -1, \"op\": \"SCMP_CMP_EQ\"}]}]}", "p.json: syscalls[0].args[0].value: expected a non-negative integer"),
    ])
    func errors(_ c: (String, String)) {
        #expect(parseError(c.0).hasPrefix(c.1), "\(parseError(c.0))")
    }

    /// Integers are exact up to UInt64.max, and may be written as Foundation's decoder (which
    /// read profiles before) took them: `1.0`, `1e2`. A byte order mark is skipped.
    @Test func numbersAndByteOrderMark() throws {
        let p = try SeccompProfile.parse([0xEF, 0xBB, 0xBF] + Array("""
        {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1.0, "syscalls": [
          {"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1e1,
           "args": [{"index": 1, "value": 18446744073709551615, "valueTwo": 9223372036854775808, "op": "SCMP_CMP_MASKED_EQ"}]}
        ]}
        """.utf8), file: "p.json")
        #expect(p.defaultAction == .errno(1))
        #expect(p.rules[0].action == .errno(10))
        #expect(p.rules[0].args == [SeccompProfile.Arg(index: 1, value: .max, valueTwo: 1 << 63, op: .maskedEq)])
    }

    /// What `cordon run --learn` writes, byte for byte: sorted keys, two-space indents, arrays
    /// of scalars on one line, `name` folded into `names`, integers written as integers.
    @Test func restrictedText() throws {
        let profile = """
        {"syscalls": [
          {"names": ["read", "write", "mount"], "action": "SCMP_ACT_ALLOW", "comment": "io \\u00e9 / \\ud83d\\ude00"},
          {"name": "ptrace", "action": "SCMP_ACT_ERRNO", "errnoRet": 1.0},
          {"names": ["ioctl"], "action": "SCMP_ACT_LOG", "args": [{"op": "SCMP_CMP_MASKED_EQ", "index": 1, "value": 18446744073709551615, "valueTwo": 21522}]},
          {"names": ["kill"], "action": "SCMP_ACT_ALLOW"}
        ], "defaultAction": "SCMP_ACT_ERRNO", "architectures": [], "archMap": [{"architecture": "SCMP_ARCH_X86_64", "n": 1e2, "n": 2.5}]}
        """
        let (json, notPermitted) = try SeccompProfile.restricted(Array(profile.utf8), file: "p.json", to: ["read", "ioctl", "open"])
        #expect(notPermitted == ["open"])
        #expect(json == """
        {
          "archMap": [
            {
              "architecture": "SCMP_ARCH_X86_64",
              "n": 2.5
            }
          ],
          "architectures": [],
          "defaultAction": "SCMP_ACT_ERRNO",
          "syscalls": [
            {
              "action": "SCMP_ACT_ALLOW",
              "comment": "io é / 😀",
              "names": ["read"]
            },
            {
              "action": "SCMP_ACT_ERRNO",
              "errnoRet": 1,
              "names": ["ptrace"]
            },
            {
              "action": "SCMP_ACT_LOG",
              "args": [
                {
                  "index": 1,
                  "op": "SCMP_CMP_MASKED_EQ",
                  "value": 18446744073709551615,
                  "valueTwo": 21522
                }
              ],
              "names": ["ioctl"]
            }
          ]
        }
        """)
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
