import CordonPolicy
import CordonScan

/// Everything known about one file of a resolved set when the gate decides on it: what the
/// request asked for, what the index said, what the bytes hash to, what the scanner found, and
/// what provenance check there was. Gathered by cordond from its workers; decided on here.
public struct PackageFacts: Sendable, Equatable {
    /// PEP 503-normalized name and the version the resolver chose.
    public var name: String
    public var version: String
    public var filename: String
    public var kind: Kind
    /// SHA-256 of the bytes cordond holds (hex), computed as it copied them.
    public var sha256: String
    /// The index's sha256 for the file (nil: it gave none).
    public var indexSHA256: String?
    /// The sha256 digests the request (a `--hash` line, a lock) gives for this package; empty: none.
    public var requestedSHA256: [String] = []
    /// The request pins exactly this version (`==V`, or a lock).
    public var pinned = false
    /// PEP 700 `upload-time`, seconds since the epoch.
    public var uploadTime: Double?
    /// nil: not yanked; otherwise the index's reason ("" when it gave none).
    public var yanked: String?
    public var provenance: Provenance = .notChecked
    /// What the file's METADATA says it is (nil: not read, as for an sdist before its build).
    public var metadataName: String?
    public var metadataVersion: String?
    public var advisories: [Advisory] = []
    /// Why advisories were not looked up for it (no database, an unreadable one), or nil.
    public var advisoriesUnchecked: String?
    /// The scanner's findings other than `typosquat`.
    public var findings: [Finding] = []
    /// How many more findings the check counted than it listed (it lists the most severe 50):
    /// with any left out, no finding of the file can be accepted (one not seen might not be).
    public var findingsOmitted = 0
    /// The popular name this one is one edit from (the scanner's `typosquat` rule), if any.
    public var typosquatOf: String?

    public enum Kind: String, Sendable, Equatable { case wheel, sdist, built = "built from sdist" }

    public enum Provenance: Sendable, Equatable {
        /// Verified: the publisher's identity (`github.com/psf/requests`, …).
        case verified(publisher: String)
        /// The index has none for this file.
        case absent
        /// There was one, and it did not verify.
        case invalid(reason: String)
        /// Not looked at (no rule needed it).
        case notChecked
    }

    public struct Advisory: Sendable, Equatable {
        public var id: String
        /// low … critical (an advisory without a grade counts as high, as the scanner has it).
        public var severity: String
        /// The lowest version that fixes it, if the advisory names one.
        public var fixed: String?
        public init(id: String, severity: String, fixed: String? = nil) {
            self.id = id
            self.severity = severity
            self.fixed = fixed
        }
    }

    public struct Finding: Sendable, Equatable {
        public var rule: String
        public var severity: String
        public var message: String
        public var file: String?
        public init(rule: String, severity: String, message: String, file: String? = nil) {
            self.rule = rule
            self.severity = severity
            self.message = message
            self.file = file
        }
    }

    public init(name: String, version: String, filename: String, kind: Kind, sha256: String) {
        self.name = name
        self.version = version
        self.filename = filename
        self.kind = kind
        self.sha256 = sha256
    }
}

/// One rule's word on one file: a refusal, or a warning that lets it through.
public struct Verdict: Sendable, Equatable, CustomStringConvertible {
    public enum Rule: String, Sendable, Equatable, CaseIterable {
        case deny, allow, hash, requireHashes = "require_hashes", identity, yanked
        case minReleaseAge = "min_release_age", sdists, provenance = "require_provenance"
        case vulnerability = "deny_vulnerability_severity", finding = "deny_finding_severity", typosquats
        /// Refused because another file of the set failed its hash: a set is installed whole or not at all.
        case set
        /// An sdist whose build, in the build sandbox, failed or gave no usable wheel.
        case build
        /// A wheel that provides a module of the target Python's standard library: a set is
        /// imported from PYTHONPATH, ahead of the standard library.
        case standardLibrary = "standard_library"

        /// The policy key that decides it; for the checks no policy turns off, what they check.
        public var key: String {
            switch self {
            case .hash: return "hash check"
            case .identity: return "identity check"
            case .set: return "whole set"
            case .build: return "sdist build"
            case .standardLibrary: return "standard library check"
            default: return "install.\(rawValue)"
            }
        }
    }

    public var package: String
    public var version: String
    public var filename: String
    public var rule: Rule
    public var refuses: Bool
    /// What was seen, in words: the message's second half.
    public var evidence: String

    public init(package: String, version: String, filename: String, rule: Rule, refuses: Bool, evidence: String) {
        self.package = package
        self.version = version
        self.filename = filename
        self.rule = rule
        self.refuses = refuses
        self.evidence = evidence
    }

    /// `package version file: evidence (key)`, or for a warning `…: warning: evidence (key)`.
    public var description: String {
        "\(package) \(version) \(filename): \(refuses ? "" : "warning: ")\(evidence) (\(rule.key))"
    }
}

