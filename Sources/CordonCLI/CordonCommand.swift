import CordonRPC
import ArgumentParser
import CordonPolicy
import CordonSandbox
import CordonSystem
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif


/// `cordon`: run commands in sandboxes, talk to cordond, check policies, scan packages.
public struct CordonCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "cordon",
        abstract: "Run commands and AI-agent tools in policy-enforced Linux sandboxes.",
        version: cordonVersion,
        subcommands: [RunCommand.self, SubmitCommand.self, TasksCommand.self, LogsCommand.self, CancelCommand.self, StatusCommand.self,
                      AuditCommand.self, MetricsCommand.self, PolicyCommand.self, ScanForward.self, DBForward.self, VersionCommand.self]
    )
    public init() {}

    /// `cordon scan …` / `cordon db …`: replaced by `cordon-scan scan …` / `cordon-scan db …`.
    public static func forwardToScanner(_ arguments: [String]) -> Never { ScannerTool.exec(arguments) }
}

/// Where Cordon keeps things; each has a flag and an environment variable so that tests and the
/// demo can run from a scratch directory.
public struct LocationOptions: ParsableArguments {
    public init() {}

    @Option(name: .customLong("config-dir"), help: "Policies and profiles directory (default: $CORDON_CONFIG, /etc/cordon, then built-in).")
    public var configDir: String?

    @Option(name: .customLong("state-dir"), help: "State directory (default: $CORDON_STATE_DIR or /var/lib/cordon).")
    public var stateDir: String?

    @Option(name: .customLong("runtime-dir"), help: "Runtime directory (default: $CORDON_RUNTIME_DIR or /run/cordon).")
    public var runtimeDir: String?

    /// The policy store these options name (see `Locations.policyStore`).
    var policyStore: PolicyStore { Locations(configDir: configDir).policyStore() }
}

/// Resolves the three locations: flag, then environment variable, then the system default.
public struct Locations {
    var configDir: String? = nil
    var stateDir: String? = nil
    var runtimeDir: String? = nil

    public init(configDir: String? = nil, stateDir: String? = nil, runtimeDir: String? = nil) {
        self.configDir = configDir
        self.stateDir = stateDir
        self.runtimeDir = runtimeDir
    }

    public func resolvedConfigDir() -> String? { configDir ?? PolicyStore.defaultConfigDir() }
    /// The policies and profiles of the resolved config dir (then the embedded defaults).
    public func policyStore() -> PolicyStore { PolicyStore(configDir: resolvedConfigDir()) }
    public func resolvedStateDir() -> String { stateDir ?? environment("CORDON_STATE_DIR") ?? "/var/lib/cordon" }
    public func resolvedRuntimeDir() -> String { runtimeDir ?? environment("CORDON_RUNTIME_DIR") ?? "/run/cordon" }

    func environment(_ name: String) -> String? {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return nil }
        return value
    }
}

/// Writes to standard error without buffering.
public func printError(_ text: String) {
    FileDescriptorIO.writeAll(2, text.hasSuffix("\n") ? text : text + "\n")
}

/// `cordon scan` and `cordon db` run the `cordon-scan` binary installed next to `cordon`.
enum ScannerTool {
    static func path() -> String {
        let argv0 = CommandLine.arguments[0]
        let dir = FileSystem.executableDirectory ?? String(argv0[..<(argv0.lastIndex(of: "/") ?? argv0.startIndex)])
        return dir + "/cordon-scan"
    }

    /// Replaces this process with `cordon-scan ARGS`; returns only if that failed.
    static func exec(_ args: [String]) -> Never {
        let tool = path()
        var argv: [UnsafeMutablePointer<CChar>?] = ([tool] + args).map { strdup($0) }
        argv.append(nil)
        execv(tool, &argv)
        printError("cordon: cannot run \(tool): \(String(cString: strerror(errno))) (it is installed next to cordon)")
        exit(127)
    }
}

struct ScanForward: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan", abstract: "Scan Python wheels and sdists, npm tarballs, directories and container images (runs cordon-scan).")
    @Argument(parsing: .captureForPassthrough) var arguments: [String] = []
    func run() throws { ScannerTool.exec(["scan"] + arguments) }
}

struct DBForward: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db", abstract: "Import and query the offline vulnerability database (runs cordon-scan).")
    @Argument(parsing: .captureForPassthrough) var arguments: [String] = []
    func run() throws { ScannerTool.exec(["db"] + arguments) }
}
