import ArgumentParser
import CordonCommandLine
import CordonConfig
import CordonHeuristics
import CordonJSON
import CordonRPC
import CordonScanner
import CordonSystem
import CordonVulnDB
#if canImport(Glibc)
import Glibc
#endif

/// `cordon-scan unpack`: one image of an archive unpacked into a directory, then scanned. cordond
/// runs it inside a sandbox to prepare a policy's `filesystem.image` (docs/daemon.md, "Images
/// as roots"): the privileged daemon never reads an image archive itself.
struct UnpackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unpack",
        abstract: "Unpack one image of an OCI image layout or docker save archive into a directory, and scan it.",
        discussion: """
        Writes the image's root file system to DIR/rootfs (DIR must exist; rootfs must not): layers \
        in order, whiteouts applied, no device nodes (refused), no set-user-ID or set-group-ID bits, \
        symlinks written and never followed. Then scans the image as `cordon scan` does and prints \
        one JSON object: what was unpacked, the worst severity found, the first findings (the whole \
        report goes to --report). \
        Exit status: 0, or 1 when the scan found something at or above --fail-on (the rootfs is \
        left for the caller to remove), 2 when the image could not be unpacked or scanned.
        """
    )

    @Option(name: .long, help: "The directory to unpack into (its rootfs subdirectory is made).")
    var into: String

    @Option(name: .long, help: "The image: an OCI ref name, or a docker save tag (default: the archive's only image).")
    var ref: String?

    @Option(name: .long, help: "Of an OCI index with several images: os/arch[/variant] (default: the host's).")
    var platform: String?

    @Option(name: .long, help: "Write the full scan report (JSON, as `cordon scan --format json`) to this file.")
    var report: String?

    @Option(name: .long, help: "The vulnerability database to read (default: the state directory's).")
    var db: String?

    @Option(name: .customLong("fail-on"), help: "Exit 1 when the scan finds anything at or above: low, medium, high, critical.")
    var failOn: String?

    @OptionGroup var locations: LocationOptions

    @Argument(help: "The image archive or OCI layout directory.")
    var image: String

    func validate() throws {
        if let platform, ImageSelection.Platform(parsing: platform) == nil {
            throw ValidationError("--platform: \"\(platform)\" is not os/arch or os/arch/variant (e.g. linux/amd64)")
        }
        if let failOn, Severity(rawValue: failOn) == nil {
            throw ValidationError("--fail-on: unknown severity \"\(failOn)\" (expected low, medium, high or critical)")
        }
    }

    func run() throws {
        let rootfs = "\(into)/rootfs"
        guard mkdir(rootfs, 0o755) == 0 else {
            printError("cordon-scan unpack: \(rootfs): \(SystemError.text(errno))")
            throw ExitCode(2)
        }
        _ = chmod(rootfs, 0o755)
        let summary: ImageUnpacker.Summary
        do {
            summary = try ImageUnpacker.unpack(image, ref: ref, platform: platform.flatMap(ImageSelection.Platform.init(parsing:)), into: rootfs)
        } catch {
            printError("cordon-scan unpack: \(error)")
            throw ExitCode(2)
        }
        let dbPath = db ?? Locations(stateDir: locations.stateDir).vulnDB().path
        var database: VulnDatabase?
        if access(dbPath, F_OK) == 0 || errno != ENOENT {
            do { database = try VulnDatabase(readingAt: dbPath) } catch {
                printError("cordon-scan unpack: \(error)")
                throw ExitCode(2)
            }
        }
        let scanned: ScanReport
        do { scanned = try Scanner.scan([image], database: database, images: summary.scanSelection) } catch {
            printError("cordon-scan unpack: scanning \(image): \(error)")
            throw ExitCode(2)
        }
        // The worst first: what a refusal names.
        var found: [(Severity, String)] = []
        for package in scanned.packages {
            for v in package.vulnerabilities {
                found.append((ScanReport.severity(of: v), "\(package.name) \(package.version): \(v.id)\(v.summary.map { " (\($0))" } ?? "")"))
            }
            for f in package.findings { found.append((f.severity, "\(f.file): \(f.rule): \(f.message)")) }
        }
        found.sort { $0.0 > $1.0 }
        if let report {
            do {
                let text = try ReportFormat.json.render(scanned, toolVersion: cordonVersion)
                try FileSystem.writeAtomically(report, Array(text.utf8), mode: 0o644, durable: false)
            } catch {
                printError("cordon-scan unpack: the report \(report): \(error)")
                throw ExitCode(2)
            }
        }
        let notChecked = scanned.notChecked.map { "\($0.count) \($0.count == 1 ? "package" : "packages"): \($0.reason)" }
        let out = JSON.object([
            ("image", .string(image)),
            ("label", summary.label.map(JSON.string) ?? .null),
            ("layers", .array(summary.layers.map(JSON.string))),
            ("files", .int(Int64(summary.files))),
            ("bytes", .int(summary.bytes)),
            ("database", .bool(database != nil)),
            ("worst", scanned.worstSeverity.map { .string($0.rawValue) } ?? .null),
            ("findings", .array(found.prefix(20).map { .string("\($0.0.rawValue): \($0.1)") })),
            ("findingCount", .int(Int64(found.count))),
            ("notChecked", .array(notChecked.map(JSON.string))),
        ])
        print(out.text)
        if let failOn, let gate = Severity(rawValue: failOn), let worst = scanned.worstSeverity, worst >= gate { throw ExitCode(1) }
    }
}
