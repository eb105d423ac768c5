import CordonPolicy
@testable import CordonSandbox
import Foundation
import Testing

/// What a learned policy makes of the destinations a run connected to (pure: no sandbox).
struct LearnedPolicyTests {
    /// IPv4 destinations become rules; IPv6 ones are reported, since the policy parser refuses
    /// IPv6 rules (IPv6 egress is refused on every path) and the learned policy must load.
    @Test func ipv6DestinationsAreReportedNotListed() throws {
        var observation = LearnObservation(cwd: "/")
        observation.destinations = ["203.0.113.5:443", "[2001:db8:0:0:0:0:0:1]:443", "127.0.0.1:80", "[0:0:0:0:0:0:0:1]:80"]
        let profile = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(Harness.repo)/profiles/seccomp/default.json")))
        let learned = try LearnedPolicy.make(observation, base: Policy(name: "default", source: "default.toml"), baseReference: "default",
                                             baseProfile: (profile, "default.json"), name: "learned",
                                             profileFileName: "learned.seccomp.json", command: ["true"])
        #expect(learned.destinations == ["203.0.113.5:443"])
        #expect(learned.warnings.contains { $0.hasPrefix("connected to [2001:db8:0:0:0:0:0:1]:443 over IPv6") && $0.contains("IPv6 egress is refused") },
                "\(learned.warnings)")
        let parsed = try PolicyParser.parse(text: learned.toml, source: "learned.toml", defaultName: "learned",
                                            resolve: { name, _ in ("", "parent:\(name)") })
        #expect(parsed.network.allow == ["203.0.113.5:443"])
    }
}
