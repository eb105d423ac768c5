import CordonPolicy
@testable import CordonPackaging
import Testing

/// The gate, one rule at a time: each refusal names the package, version and file, the rule's
/// policy key and the evidence; a file nothing is wrong with gets no verdict.
struct InstallGateTests {
    static let now = 1_796_558_400.0  // 2026-12-06T12:00:00Z
    static let sha = String(repeating: "1", count: 64), other = String(repeating: "2", count: 64)

    static func clean(_ name: String = "cordon-clean", _ version: String = "1.0") -> PackageFacts {
        var f = PackageFacts(name: name, version: version, filename: "\(name.replacingDashes)-\(version)-py3-none-any.whl", kind: .wheel, sha256: sha)
        f.indexSHA256 = sha
        f.uploadTime = now - 30 * 86400
        f.metadataName = name
        f.metadataVersion = version
        return f
    }

    func messages(_ gate: Policy.Install, _ f: PackageFacts) -> [String] {
        InstallGate.decide(gate, f, now: Self.now).map(\.description)
    }

    func messages(_ f: PackageFacts) -> [String] { messages(Policy.Install(), f) }

    @Test func aCleanFileHasNoVerdict() {
        #expect(messages(Self.clean()).isEmpty)
        var strict = Policy.Install()
        strict.minReleaseAgeSeconds = 7 * 86400
        strict.allow = ["cordon-clean"]
        strict.requireHashes = true
        var f = Self.clean()
        f.requestedSHA256 = [Self.sha]
        f.pinned = true
        #expect(messages(strict, f).isEmpty)
    }

    @Test func denyAndAllow() {
        var gate = Policy.Install()
        gate.deny = ["pycrypto"]
        #expect(messages(gate, Self.clean("pycrypto", "2.6.1")) == ["pycrypto 2.6.1 pycrypto-2.6.1-py3-none-any.whl: pycrypto is listed in install.deny (install.deny)"])
        gate.allow = ["requests", "pycrypto"]
        #expect(messages(gate, Self.clean()) == ["cordon-clean 1.0 cordon_clean-1.0-py3-none-any.whl: cordon-clean is not in install.allow (install.allow)"])
        #expect(messages(gate, Self.clean("pycrypto", "2.6.1")).count == 1, "deny wins over allow")
    }

