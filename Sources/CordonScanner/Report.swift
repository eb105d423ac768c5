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
    public struct Vulnerability: Codable, Sendable, Equatable {
        public var id: String
    }

    public struct Package: Codable, Sendable {
        public var ecosystem: String
        public var name: String
        public var version: String
        public var source: String
        public var vulnerabilities: [Vulnerability]
        public var findings: [Finding]

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
    /// Advisories count as `high` for --fail-on: the database does not grade them yet.
    public static let vulnerabilitySeverity = Severity.high

    /// The most severe thing found, or nil when the report is clean.
    public var worstSeverity: Severity? {
        var worst: Severity? = nil
        for package in packages {
            if !package.vulnerabilities.isEmpty { worst = max(worst ?? .low, Self.vulnerabilitySeverity) }
            for finding in package.findings { worst = max(worst ?? .low, finding.severity) }
        }
        return worst
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
                let ids = try database?.advisories(ecosystem: found.ecosystem, name: found.name, version: found.version) ?? []
                packages.append(ScanReport.Package(ecosystem: found.ecosystem.rawValue, name: found.name, version: found.version,
                                                   source: found.source, vulnerabilities: ids.map { .init(id: $0) }, findings: []))
            }
        }
        if archive != nil { return packages }
        for found in try Inventory.packages(at: target) {
            let ids = try database?.advisories(ecosystem: found.ecosystem, name: found.name, version: found.version) ?? []
            let subject = PackageUnderScan(ecosystem: found.ecosystem == .npm ? .npm : .pypi, name: found.name,
                                           files: found.files.map { PackageFile(path: $0.path, bytes: $0.bytes) },
                                           pureWheel: found.pureWheel)
            packages.append(ScanReport.Package(ecosystem: found.ecosystem.rawValue, name: found.name, version: found.version,
                                               source: found.source, vulnerabilities: ids.map { .init(id: $0) },
                                               findings: Heuristics.scan(subject)))
        }
        return packages
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
            let verdict = p.vulnerabilities.isEmpty && p.findings.isEmpty ? "clean" : "\(p.vulnerabilities.count) advisories, \(p.findings.count) findings"
            lines.append("\(p.ecosystem) \(p.name) \(p.version)  (\(p.source))  \(verdict)")
            for v in p.vulnerabilities { lines.append("  advisory  \(v.id)") }
            for f in p.findings {
                let severity = f.severity.rawValue + String(repeating: " ", count: max(0, 8 - f.severity.rawValue.count))
                lines.append("  \(severity)  \(f.rule)  \(f.file):\(f.startLine)  \(f.message)")
                if !f.evidence.isEmpty { lines.append("            \(f.evidence)") }
            }
        }
        lines.append("\(report.packages.count) packages scanned in \((report.seconds * 1000).rounded() / 1000) s")
        return lines.joined(separator: "\n")
    }
}
