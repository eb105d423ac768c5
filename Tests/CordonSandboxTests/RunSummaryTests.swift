import CordonPolicy
@testable import CordonSandbox
import Foundation
import Testing

/// The end-of-run summary from a record: each refusal once with its count and governing key,
/// each limit with its value (the sandboxed runs are in RunFlagsTests).
struct RunSummaryTests {
    static func record(_ members: String, reason: String = "exited") throws -> SandboxResult {
        let json = """
            {"reason":"\(reason)","exitCode":1,"wallTimeSeconds":0.1,"stdoutBytes":0,"stderrBytes":0,"deniedOmitted":0,"logged":[],
             "policy":"p","policyHash":"h",\(members)}
            """
        return try JSONDecoder().decode(SandboxResult.self, from: Data(json.utf8))
    }

    @Test func egressRefusalsNameTheAllowlist() throws {
        let r = try Self.record("""
            "denied":[],"egress":[
              {"kind":"dns","verdict":"denied","reason":"NXDOMAIN: not on the allowlist","name":"evil.example"},
              {"kind":"connection","verdict":"denied","reason":"not on the allowlist","name":"evil.example","destination":"203.0.113.5:443"},
              {"kind":"connection","verdict":"denied","reason":"not on the allowlist","name":"evil.example","destination":"203.0.113.5:443"},
              {"kind":"connection","verdict":"allowed","reason":"api.example.com:443","name":"api.example.com","destination":"198.51.100.1:443"}]
            """)
        var policy = Policy(name: "p", source: "p.toml")
        policy.network.mode = .allowlist
        #expect(RunSummary.lines(r, policy: policy) == [
            "refused: lookup of evil.example (network.allow: NXDOMAIN: not on the allowlist)",
            "refused: connect to evil.example:443 ×2 (network.allow: not on the allowlist)",
        ])
    }

    @Test func limitsCarryTheirValues() throws {
        var policy = Policy(name: "p", source: "p.toml")
        policy.limits.memoryBytes = 256 << 20
        policy.limits.pids = 64
        policy.limits.outputBytes = 1536 << 20
        for (reason, line) in [("memory-limit", "ended: memory limit 256 MiB (limits.memory)"), ("pids-limit", "ended: process limit 64 (limits.pids)"),
                               ("output-limit", "ended: output limit 1.5 GiB (limits.output)")] {
            let r = try Self.record("\"denied\":[]", reason: reason)
            #expect(RunSummary.lines(r, policy: policy) == [line])
        }
        let quiet = try Self.record("\"denied\":[]")
        #expect(RunSummary.lines(quiet, policy: policy).isEmpty, "nothing refused, no limit: nothing said")
    }
}
