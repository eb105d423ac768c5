import ArgumentParser
import CordonPolicy
import CordonRPC
import CordonSandbox
import CordonSystem
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// `cordon version`: Cordon's version and what this host and build provide, so a report says
/// exactly which libraries and kernel features stood behind a sandbox.
///
/// libseccomp is linked (`cordon run` compiles filters, and its version keys the filter cache);
/// SQLite and libcap are not: cordon uses neither (SQLite is cordond's audit store and
/// cordon-scan's vulnerability database; capabilities are dropped by raw system calls in CSpawn),
/// so they are opened here, by soname, rather than loaded at the start of every `cordon run`.
struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version", abstract: "Show versions of Cordon, its libraries and the kernel features it uses.")

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func run() throws {
        var info: [(String, String)] = [("cordon", cordonVersion)]
        info.append(("libseccomp", SeccompCompiler.versionString))
        info.append(("libcap", capLibraryVersion()))
        info.append(("sqlite", sqliteVersion()))
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

    func sqliteVersion() -> String {
        typealias LibVersion = @convention(c) () -> UnsafePointer<CChar>?
        guard let library = SharedLibrary("libsqlite3.so.0"), let libVersion = library.function("sqlite3_libversion", as: LibVersion.self),
              let text = libVersion() else { return "unknown" }
        return withExtendedLifetime(library) { String(cString: text) }
    }

    /// libcap has no version call; report the name it gives the highest capability Cordon knows.
    func capLibraryVersion() -> String {
        typealias ToName = @convention(c) (Int32) -> UnsafeMutablePointer<CChar>?
        typealias Free = @convention(c) (UnsafeMutableRawPointer?) -> Int32
        guard let library = SharedLibrary("libcap.so.2"), let toName = library.function("cap_to_name", as: ToName.self),
              let free = library.function("cap_free", as: Free.self), let text = toName(Int32(Capability.names.count - 1)) else { return "unknown" }
        return withExtendedLifetime(library) {
            defer { _ = free(UnsafeMutableRawPointer(text)) }
            return "knows up to \(String(cString: text))"
        }
    }
}

/// A shared library opened at run time (dlopen), closed when the last reference goes: nothing
/// taken from it may outlive it.
final class SharedLibrary {
    private let handle: UnsafeMutableRawPointer

    /// Nil when the library is not installed.
    init?(_ soname: String) {
        guard let handle = dlopen(soname, RTLD_LAZY | RTLD_LOCAL) else { return nil }
        self.handle = handle
    }

    deinit { dlclose(handle) }

    /// The C function `name` as `type` (a `@convention(c)` function type), nil when missing.
    func function<F>(_ name: String, as type: F.Type) -> F? {
        dlsym(handle, name).map { unsafeBitCast($0, to: type) }
    }
}