    @Test func hashesRefuseTheFileAndItsSet() {
        var tampered = Self.clean("cordon-tampered")
        tampered.indexSHA256 = Self.other
        #expect(messages(tampered) == ["cordon-tampered 1.0 cordon_tampered-1.0-py3-none-any.whl: the bytes hash to sha256:\(Self.sha), the index says sha256:\(Self.other) (hash check)"])
        var unrequested = Self.clean()
        unrequested.requestedSHA256 = [Self.other]
        #expect(messages(unrequested).first?.contains("which is not among the request's 1 hash for it (hash check)") == true)
        var set = InstallGate.decide(Policy.Install(), set: [Self.clean(), tampered, Self.clean("cordon-other")], now: Self.now).map(\.description)
        #expect(set.count == 3, "\(set)")
        set.removeFirst()
        #expect(set == ["cordon-clean 1.0 cordon_clean-1.0-py3-none-any.whl: refused with its set: cordon_tampered-1.0-py3-none-any.whl did not match its hash (whole set)",
                        "cordon-other 1.0 cordon_other-1.0-py3-none-any.whl: refused with its set: cordon_tampered-1.0-py3-none-any.whl did not match its hash (whole set)"])
        #expect(InstallGate.decide(Policy.Install(), set: [Self.clean(), Self.clean("cordon-other")], now: Self.now).isEmpty)
        var gate = Policy.Install()
        gate.requireHashes = true
        #expect(messages(gate, Self.clean()) == ["cordon-clean 1.0 cordon_clean-1.0-py3-none-any.whl: the request gives no hash for it (install.require_hashes = true: pin it with --hash=sha256:\(Self.sha) or a lock) (install.require_hashes)"])
    }

    @Test func aFileThatSaysItIsAnotherPackageIsRefused() {
        var liar = Self.clean("cordon-liar")
        liar.metadataName = "requests"
        liar.metadataVersion = "2.32.3"
        #expect(messages(liar) == ["cordon-liar 1.0 cordon_liar-1.0-py3-none-any.whl: its METADATA says it is requests 2.32.3, not cordon-liar (identity check)"])
        var version = Self.clean()
        version.metadataVersion = "1.1"
        #expect(messages(version).first?.hasSuffix("its METADATA says version 1.1, not 1.0 (identity check)") == true)
        version.metadataVersion = "1.0.0"
        #expect(messages(version).isEmpty, "PEP 440: 1.0.0 is 1.0")
        var spelled = Self.clean()
        spelled.metadataName = "Cordon_Clean"
        #expect(messages(spelled).isEmpty)
    }

    @Test func yanked() {
        var f = Self.clean("cordon-yanked")
        f.yanked = "broken build"
        #expect(messages(f) == ["cordon-yanked 1.0 cordon_yanked-1.0-py3-none-any.whl: yanked: \"broken build\" (install.yanked)"])
        var gate = Policy.Install()
        gate.yanked = .allowPinned
        #expect(messages(gate, f).first?.contains("installs it only when the request pins 1.0 exactly (install.yanked)") == true)
        f.pinned = true
        let pinned = InstallGate.decide(gate, f, now: Self.now)
        #expect(pinned.count == 1 && !pinned[0].refuses && pinned[0].description.contains(": warning: yanked: \"broken build\"; installed because the request pins it"))
        f.yanked = ""
        #expect(messages(f).first?.contains("yanked (no reason given)") == true)
    }

    @Test func minReleaseAge() {
        var gate = Policy.Install()
        gate.minReleaseAgeSeconds = 7 * 86400
        var fresh = Self.clean("cordon-fresh")
        fresh.uploadTime = Self.now - 3600
        #expect(messages(gate, fresh) == ["cordon-fresh 1.0 cordon_fresh-1.0-py3-none-any.whl: uploaded 2026-12-06T11:00:00Z, 1h ago, younger than install.min_release_age 7d (install.min_release_age)"])
        fresh.uploadTime = Self.now - 7 * 86400
        #expect(messages(gate, fresh).isEmpty, "exactly the age passes")
        fresh.uploadTime = Self.now + 600
        #expect(messages(gate, fresh).first?.contains("in the future") == true)
        fresh.uploadTime = nil
        #expect(messages(gate, fresh).first?.contains("the index gives no upload-time, so its age is unknown (install.min_release_age 7d)") == true)
        #expect(messages(Policy.Install(), fresh).isEmpty, "no age required: none looked at")
    }

    @Test func sdistsAndProvenance() {
        var sdist = Self.clean("cordon-hostile")
        sdist.kind = .sdist
        sdist.filename = "cordon_hostile-1.0.tar.gz"
        #expect(messages(sdist).isEmpty)
        var gate = Policy.Install()
        gate.sdists = .refuse
        #expect(messages(gate, sdist) == ["cordon-hostile 1.0 cordon_hostile-1.0.tar.gz: a source distribution, and install.sdists = \"refuse\" (no wheel of 1.0 was found) (install.sdists)"])
        gate.requireProvenance = ["requests"]
        var r = Self.clean("requests", "2.32.3")
        for (provenance, says) in [(PackageFacts.Provenance.absent, "the index has no provenance (PEP 740 attestation) for it"),
                                   (.invalid(reason: "signature\nmismatch"), "its provenance did not verify: signature?mismatch"),
                                   (.notChecked, "its provenance was not checked")] {
            r.provenance = provenance
            #expect(messages(gate, r) == ["requests 2.32.3 requests-2.32.3-py3-none-any.whl: \(says) (install.require_provenance)"])
        }
        r.provenance = .verified(publisher: "github.com/psf/requests")
        #expect(messages(gate, r).isEmpty)
        #expect(messages(gate, Self.clean()).isEmpty, "only named packages need it")
        gate.requireProvenance = ["*"]
        #expect(messages(gate, Self.clean()).count == 1)
    }

    @Test func vulnerabilitiesByTheirSeverity() {
        var f = Self.clean("requests", "2.30.0")
        f.advisories = [PackageFacts.Advisory(id: "PYSEC-2023-74", severity: "medium", fixed: "2.31.0"),
                        PackageFacts.Advisory(id: "GHSA-x", severity: "critical")]
        #expect(messages(f) == ["requests 2.30.0 requests-2.30.0-py3-none-any.whl: GHSA-x (critical), no fixed version (install.deny_vulnerability_severity)"])
        var gate = Policy.Install()
        gate.denyVulnerabilitySeverity = .medium
        #expect(messages(gate, f).first == "requests 2.30.0 requests-2.30.0-py3-none-any.whl: PYSEC-2023-74 (medium), fixed in 2.31.0 (install.deny_vulnerability_severity)")
        gate.denyVulnerabilitySeverity = .never
        #expect(messages(gate, f).isEmpty)
    }

    /// Advisories that could not be looked up are not "none found": under any vulnerability
    /// threshold they refuse, whatever the finding threshold says.
    @Test func uncheckedAdvisoriesRefuse() {
        var f = Self.clean("requests", "2.30.0")
        f.advisoriesUnchecked = "no vulnerability database"
        var gate = Policy.Install()
        gate.denyFindingSeverity = .never
        #expect(messages(gate, f) == ["requests 2.30.0 requests-2.30.0-py3-none-any.whl: its advisories were not checked (no vulnerability database), and install.deny_vulnerability_severity = \"high\" needs them checked (install.deny_vulnerability_severity)"])
        gate.denyVulnerabilitySeverity = .never
        #expect(messages(gate, f).isEmpty)
    }

    /// A wheel built from an sdist is not on the index: its index facts were decided on the
    /// sdist, its content is decided on it.
    @Test func aBuiltWheelIsJudgedOnItsContent() {
        var f = Self.clean("cordon-built")
        f.kind = .built
        f.indexSHA256 = nil
        f.uploadTime = nil
        var gate = Policy.Install()
        gate.minReleaseAgeSeconds = 86_400 * 7
        gate.requireHashes = true
        #expect(messages(gate, f).isEmpty)
        f.findings = [PackageFacts.Finding(rule: "pth-code", severity: "high", message: "import line runs os.system", file: "x.pth")]
        #expect(messages(gate, f).count == 1)
    }

    /// Text from a package reaches a terminal only with its controls, C1 controls included, and
    /// its bidi and zero-width characters shown as "?".
    @Test func shownTextHasNoControls() {
        #expect(SimpleIndex.shown("a\u{1b}[31mb\u{9b}31mc\u{202e}d\u{2066}e\u{200b}f\u{feff}g\u{85}h") == "a?[31mb?31mc?d?e?f?g?h")
        #expect(SimpleIndex.shown("café ok") == "café ok")
        #expect(SimpleIndex.shown("a\u{ad}b\u{e0041}c\u{fe0f}d\u{180e}e") == "a?b?c?d?e", "soft hyphen, tag, variation selector, Mongolian vowel separator")
    }

    @Test func findingsAndTyposquats() {
        var f = Self.clean("cordon-pth")
        f.findings = [PackageFacts.Finding(rule: "pth-code", severity: "high", message: "import line runs os.system", file: "cordon_pth.pth"),
                      PackageFacts.Finding(rule: "shady-link", severity: "medium", message: "a link to a paste site")]
        #expect(messages(f) == ["cordon-pth 1.0 cordon_pth-1.0-py3-none-any.whl: pth-code (high) in cordon_pth.pth: import line runs os.system (install.deny_finding_severity)"])
        var gate = Policy.Install()
        gate.denyFindingSeverity = .never
        #expect(messages(gate, f).isEmpty)
        var squat = Self.clean("reqeusts")
        squat.typosquatOf = "requests"
        #expect(messages(squat) == ["reqeusts 1.0 reqeusts-1.0-py3-none-any.whl: reqeusts is one edit from the popular requests (install.typosquats)"])
        gate.typosquats = .warn
        let warned = InstallGate.decide(gate, squat, now: Self.now)
        #expect(warned.count == 1 && !warned[0].refuses && warned[0].description.contains("warning: reqeusts is one edit"))
    }

    /// `install.accept`: a judgement accepted for one package (and release, finding and file, or
    /// advisory) lets that file through with a warning naming the reason; anything the entry does
    /// not match is still refused.
    @Test func acceptedJudgementsPassAsWarningsAndNothingElseDoes() {
        var gate = Policy.Install()
        gate.accept = [
            Policy.Acceptance(rule: .typosquats, package: "httpx2", reason: "the HTTPX project's 2.x line"),
            Policy.Acceptance(rule: .finding, package: "httpx2", version: "2.17.0", finding: "credential-access", file: "httpx2/_auth.py", reason: "NetRCAuth reads ~/.netrc"),
            Policy.Acceptance(rule: .vulnerability, package: "jinja2", version: "3.1.2", advisory: "GHSA-1", reason: "no untrusted templates"),
        ]
        var f = Self.clean("httpx2", "2.17.0")
        f.typosquatOf = "httpx"
        f.findings = [PackageFacts.Finding(rule: "credential-access", severity: "critical", message: "reads credentials", file: "httpx2/_auth.py")]
        let verdicts = InstallGate.decide(gate, f, now: Self.now)
        #expect(verdicts.count == 2 && verdicts.allSatisfy { !$0.refuses }, "\(verdicts)")
        #expect(verdicts.map(\.description) == [
            "httpx2 2.17.0 httpx2-2.17.0-py3-none-any.whl: warning: httpx2 is one edit from the popular httpx; accepted by install.accept: the HTTPX project's 2.x line (install.typosquats)",
            "httpx2 2.17.0 httpx2-2.17.0-py3-none-any.whl: warning: credential-access (critical) in httpx2/_auth.py: reads credentials; accepted by install.accept: NetRCAuth reads ~/.netrc (install.deny_finding_severity)",
        ])
        // Another release, another file, another finding, another package: refused as before.
        var next = f
        next.version = "2.18.0"
        next.filename = "httpx2-2.18.0-py3-none-any.whl"
        next.metadataVersion = "2.18.0"
        #expect(InstallGate.decide(gate, next, now: Self.now).filter(\.refuses).map(\.rule) == [.finding])
        var elsewhere = f
        elsewhere.findings[0].file = "httpx2/_client.py"
        #expect(InstallGate.decide(gate, elsewhere, now: Self.now).filter(\.refuses).map(\.rule) == [.finding])
        var otherFinding = f
        otherFinding.findings[0].rule = "download-exec"
        #expect(InstallGate.decide(gate, otherFinding, now: Self.now).filter(\.refuses).map(\.rule) == [.finding])
        var squat = Self.clean("httpcore2", "2.17.0")
        squat.typosquatOf = "httpcore"
        #expect(InstallGate.decide(gate, squat, now: Self.now).filter(\.refuses).map(\.rule) == [.typosquats])
        // An advisory by its id, for the release named.
        var jinja = Self.clean("jinja2", "3.1.2")
        jinja.advisories = [PackageFacts.Advisory(id: "GHSA-1", severity: "high"), PackageFacts.Advisory(id: "GHSA-2", severity: "critical")]
        let judged = InstallGate.decide(gate, jinja, now: Self.now)
        #expect(judged.map(\.refuses) == [false, true] && judged[0].description.contains("accepted by install.accept: no untrusted templates"), "\(judged)")
        // A check that found more than it listed (the 50 most severe): what was not listed could
        // not be judged, so none of the file's findings is accepted.
        var crowded = f
        crowded.findingsOmitted = 1
        let crowdedVerdicts = InstallGate.decide(gate, crowded, now: Self.now)
        #expect(crowdedVerdicts.filter(\.refuses).map(\.rule) == [.finding]
                && crowdedVerdicts.contains { $0.evidence.contains("not accepted by install.accept: the check found 1 more than it listed") }, "\(crowdedVerdicts)")
        // A long reason is kept whole.
        var long = gate
        long.accept[0].reason = String(repeating: "r", count: 299) + "!"
        #expect(InstallGate.decide(long, f, now: Self.now).first?.evidence.hasSuffix(String(repeating: "r", count: 200) + "!") == true)
        // Nothing but those rules is accepted: the same package's hash is checked as ever.
        var tampered = f
        tampered.indexSHA256 = Self.other
        #expect(InstallGate.decide(gate, tampered, now: Self.now).filter(\.refuses).map(\.rule) == [.hash])
    }

    /// What the caller hands in is not taken on trust: a name in any spelling, a missing index
    /// hash, a severity the gate does not know, a file name or METADATA that says otherwise.
    @Test func theFactsAreCheckedNotTrusted() {
        var gate = Policy.Install()
        gate.deny = ["pycrypto"]
        var spelled = Self.clean("pycrypto", "2.6.1")
        spelled.name = "PyCrypto"
        #expect(messages(gate, spelled).first?.contains("pycrypto is listed in install.deny") == true)
        var unhashed = Self.clean()
        unhashed.indexSHA256 = nil
        #expect(messages(unhashed) == ["cordon-clean 1.0 cordon_clean-1.0-py3-none-any.whl: the index gives no sha256 for it, so the bytes cannot be checked against it (hash check)"])
        var ungraded = Self.clean()
        ungraded.advisories = [PackageFacts.Advisory(id: "PYSEC-X", severity: "")]
        ungraded.findings = [PackageFacts.Finding(rule: "r", severity: "HIGH", message: "m")]
        #expect(messages(ungraded) == ["cordon-clean 1.0 cordon_clean-1.0-py3-none-any.whl: PYSEC-X (high), no fixed version (install.deny_vulnerability_severity)",
                                       "cordon-clean 1.0 cordon_clean-1.0-py3-none-any.whl: r (high): m (install.deny_finding_severity)"])
        var unread = Self.clean()
        unread.metadataName = nil
        #expect(messages(unread).first?.contains("no name and version were read from its METADATA or PKG-INFO (identity check)") == true)
        var renamed = Self.clean()
        renamed.filename = "other-1.0-py3-none-any.whl"
        #expect(messages(renamed).first?.contains("its file name says it is other 1.0, not cordon-clean 1.0 (identity check)") == true)
        var sdistNamedWheel = Self.clean()
        sdistNamedWheel.kind = .sdist
        #expect(messages(sdistNamedWheel).first?.contains("its file name says it is a wheel, not an sdist") == true)
    }

    @Test func everyRuleIsReportedNotOnlyTheFirst() {
        var gate = Policy.Install()
        gate.deny = ["cordon-bad"]
        gate.minReleaseAgeSeconds = 86400
        var f = Self.clean("cordon-bad")
        f.indexSHA256 = Self.other
        f.uploadTime = Self.now - 60
        f.yanked = "oops"
        f.advisories = [PackageFacts.Advisory(id: "PYSEC-1", severity: "high")]
        #expect(Set(InstallGate.decide(gate, f, now: Self.now).map(\.rule)) == [.deny, .hash, .yanked, .minReleaseAge, .vulnerability])
    }
}

extension String {
    var replacingDashes: String { String(map { $0 == "-" ? "_" : $0 }) }
}
