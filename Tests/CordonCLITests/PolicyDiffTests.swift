import ArgumentParser
import CordonPolicy
import CordonConfig
import CordonSandbox
@testable import CordonCLI
import Foundation
import Testing

/// `cordon policy diff`: every widening shows up on the side that grants it, and only there.
struct PolicyDiffTests {
    let store = PolicyStore(configDir: nil)

    func defaults() throws -> (Policy, SeccompProfile) {
        let policy = try store.loadPolicy("default")
        let (bytes, source) = try store.seccompProfile(policy.seccomp.profile)
        return (policy, try SeccompProfile.parse(bytes, file: source))
    }

    @Test func identicalPoliciesHaveNoDifference() throws {
        let (p, s) = try defaults()
        let diff = PolicyDiff.diff(p, s, p, s)
        #expect(diff.onlyA.isEmpty && diff.onlyB.isEmpty)
    }

    @Test func wideningsAreReportedOnTheGrantingSide() throws {
        let (a, s) = try defaults()
        var b = a
        b.filesystem.readOnly.append(.init(path: "/home"))
        b.filesystem.readWrite.append(.init(path: "/src", source: "/srv/project"))
        b.filesystem.hide = []
        b.capabilities.keep = ["CAP_NET_BIND_SERVICE"]
        b.limits.memoryBytes = 2 << 30
        b.limits.pids = nil
        b.limits.cpuCores = 0.5          // tighter: not a widening
        b.landlock.mode = .off
        b.process.uid = 0
        b.process.passEnv.append("SSH_AUTH_SOCK")
        let diff = PolicyDiff.diff(a, s, b, s)
        #expect(diff.onlyB.map(\.detail) == [
            "/home readable", "host /srv/project at /src writable", "keeps CAP_NET_BIND_SERVICE",
            "runs as root inside its user namespace", "SSH_AUTH_SOCK passed in from the caller",
            "2G (other: 512M)", "unlimited (other: 256)", "off (other: best-effort)",
        ])
        #expect(diff.onlyA.map(\.key) == ["limits.cpu"])
        // And the reverse direction is the mirror image.
        let reverse = PolicyDiff.diff(b, s, a, s)
        #expect(reverse.onlyA == diff.onlyB && reverse.onlyB == diff.onlyA)
    }

    @Test func seccompActionAndAccessDifferences() throws {
        let (a, s) = try defaults()
        var b = a
        b.seccomp.action = .log
        b.access.users = ["alice"]
        b.access.groups = ["agents"]
        var c = a
        c.seccomp.action = .kill
        let diff = PolicyDiff.diff(a, s, b, s)
        #expect(diff.onlyB.map(\.detail) == ["refused calls run and are only reported (other: errno)", "usable by user alice", "usable by group agents"])
        #expect(diff.onlyA.isEmpty)
        let stricter = PolicyDiff.diff(c, s, a, s)
        #expect(stricter.onlyB.map(\.detail) == ["a refused call fails with an errno (other: kill stops the sandbox)"])
        #expect(stricter.onlyA.isEmpty)
    }

    /// A workspace place the other policy does not cover is a widening; one under a place the
    /// other allows is not (whole components: /srv/projects does not cover /srv/projects-old).
    @Test func workspacePlacesAreCoveredByComponents() throws {
        let (a, s) = try defaults()
        var b = a, c = a
        b.workspace.allow = ["/srv/projects"]
        c.workspace.allow = ["/srv/projects/team", "/srv/projects-old"]
        let diff = PolicyDiff.diff(a, s, b, s)
        #expect(diff.onlyB.map(\.detail) == ["takes a caller's workspace under /srv/projects"] && diff.onlyA.isEmpty)
        let narrower = PolicyDiff.diff(b, s, c, s)
        #expect(narrower.onlyB.map(\.detail) == ["takes a caller's workspace under /srv/projects-old"], "\(narrower.onlyB)")
        #expect(narrower.onlyA.map(\.detail) == ["takes a caller's workspace under /srv/projects"])
    }

    /// A looser install gate is a widening on the side that has it, key by key; a stricter one
    /// shows on the other side; an unchanged gate shows nothing.
    @Test func aLooserInstallGateIsAWidening() throws {
        let (a, s) = try defaults()
        var strict = a, loose = a
        strict.install.minReleaseAgeSeconds = 7 * 86400
        strict.install.requireHashes = true
        strict.install.allow = ["requests", "flask"]
        strict.install.deny = ["pycrypto"]
        strict.install.requireProvenance = ["requests"]
        strict.install.sdists = .refuse
        loose.install.index = ServiceURL(scheme: "http", host: "mirror.test", port: 8000, path: "/simple")
        loose.install.indexHosts = ["files.mirror.test:8443"]
        loose.install.minReleaseAgeSeconds = 86400
        loose.install.denyVulnerabilitySeverity = .critical
        loose.install.denyFindingSeverity = .never
        loose.install.allow = ["requests", "flask", "rich"]
        loose.install.typosquats = .warn
        loose.install.yanked = .allowPinned
        loose.install.accept = [Policy.Acceptance(rule: .finding, package: "httpx2", version: "2.17.0", finding: "credential-access", file: "httpx2/_auth.py", reason: "NetRCAuth")]
        let diff = PolicyDiff.diff(strict, s, loose, s)
        let widened = diff.onlyB.map { "\($0.key): \($0.detail)" }
        #expect(widened == [
            "install.index: installs from http://mirror.test:8000/simple (other: https://pypi.org/simple)",
            "install.index_hosts: downloads files from files.mirror.test:8443",
            "install.min_release_age: installs releases 1d old (other: 7d)",
            "install.require_hashes: installs files the request gives no hash for (other: every file needs one)",
            "install.deny_vulnerability_severity: refuses known vulnerabilities only at critical (other: high)",
            "install.deny_finding_severity: installs packages whatever their scanner findings (other: refused at high)",
            "install.allow: installs rich",
            "install.deny: does not deny pycrypto",
            "install.typosquats: installs a likely typosquat with a warning (other: refused)",
            "install.sdists: builds releases that have no wheel, in the build sandbox (other: refused)",
            "install.require_provenance: installs requests without a verified attestation",
            "install.yanked: installs a yanked file the request pins exactly (other: refused)",
            "install.accept: installs httpx2 2.17.0, finding credential-access in httpx2/_auth.py despite install.deny_finding_severity (\"NetRCAuth\")",
        ], "\(widened)")
        // The strict side differs only in its index (and pypi.org's file host).
        #expect(diff.onlyA.map { "\($0.key): \($0.detail)" } == [
            "install.index: installs from https://pypi.org/simple (other: http://mirror.test:8000/simple)",
            "install.index_hosts: downloads files from files.pythonhosted.org:443",
        ], "\(diff.onlyA)")
        var any = a
        any.install.minReleaseAgeSeconds = 0
        #expect(PolicyDiff.diff(strict, s, any, s).onlyB.contains { $0.detail == "installs releases of any age (other: 7d old at least)" })
        var open = strict
        open.install.allow = []
        #expect(PolicyDiff.diff(strict, s, open, s).onlyB.map(\.detail) == ["installs any package name (other: only 2 listed)"])
        var everyone = a
        everyone.install.requireProvenance = ["*"]
        #expect(PolicyDiff.diff(everyone, s, a, s).onlyB.map(\.detail) == ["installs packages without a verified attestation (other: every package needs one)"])
        #expect(PolicyDiff.diff(strict, s, strict, s).onlyB.isEmpty)
    }

    @Test func readOnlyToWritableIsAWidening() throws {
        let (a, s) = try defaults()
        var b = a
        let usr = b.filesystem.readOnly.removeFirst()
        b.filesystem.readWrite.append(usr)
        let diff = PolicyDiff.diff(a, s, b, s)
        #expect(diff.onlyB.map(\.detail) == ["/usr writable"])
        #expect(diff.onlyA.isEmpty, "a writable bind covers the read-only one: \(diff.onlyA)")
    }

    @Test func hiddenPathRevealedIsAWidening() throws {
        var (a, s) = try defaults()
        a.filesystem.hide = ["/usr/share/secret"]
        var b = a
        b.filesystem.hide = []
        #expect(PolicyDiff.diff(a, s, b, s).onlyB.map(\.key) == ["filesystem.hide"])
    }

    @Test func seccompDifferences() throws {
        let (p, s) = try defaults()
        var wider = s
        wider.rules.append(.init(names: ["ptrace"], action: .allow))
        #expect(PolicyDiff.diff(p, s, p, wider).onlyB.map(\.detail) == ["allows ptrace"])
        var conditional = s
        conditional.rules.append(.init(names: ["ptrace"], action: .allow, args: [.init(index: 0, value: 0, op: .eq)]))
        #expect(PolicyDiff.diff(p, conditional, p, wider).onlyB.map(\.detail) == ["allows ptrace without the other's argument conditions"])
        #expect(PolicyDiff.diff(p, wider, p, conditional).onlyB.isEmpty)
        let denylist = SeccompProfile(defaultAction: .allow, rules: [])
        // Allow-all over the default: unlisted calls, and the default's conditional allows
        // (clone flags, socket families, ioctl carve-outs) without their conditions.
        let wide = PolicyDiff.diff(p, s, p, denylist).onlyB.map(\.detail)
        #expect(wide.first?.contains("lets unlisted syscalls through") == true)
        #expect(Array(wide.dropFirst()) == ["allows clone without the other's argument conditions", "allows clone3",
                                            "allows ioctl without the other's argument conditions",
                                            "allows personality without the other's argument conditions",
                                            "allows socket without the other's argument conditions",
                                            "allows socketpair without the other's argument conditions",
                                            "allows unshare without the other's argument conditions"], "\(wide)")
        #expect(PolicyDiff.diff(p, denylist, p, s).onlyB.isEmpty, "an allowlist never grants more than allow-all")
        // Two denylists: what one refuses and the other does not is a widening.
        let narrowDeny = SeccompProfile(defaultAction: .allow, rules: [.init(names: ["mount", "bpf"], action: .errno(1))])
        #expect(PolicyDiff.diff(p, narrowDeny, p, denylist).onlyB.map(\.detail) == ["allows bpf", "allows mount"])
        // An allowlist allowing what a denylist refuses.
        let allowBPF = SeccompProfile(defaultAction: .errno(1), rules: [.init(names: ["bpf"], action: .allow)])
        #expect(PolicyDiff.diff(p, narrowDeny, p, allowBPF).onlyB.map(\.detail) == ["allows bpf"])
        // SCMP_ACT_LOG lets the call run.
        var logged = s
        logged.rules.append(.init(names: ["ptrace"], action: .log))
        #expect(PolicyDiff.diff(p, s, p, logged).onlyB.map(\.detail) == ["allows ptrace"])
    }

    @Test func commandRefusesUnknownPolicy() throws {
        let command = try PolicyDiffCommand.parse(["default", "no-such-policy"])
        #expect(throws: ExitCode(2)) { try command.run() }
    }
}
