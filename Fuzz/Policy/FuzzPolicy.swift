import CordonDefaults
import CordonPolicy
import FuzzSupport

/// A policy file: `TOML.parse` and then `PolicyParser` on the table (it parses the TOML first,
/// so one target covers both), with `extends` resolved against the built-in policies and
/// runtime profiles as the policy store would. A policy that parses is then explained (the
/// effective TOML that `cordon policy explain` prints and the store hashes) and scored.
@main enum FuzzPolicy {
    static let seccomp = try! SeccompProfile.parse(EmbeddedDefaults.seccompProfile(named: "default")!, file: "builtin:default.json")

    static func resolve(_ name: String, from: String) throws(PolicyParser.ResolveError) -> (text: String, source: String) {
        let found = name.hasPrefix("runtime:")
            ? EmbeddedDefaults.runtimeProfile(named: String(name.dropFirst("runtime:".count)))
            : EmbeddedDefaults.policy(named: name)
        guard let found else { throw PolicyParser.ResolveError("no policy \(name)") }
        return (String(decoding: found, as: UTF8.self), "builtin:\(name)")
    }

    static func main() {
        Fuzzer.run { input in
            // The policy store refuses text that is not UTF-8 before parsing it.
            guard let text = String(validating: input, as: UTF8.self) else { return }
            guard let (policy, layers) = try? PolicyParser.parseLayers(text: text, source: "/etc/cordon/policies/fuzz.toml",
                                                                    defaultName: "fuzz", resolve: resolve) else { return }
            _ = PolicyExplanation.explain(policy, layers: layers).toml()
            _ = PolicyScore.score(policy, seccomp: seccomp)
        }
    }
}
