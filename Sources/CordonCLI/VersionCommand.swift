import CordonRPC
import ArgumentParser
import CCap
import CordonSandbox
import CordonSystem
import CSQLite
import FoundationEssentials

/// `cordon version`: Cordon's version and what this host and build provide, so a report says
/// exactly which libraries and kernel features stood behind a sandbox.
struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version", abstract: "Show versions of Cordon, its libraries and the kernel features it uses.")

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func run() throws {
        var info: [(String, String)] = [("cordon", cordonVersion)]
        info.append(("libseccomp", SeccompCompiler.versionString))
        info.append(("libcap", capLibraryVersion()))
        info.append(("sqlite", String(cString: sqlite3_libversion())))
        info.append(("landlock_abi", "\(Landlock.abi)"))
        let cgroups = (try? CgroupHierarchy.version(mount: "/sys/fs/cgroup"))?.rawValue ?? "unavailable"
        info.append(("cgroup", cgroups))
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let data = try encoder.encode(Dictionary(uniqueKeysWithValues: info))
            print(String(decoding: data, as: UTF8.self))
        } else {
            for (k, v) in info { print("\(k): \(v)") }
        }
    }

    /// libcap has no version call; report the highest capability it knows.
    func capLibraryVersion() -> String {
        guard let text = cap_to_name(cap_value_t(CAP_LAST_CAP)) else { return "unknown" }
        defer { cap_free(text) }
        return "knows up to \(String(cString: text))"
    }
}
