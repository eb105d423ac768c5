import ArgumentParser
import CordonCommandLine
import CordonConfig
import CordonJSON
import CordonPolicy
import CordonStore
import CordonSystem
#if canImport(Glibc)
import Glibc
#endif

/// `cordon store gc`: the install gate's store without what nothing keeps (docs/install.md).
struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "The install gate's store (as root).",
        subcommands: [StoreGCCommand.self]
    )
}

struct StoreGCCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Remove the installed sets no tool's requirements pin (and --keep does not name), then the files no set holds.",
        discussion: """
        A set some tool's requires or lock was installed as (STATE/store/pins) is kept, and so is \
        every set named by --keep or kept or used within --min-age. The others are moved aside (never emptied in place: a running \
        sandbox may have one mounted) and removed when cordond next starts. Then each downloaded \
        file no remaining set holds is removed, unless it is younger than a day (an install in \
        progress may be about to keep it). --dry-run says what would go and changes nothing. \
        Exit status: 0 done, 2 an error (another process holding the store says so).
        """
    )

    @OptionGroup var locations: LocationOptions

    @Flag(name: .customLong("dry-run"), help: "Say what would be removed; remove nothing.")
    var dryRun = false

    @Option(name: .long, help: "A set to keep besides the pinned ones (its hash; repeat it).")
    var keep: [String] = []

    @Option(name: .customLong("min-age"), help: "Keep sets kept or used more recently than this (default 1h: an install may be on its way to using one).")
    var minAge = "1h"

    @Flag(name: .long, help: "Print what was (or would be) removed as JSON.")
    var json = false

    func run() throws {
        guard geteuid() == 0 else {
            printError("cordon store gc: run it as root (the store is root's, in the state directory)")
            throw ExitCode(2)
        }
        let root = "\(FileSystem.absolute(Locations(stateDir: locations.stateDir).resolvedStateDir()))/store"
        guard FileSystem.isDirectory(root) else {
            if json { print(JSON.object([("sets", .array([])), ("blobs", .array([])), ("bytes", .int(0)), ("dryRun", .bool(dryRun))]).text) }
            else { print("nothing to collect: \(root) does not exist") }
            return
        }
        let store: PackageStore
        do { store = try PackageStore(root: root) } catch {
            printError("cordon store gc: \(error)")
            throw ExitCode(2)
        }
        for hash in keep where store.set(hash) == nil {
            printError("cordon store gc: --keep \(hash): no such set in \(root) (`cordon install --list` lists them)")
            throw ExitCode(2)
        }
        guard let grace = Units.parseDuration(minAge), grace >= 0 else {
            printError("cordon store gc: --min-age \(minAge): not a duration (e.g. 0s, 30m, 1h)")
            throw ExitCode(2)
        }
        let collected: PackageStore.Collected
        do { collected = try store.collect(keeping: Set(keep), dryRun: dryRun, setGraceSeconds: grace) } catch {
            printError("cordon store gc: \(error)")
            throw ExitCode(2)
        }
        if json {
            print(JSON.object([("sets", .array(collected.sets.map(JSON.string))), ("blobs", .array(collected.blobs.map(JSON.string))),
                               ("bytes", .int(collected.bytes)), ("dryRun", .bool(dryRun))]).text(JSON.Format(indent: "  ")))
            return
        }
        let verb = dryRun ? "would remove" : "removed"
        print("\(verb) \(collected.sets.count) set\(collected.sets.count == 1 ? "" : "s") and \(collected.blobs.count) file\(collected.blobs.count == 1 ? "" : "s") (\(Units.formatSize(UInt64(max(0, collected.bytes)))))")
        for hash in collected.sets { print("  set \(hash)") }
        if !dryRun && !collected.sets.isEmpty { print("(the sets are moved aside; cordond removes them when it next starts)") }
    }
}
