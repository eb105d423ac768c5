import CordonArchive
import CordonHeuristics
import CordonScan
import CordonSystem
import CordonVulnDB
import Dispatch
import FoundationEssentials
import Synchronization

/// The result of `cordon scan`: packages found, the advisories that affect them, the
/// heuristic findings in their files.
public struct ScanReport: Codable, Sendable {
    /// An advisory with its summary, severity, affected ranges and fixed versions.
    public typealias Vulnerability = VulnDatabase.Advisory

    public struct Package: Codable, Sendable {
        public var ecosystem: String
        public var name: String
        public var version: String
        public var source: String
        public var vulnerabilities: [Vulnerability]
        public var findings: [Finding]
        /// Whether the package was checked against the advisories (nil for an image's own entry).
        public var checked: Bool?
        /// Why it was not: "no advisories for Debian in the database", "no vulnerability database", …
        public var notChecked: String?
        /// The advisories' package when it is another (a Debian binary package's source package).
        public var advisoryPackage: String?
        /// The lowest version that every advisory found says is fixed: what to upgrade to.
        public var upgradeTo: String?

        /// pkg:pypi/name@version (PEP 503 name), pkg:npm/name@version (scope encoded).
        public var purl: String {
            switch ecosystem {
            case "PyPI": return "pkg:pypi/\(normalizePyPIName(name))@\(version)"
            case "Debian": return "pkg:deb/debian/\(name)@\(version)"
            case "Alpine": return "pkg:apk/alpine/\(name)@\(version)"
            case "image": return "pkg:oci/\(name.split(separator: "/").last ?? "image")"
            default: return "pkg:npm/\(name.split(separator: "@", omittingEmptySubsequences: false).joined(separator: "%40"))@\(version)"
            }
        }
    }

    public var targets: [String]
    public var packages: [Package]
    public var scannedAt: String
    public var seconds: Double
    /// What an advisory counts as for --fail-on when its record grades it nowhere (no CVSS v3
    /// vector, no severity field): high, so that an ungraded advisory is not taken lightly.
    public static let vulnerabilitySeverity = Severity.high

    public static func severity(of v: Vulnerability) -> Severity {
        v.severity.flatMap { Severity(rawValue: $0) } ?? vulnerabilitySeverity
    }

    /// The most severe thing found, or nil when the report is clean.
    public var worstSeverity: Severity? {
        var worst: Severity? = nil
        for package in packages {
            for v in package.vulnerabilities { worst = max(worst ?? .low, Self.severity(of: v)) }
            for finding in package.findings { worst = max(worst ?? .low, finding.severity) }
        }
        return worst
    }

    /// Packages not checked against advisories, by reason, with how many each.
    public var notChecked: [(reason: String, count: Int)] {
        var counts: [String: Int] = [:]
        var order: [String] = []
        for p in packages { if let r = p.notChecked { if counts[r] == nil { order.append(r) }; counts[r, default: 0] += 1 } }
        return order.map { ($0, counts[$0]!) }
    }
}

/// Runs inventory, vulnerability matching and heuristics over scan targets.
public enum Scanner {
    /// `progress` is called as each target starts, with (index, count, target). Targets are
    /// scanned on all cores; the report keeps their order.
    /// `images`: which images of an archive that holds several (an OCI index) to scan.
    public static func scan(_ targets: [String], database: VulnDatabase?, images: ImageSelection = .all,
                            progress: @escaping (Int, Int, String) -> Void = { _, _, _ in }) throws -> ScanReport {
        let start = MonotonicClock.now
        let results = ResultSlots(count: targets.count)
        let reportProgress = ProgressRelay(progress)
        DispatchQueue.concurrentPerform(iterations: targets.count) { index in
            reportProgress.call(index, targets.count, targets[index])
            results.set(index, Result { try scanOne(targets[index], database: database, images: images) })
        }
        var packages: [ScanReport.Package] = []
        for result in results.values { packages += try result.get() }
        return ScanReport(targets: targets, packages: packages, scannedAt: UTCTime.now(), seconds: MonotonicClock.now - start)
    }

    static func scanOne(_ target: String, database: VulnDatabase?, images: ImageSelection = .all) throws -> [ScanReport.Package] {
        var packages: [ScanReport.Package] = []
        let archive = try ContainerImage.open(target, limits: ArchiveLimits(), selection: images)
        for image in archive ?? [] {
            // Each image is one entry (its own findings), "target[linux/arm64]" when the archive
            // holds several; its packages follow.
            let name = image.label.map { "\(target)[\($0)]" } ?? target
            packages.append(ScanReport.Package(ecosystem: "image", name: name, version: "\(image.layerDigests.count) layers",
                                               source: name, vulnerabilities: [], findings: image.findings()))
            for found in image.inventory(source: name) {
                packages.append(try check(found, database: database, findings: []))
            }
        }
        if archive != nil { return packages }
        for found in try Inventory.packages(at: target) {
            // The heuristics (typosquats of PyPI and npm names among them) are for PyPI and npm
            // packages; a root file system's dpkg and apk packages get none.
            guard found.ecosystem == .pypi || found.ecosystem == .npm else {
                packages.append(try check(found, database: database, findings: []))
                continue
            }
            let subject = PackageUnderScan(ecosystem: found.ecosystem == .npm ? .npm : .pypi, name: found.name,
                                           files: found.files.map { PackageFile(path: $0.path, bytes: $0.bytes) },
                                           pureWheel: found.pureWheel)
            packages.append(try check(found, database: database, findings: Heuristics.scan(subject)))
        }
        return packages
    }