/// The install gate: a pure function from a policy's `[install]` table and the facts of each
/// file to verdicts. A set is installed only when no verdict refuses; every file's verdicts are
/// all reported, not only the first, so a record says everything that was wrong.
public enum InstallGate {
    /// The verdicts on one file. `now` is seconds since the epoch.
    public static func decide(_ gate: Policy.Install, _ facts: PackageFacts, now: Double) -> [Verdict] {
        var out: [Verdict] = []
        // Names compared as PEP 503 has them, whatever spelling the caller passed.
        var f = facts
        f.name = normalizePyPIName(facts.name)
        func verdict(_ rule: Verdict.Rule, _ evidence: String, refuses: Bool = true) {
            out.append(Verdict(package: f.name, version: f.version, filename: f.filename, rule: rule, refuses: refuses, evidence: evidence))
        }
        if gate.deny.contains(f.name) { verdict(.deny, "\(f.name) is listed in install.deny") }
        if !gate.allow.isEmpty && !gate.allow.contains(f.name) { verdict(.allow, "\(f.name) is not in install.allow") }

        // A wheel built from an sdist was not on the index: the index's facts (hash, age, yank,
        // provenance) were decided on the sdist it was built from; its content is decided here.
        let indexed = f.kind != .built
        if indexed {
            if let index = f.indexSHA256 {
                if index.lowercased() != f.sha256.lowercased() { verdict(.hash, "the bytes hash to sha256:\(f.sha256), the index says sha256:\(index)") }
            } else {
                verdict(.hash, "the index gives no sha256 for it, so the bytes cannot be checked against it")
            }
            if !f.requestedSHA256.isEmpty && !f.requestedSHA256.contains(where: { $0.lowercased() == f.sha256.lowercased() }) {
                verdict(.hash, "the bytes hash to sha256:\(f.sha256), which is not among the request's \(f.requestedSHA256.count) hash\(f.requestedSHA256.count == 1 ? "" : "es") for it")
            }
            if gate.requireHashes && f.requestedSHA256.isEmpty {
                verdict(.requireHashes, "the request gives no hash for it (install.require_hashes = true: pin it with --hash=sha256:\(f.sha256) or a lock)")
            }
        }
        // What the file is: its name as the index lists it, and its own METADATA or PKG-INFO,
        // must both say it is what was resolved.
        switch DistributionFile.parse(f.filename, project: f.name) {
        case .failure(let e): verdict(.identity, "its file name does not parse: \(e.reason)")
        case .success(let named):
            if named.normalizedName != f.name || !sameVersion(named.version, f.version) {
                verdict(.identity, "its file name says it is \(named.normalizedName) \(named.version), not \(f.name) \(f.version)")
            }
            if named.isSdist != (f.kind == .sdist) {
                verdict(.identity, "its file name says it is \(named.isSdist ? "an sdist" : "a wheel"), not \(f.kind == .sdist ? "an sdist" : "a wheel")")
            }
        }
        if let name = f.metadataName, normalizePyPIName(name) != f.name {
            verdict(.identity, "its METADATA says it is \(name) \(f.metadataVersion ?? "?"), not \(f.name)")
        } else if let version = f.metadataVersion, !sameVersion(version, f.version) {
            verdict(.identity, "its METADATA says version \(version), not \(f.version)")
        } else if f.metadataName == nil || f.metadataVersion == nil {
            verdict(.identity, "no name and version were read from its METADATA or PKG-INFO")
        }
        if indexed {
            if let reason = f.yanked {
                let why = reason.isEmpty ? "yanked (no reason given)" : "yanked: \"\(SimpleIndex.shown(reason))\""
                switch (gate.yanked, f.pinned) {
                case (.allowPinned, true): verdict(.yanked, "\(why); installed because the request pins it", refuses: false)
                case (.allowPinned, false): verdict(.yanked, "\(why); install.yanked = \"allow-pinned\" installs it only when the request pins \(f.version) exactly")
                case (.refuse, _): verdict(.yanked, why)
                }
            }
            if gate.minReleaseAgeSeconds > 0 {
                let limit = Units.formatDuration(gate.minReleaseAgeSeconds)
                if let uploaded = f.uploadTime {
                    let age = now - uploaded
                    if age < gate.minReleaseAgeSeconds {
                        verdict(.minReleaseAge, "uploaded \(Timestamp.format(uploaded)), \(ago(age)), younger than install.min_release_age \(limit)")
                    }
                } else {
                    verdict(.minReleaseAge, "the index gives no upload-time, so its age is unknown (install.min_release_age \(limit))")
                }
            }
            if f.kind == .sdist && gate.sdists == .refuse {
                verdict(.sdists, "a source distribution, and install.sdists = \"refuse\" (no wheel of \(f.version) was found)")
            }
            if gate.requiresProvenance(f.name) {
                switch f.provenance {
                case .verified: break
                case .absent: verdict(.provenance, "the index has no provenance (PEP 740 attestation) for it")
                case .invalid(let reason): verdict(.provenance, "its provenance did not verify: \(SimpleIndex.shown(reason))")
                case .notChecked: verdict(.provenance, "its provenance was not checked")
                }
            }
        }
        if let reason = f.advisoriesUnchecked, gate.denyVulnerabilitySeverity != .never {
            verdict(.vulnerability, "its advisories were not checked (\(SimpleIndex.shown(reason))), and install.deny_vulnerability_severity = \"\(gate.denyVulnerabilitySeverity.rawValue)\" needs them checked")
        }
        /// A judgement the policy's author accepted for this package (`install.accept`): let
        /// through as a warning that says so and why.
        func judged(_ rule: Verdict.Rule, _ evidence: String, refuses: Bool, finding: PackageFacts.Finding? = nil, advisory: String? = nil) {
            let kind: Policy.Acceptance.Rule = rule == .typosquats ? .typosquats : rule == .finding ? .finding : .vulnerability
            let accepted = gate.accept.first { a in
                a.rule == kind && a.package == f.name && (a.version.map { sameVersion($0, f.version) } ?? true)
                    && (kind != .finding || (a.finding == finding?.rule && (a.file == nil || a.file == finding?.file)))
                    && (kind != .vulnerability || a.advisory == advisory)
            }
            if accepted != nil, kind == .finding, f.findingsOmitted > 0 {
                verdict(rule, "\(evidence); not accepted by install.accept: the check found \(f.findingsOmitted) more than it listed, which could not be judged", refuses: refuses)
            } else if let accepted {
                verdict(rule, "\(evidence); accepted by install.accept: \(SimpleIndex.shown(accepted.reason, limit: Policy.Acceptance.maxReason))", refuses: false)
            } else {
                verdict(rule, evidence, refuses: refuses)
            }
        }
        for advisory in f.advisories where gate.denyVulnerabilitySeverity.refuses(graded(advisory.severity)) {
            judged(.vulnerability, "\(advisory.id) (\(graded(advisory.severity)))\(advisory.fixed.map { ", fixed in \($0)" } ?? ", no fixed version")", refuses: true,
                   advisory: advisory.id)
        }
        if let popular = f.typosquatOf {
            judged(.typosquats, "\(f.name) is one edit from the popular \(popular)", refuses: gate.typosquats == .refuse)
        }
        for finding in f.findings where gate.denyFindingSeverity.refuses(graded(finding.severity)) {
            judged(.finding, "\(finding.rule) (\(graded(finding.severity)))\(finding.file.map { " in \(SimpleIndex.shown($0, limit: Policy.Acceptance.maxFile))" } ?? ""): \(SimpleIndex.shown(finding.message))",
                   refuses: true, finding: finding)
        }
        return out
    }

