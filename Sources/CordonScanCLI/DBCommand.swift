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
        abstract: "Import OSV records (YAML or JSON files, or directories of them, e.g. the PyPA advisory database).",
        discussion: "All or nothing: a file that is not a valid OSV record stops the import, names the file and field, and leaves the database unchanged."
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
                print("imported \(summary.records) records (\(summary.withdrawn) withdrawn) from \(summary.files) files in \((summary.seconds * 100).rounded() / 100) s")
            }
        } catch {
            if showProgress { FileDescriptorIO.writeAll(2, "\n") }
            printError("cordon db import: \(error)")
            throw ExitCode(1)
        }
    }
}

struct DBStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Sources, counts by ecosystem, newest record.")

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    @OptionGroup var locations: LocationOptions

    func run() throws {
        let status: VulnDatabase.Status
        do { status = try DBCommand.open(locations).status() } catch let error as ExitCode { throw error } catch {
            printError("cordon db status: \(error)")
            throw ExitCode(1)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            print(String(decoding: try encoder.encode(status), as: UTF8.self))
            return
        }
        print("records: \(status.records) (\(status.withdrawn) withdrawn)")
        for (ecosystem, count) in status.byEcosystem.sorted(by: { $0.key < $1.key }) { print("  \(ecosystem): \(count)") }
        print("newest record modified: \(status.newestModified ?? "none")\(status.newestAgeDays.map { " (\($0) days ago)" } ?? "")")
        for source in status.sources { print("source: \(source.path) (\(source.records) records, imported \(source.importedAt))") }
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
        do { ids = try DBCommand.open(locations).advisories(ecosystem: eco, name: name, version: version) } catch let error as ExitCode { throw error } catch {
            printError("cordon db match: \(error)")
            throw ExitCode(1)
        }
        for id in ids { print(id) }
    }
}