    /// One package against the database: its advisories, or why it was not checked.
    static func check(_ found: ScannedPackage, database: VulnDatabase?, findings: [Finding]) throws -> ScanReport.Package {
        let name = found.advisoryName ?? found.name
        let version = found.advisoryVersion ?? found.version
        var package = ScanReport.Package(ecosystem: found.ecosystem.rawValue, name: found.name, version: found.version,
                                         source: found.source, vulnerabilities: [], findings: findings, checked: false,
                                         advisoryPackage: name == found.name ? nil : name)
        if let problem = found.problem {
            package.notChecked = problem
        } else if let database {
            if let reason = database.notCheckedReason(ecosystem: found.ecosystem, version: version) {
                package.notChecked = reason
            } else {
                package.vulnerabilities = try database.match(ecosystem: found.ecosystem, name: name, version: version)
                package.checked = true
                package.upgradeTo = upgrade(package.vulnerabilities, ecosystem: found.ecosystem)
            }
        } else {
            package.notChecked = "no vulnerability database"
        }
        return package
    }

    /// The highest of the advisories' `fixedIn` versions, when every advisory has one: the
    /// version to upgrade to (at least). Nil when one of them has no fix.
    static func upgrade(_ advisories: [ScanReport.Vulnerability], ecosystem: Ecosystem) -> String? {
        var best: String?
        for a in advisories {
            guard let fix = a.fixedIn else { return nil }
            if let b = best, compareVersions(fix, b, ecosystem: ecosystem) != .orderedDescending { continue }
            best = fix
        }
        return best
    }
}

/// Per-target results written from worker threads, one slot each.
final class ResultSlots: Sendable {
    private let slots: Mutex<[Result<[ScanReport.Package], Error>?]>
    init(count: Int) { slots = Mutex(Array(repeating: nil, count: count)) }
    func set(_ i: Int, _ r: Result<[ScanReport.Package], Error>) { slots.withLock { $0[i] = r } }
    var values: [Result<[ScanReport.Package], Error>] { slots.withLock { $0.compactMap { $0 } } }
}

/// Serialises progress callbacks from worker threads.
final class ProgressRelay: @unchecked Sendable {
    private let lock = Mutex(())
    private let body: (Int, Int, String) -> Void
    init(_ body: @escaping (Int, Int, String) -> Void) { self.body = body }
    func call(_ i: Int, _ n: Int, _ s: String) { lock.withLock { _ in body(i, n, s) } }
}

/// The report's renderings.
public enum ReportFormat: String, CaseIterable, Sendable {
    case text, json, sarif, cyclonedx

    public func render(_ report: ScanReport, toolVersion: String) throws -> String {
        switch self {
        case .text: return Self.text(report)
        case .json: return try Self.encode(report)
        case .sarif: return try Self.encode(SARIF(report, toolVersion: toolVersion))
        case .cyclonedx: return try Self.encode(CycloneDX(report, toolVersion: toolVersion))
        }
    }

    static func encode<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    static func text(_ report: ScanReport) -> String {
        var lines: [String] = []
        for p in report.packages {
            let counts = "\(p.vulnerabilities.count) \(p.vulnerabilities.count == 1 ? "advisory" : "advisories"), \(p.findings.count) \(p.findings.count == 1 ? "finding" : "findings")"
            let verdict: String
            if let reason = p.notChecked {
                verdict = (p.findings.isEmpty ? "" : "\(p.findings.count) findings; ") + "not checked: \(reason)"
            } else {
                verdict = p.vulnerabilities.isEmpty && p.findings.isEmpty ? "clean" : counts
            }
            let version = p.version.isEmpty ? "(no version)" : p.version
            let via = p.advisoryPackage.map { " [source \($0)]" } ?? ""
            lines.append("\(p.ecosystem) \(p.name) \(version)\(via)  (\(p.source))  \(verdict)")
            for v in p.vulnerabilities {
                let aliases = v.aliases.isEmpty ? "" : " (\(v.aliases.joined(separator: ", ")))"
                let grade = v.severity.map { s in v.score.map { "\(s) \($0)" } ?? s } ?? "severity unknown"
                lines.append("  advisory  \(v.id)\(aliases)  \(grade)")
                if let summary = v.summary { lines.append("            \(summary)") }
                var range = "affected: \(v.affected.isEmpty ? "?" : v.affected.joined(separator: "; "))"
                range += v.fixedIn.map { "  fixed in: \($0)" } ?? (v.fixed.isEmpty ? "  no fixed version" : "  fixed in: \(v.fixed.joined(separator: ", ")) (none above \(p.version) in its range)")
                lines.append("            \(range)")
                if let url = v.url { lines.append("            \(url)") }
            }
            if let to = p.upgradeTo, !p.vulnerabilities.isEmpty {
                lines.append("  upgrade to \(to) or later: fixes \(p.vulnerabilities.count == 1 ? "the advisory" : "all \(p.vulnerabilities.count) advisories")")
            }
            for f in p.findings {
                let severity = f.severity.rawValue + String(repeating: " ", count: max(0, 8 - f.severity.rawValue.count))
                lines.append("  \(severity)  \(f.rule)  \(f.file):\(f.startLine)  \(f.message)")
                if !f.evidence.isEmpty { lines.append("            \(f.evidence)") }
            }
        }
        let packages = report.packages.filter { $0.checked != nil }
        var summary = "\(packages.count) packages scanned in \((report.seconds * 1000).rounded() / 1000) s"
        let notChecked = report.notChecked
        if !notChecked.isEmpty {
            let checked = packages.filter { $0.checked == true }.count
            summary += "; \(checked) checked against advisories, "
                + notChecked.map { "\($0.count) not checked: \($0.reason)" }.joined(separator: ", ")
        }
        lines.append(summary)
        return lines.joined(separator: "\n")
    }
}