    /// The verdicts on a whole set: each file's, and when any file's bytes did not match a hash,
    /// a refusal of every other file too, naming it (a set with one substituted file is not the
    /// set that was asked for).
    public static func decide(_ gate: Policy.Install, set files: [PackageFacts], now: Double) -> [Verdict] {
        var out = files.flatMap { decide(gate, $0, now: now) }
        let mismatched = Set(out.filter { $0.rule == .hash }.map(\.filename))
        if let first = mismatched.sorted().first {
            for f in files where !mismatched.contains(f.filename) {
                out.append(Verdict(package: f.name, version: f.version, filename: f.filename, rule: .set, refuses: true,
                                   evidence: "refused with its set: \(first)\(mismatched.count > 1 ? " and \(mismatched.count - 1) more" : "") did not match \(mismatched.count > 1 ? "their" : "its") hash"))
            }
        }
        return out
    }

    /// A severity as the gate counts it: low … critical, and anything else (no grade, a
    /// spelling it does not know) as high, as the scanner counts an ungraded advisory.
    static func graded(_ severity: String) -> String {
        let s = severity.lowercased()
        return ["low", "medium", "high", "critical"].contains(s) ? s : "high"
    }

    /// Whether two versions are the same release (PEP 440: `2.31` is `2.31.0`).
    public static func sameVersion(_ a: String, _ b: String) -> Bool {
        if a == b { return true }
        guard let x = PEP440Version(a), let y = PEP440Version(b) else { return false }
        return x == y
    }

    /// "3h ago", "2d ago", "in the future".
    static func ago(_ seconds: Double) -> String {
        if seconds < 0 { return "in the future" }
        if seconds < 120 { return "\(Int(seconds))s ago" }
        if seconds < 3600 { return "\(Int(seconds / 60))m ago" }
        if seconds < 172_800 { return "\(Int(seconds / 3600))h ago" }
        return "\(Int(seconds / 86400))d ago"
    }
}
