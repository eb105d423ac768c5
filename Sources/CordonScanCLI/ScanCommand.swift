import ArgumentParser
import CordonCommandLine
import CordonConfig
import CordonHeuristics
import CordonRPC
import CordonScanner
import CordonSystem
import CordonVulnDB
#if canImport(Glibc)
import Glibc
#endif

/// `cordon scan`: packages and directories — inventory, known vulnerabilities (from the offline
/// database), malicious-code heuristics.
struct ScanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "Scan Python wheels and sdists, npm tarballs, container images (OCI layouts, docker save tars) and directories for known vulnerabilities and malicious code.",
        discussion: """
        Archives are read under hard limits and never extracted. Advisories come from the database \
        `cordon db import` fills, read-only (any user who can read it can scan); without one, only \
        the heuristics run (a warning says so). A package whose ecosystem has no advisories in the \
        database is reported "not checked", never clean. Exit \
        status: 0, or 1 when something at or above --fail-on was found, 2 when a target could not \
        be scanned.
        """
    )

    @Option(name: .long, help: "text, json, sarif or cyclonedx.")
    var format: String = "text"

    @Option(name: .customLong("fail-on"), help: "Exit 1 when anything at or above this severity is found: low, medium, high, critical.")
    var failOn: String?

    @Option(name: .long, help: "Of an OCI image index, scan only the images for this platform: os/arch[/variant], e.g. linux/arm64 (default: every image in it).")
    var platform: String?

    @Option(name: .long, help: "Of an OCI image index, scan only the image with this ref name (org.opencontainers.image.ref.name).")
    var ref: String?

    @OptionGroup var locations: LocationOptions

    @Argument(help: "Files or directories to scan.")
    var paths: [String]

    func validate() throws {
        if ReportFormat(rawValue: format) == nil {
            throw ValidationError("--format: unknown format \"\(format)\" (expected text, json, sarif or cyclonedx)")
        }
        if let platform, ImageSelection.Platform(parsing: platform) == nil {
            throw ValidationError("--platform: \"\(platform)\" is not os/arch or os/arch/variant (e.g. linux/amd64, linux/arm64/v8)")
        }
        if let failOn, Severity(rawValue: failOn) == nil {
            throw ValidationError("--fail-on: unknown severity \"\(failOn)\" (expected low, medium, high or critical)")
        }
    }

    func run() throws {
        let dbPath = Locations(stateDir: locations.stateDir).vulnDB().path
        var database: VulnDatabase?
        // Read-only: scanning writes nothing, so any user who can read the database can scan.
        // (A path that cannot even be looked up, EACCES, is opened to get its clear error.)
        if access(dbPath, F_OK) == 0 || errno != ENOENT {
            do { database = try VulnDatabase(readingAt: dbPath) } catch {
                printError("cordon scan: \(error)")
                throw ExitCode(2)
            }
        } else {
            printError("cordon scan: warning: no vulnerability database at \(dbPath) (run `cordon db import`); running the heuristics only")
        }
        let report: ScanReport
        // On a terminal, a progress line once the scan has run for more than a second.
        let started = MonotonicClock.now
        let terminal = isatty(2) == 1
        var shown = false
        defer { if shown { FileDescriptorIO.writeAll(2, "\r\u{1B}[K") } }
        do {
            let images = ImageSelection(platform: platform.flatMap(ImageSelection.Platform.init(parsing:)), ref: ref)
            report = try Scanner.scan(paths, database: database, images: images) { index, count, target in
                guard terminal, MonotonicClock.now - started > 1 else { return }
                shown = true
                FileDescriptorIO.writeAll(2, "\r\u{1B}[Kscanning \(index + 1)/\(count): \(target)")
            }
        } catch {
            printError("cordon scan: \(error)")
            throw ExitCode(2)
        }
        print(try ReportFormat(rawValue: format)!.render(report, toolVersion: cordonVersion))
        if let failOn, let threshold = Severity(rawValue: failOn), let worst = report.worstSeverity, worst >= threshold {
            throw ExitCode(1)
        }
    }
}
