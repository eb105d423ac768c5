import ArgumentParser
import CordonCommandLine
import CordonConfig
import CordonScan
import CordonSystem
import CordonVulnDB
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// `cordon db …`: the offline vulnerability database (OSV records in SQLite, in the state dir).
struct DBCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db",
        abstract: "Import and query the offline vulnerability database.",
        subcommands: [DBImportCommand.self, DBStatusCommand.self, DBMatchCommand.self]
    )

    /// The database read-only, for queries: creates nothing, works for any user who can read it.
    static func openForReading(_ locations: LocationOptions, command: String) throws -> VulnDatabase {
        let path = "\(Locations(stateDir: locations.stateDir).resolvedStateDir())/vulndb.sqlite"
        if access(path, F_OK) != 0 && errno == ENOENT {
            printError("cordon db \(command): no vulnerability database at \(path) (run `cordon db import`)")
            throw ExitCode(1)
        }
        do { return try VulnDatabase(readingAt: path) } catch {
            printError("cordon db \(command): \(error)")
            throw ExitCode(1)
        }
    }

    static func open(_ locations: LocationOptions) throws -> VulnDatabase {
        let state = Locations(stateDir: locations.stateDir).resolvedStateDir()
        do { try FileSystem.ensureDirectory(state, mode: 0o700) } catch {
            printError("cordon db: \(error)")
            throw ExitCode(1)
        }
        do { return try VulnDatabase(path: "\(state)/vulndb.sqlite") } catch {
            printError("cordon db: \(error)")
            throw ExitCode(1)
        }
    }
}

struct DBImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import OSV records: YAML or JSON files, directories of them (e.g. the PyPA advisory database), or OSV export zips.",
        discussion: """
        An OSV export is the all.zip of an ecosystem (https://osv-vulnerabilities.storage.googleapis.com/<ecosystem>/all.zip): \
        download it, then import the file. Incremental: records whose content is unchanged are left alone, and records a \
        source (a file, directory or zip, by absolute path) held before and no longer holds are removed; the summary counts \
        records added, changed, unchanged and removed. All or nothing: a file that is not a valid OSV record stops the \
        import, names the file and field, and leaves the database unchanged.
        """
    )

    @Flag(name: .long, help: "Print the summary as JSON.")
    var json = false

    @OptionGroup var locations: LocationOptions

    @Argument(help: "Files or directories.")
    var paths: [String]

    func run() throws {
        let db = try DBCommand.open(locations)
        let showProgress = isatty(2) == 1
        do {
            let summary = try db.importRecords(from: paths) { done, total in
                if showProgress { FileDescriptorIO.writeAll(2, "\rimporting \(done)/\(total)") }
            }
            if showProgress { FileDescriptorIO.writeAll(2, "\n") }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(summary), as: UTF8.self))
            } else {
                print("imported \(summary.records) records from \(summary.files) files in \((summary.seconds * 100).rounded() / 100) s: "
                      + "\(summary.added) added, \(summary.changed) changed, \(summary.unchanged) unchanged, \(summary.removed) removed"
                      + " (\(summary.withdrawn) withdrawn)")
            }
        } catch {
            if showProgress { FileDescriptorIO.writeAll(2, "\n") }
            printError("cordon db import: \(error)")
            throw ExitCode(1)
        }
    }
}

struct DBStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status",
                                                    abstract: "Sources and how old each is (import time, newest record), counts by ecosystem.")

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    @OptionGroup var locations: LocationOptions

    func run() throws {
        let status: VulnDatabase.Status
        do { status = try DBCommand.openForReading(locations, command: "status").status() } catch let error as ExitCode { throw error } catch {
            printError("cordon db status: \(error)")
            throw ExitCode(1)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            print(String(decoding: try encoder.encode(status), as: UTF8.self))
            return
        }
        func ago(_ days: Int?) -> String { days.map { $0 == 0 ? " (today)" : $0 == 1 ? " (1 day ago)" : " (\($0) days ago)" } ?? "" }
        func ecosystems(_ counts: [String: Int]) -> String { counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") }
        print("database: \(status.path)")
        print("records: \(status.records) (\(status.withdrawn) withdrawn)\(status.byEcosystem.isEmpty ? "" : ": " + ecosystems(status.byEcosystem))")
        print("newest record modified: \(status.newestModified ?? "none")\(ago(status.newestAgeDays))")
        let missing = Ecosystem.allCases.map(\.rawValue).filter { (status.byEcosystem[$0] ?? 0) == 0 }
        if !missing.isEmpty { print("no advisories for: \(missing.joined(separator: ", ")) (packages of these are reported not checked)") }
        for source in status.sources {
            print("source: \(source.path)")
            print("  imported: \(source.importedAt)\(ago(source.importedAgeDays))")
            print("  newest record modified: \(source.newestModified ?? "none")\(ago(source.newestAgeDays))")
            print("  records: \(source.records)\(source.byEcosystem.isEmpty ? "" : ": " + ecosystems(source.byEcosystem))")
            let c = source.lastImport
            print("  last import: \(c.added) added, \(c.changed) changed, \(c.unchanged) unchanged, \(c.removed) removed")
        }
    }
}

struct DBMatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "match", abstract: "List the advisories that affect one package version.")

    @Option(name: .long, help: "PyPI, npm, Debian or Alpine.")
    var ecosystem: String = "PyPI"

    @OptionGroup var locations: LocationOptions

    @Argument(help: "Package name.")
    var name: String

    @Argument(help: "Version.")
    var version: String

    func run() throws {
        guard let eco = Ecosystem(osv: ecosystem) else {
            printError("cordon db match: unknown ecosystem \"\(ecosystem)\" (expected PyPI, npm, Debian or Alpine)")
            throw ExitCode(64)
        }
        let ids: [String]
        do { ids = try DBCommand.openForReading(locations, command: "match").advisories(ecosystem: eco, name: name, version: version) } catch let error as ExitCode { throw error } catch {
            printError("cordon db match: \(error)")
            throw ExitCode(1)
        }
        for id in ids { print(id) }
    }
}
