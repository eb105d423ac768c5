import ArgumentParser
import CordonCommandLine
import CordonRPC
import CordonSystem
#if canImport(Glibc)
import Glibc
#endif


/// `cordon`: run commands in sandboxes, talk to cordond, check policies, scan packages.
public struct CordonCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "cordon",
        abstract: "Run commands and AI-agent tools in policy-enforced Linux sandboxes.",
        version: cordonVersion,
        subcommands: [RunCommand.self, SubmitCommand.self, ToolCommand.self, ModelCommand.self, MCPCommand.self, TasksCommand.self, LogsCommand.self, CancelCommand.self, DiffCommand.self, ApplyCommand.self, DiscardCommand.self, CopyCommand.self, SessionCommand.self, StatusCommand.self,
                      AuditCommand.self, MetricsCommand.self, PolicyCommand.self, InstallCommand.self, StoreCommand.self, ScanForward.self, DBForward.self, VersionCommand.self]
    )
    public init() {}

    /// `cordon scan …` / `cordon db …`: replaced by `cordon-scan scan …` / `cordon-scan db …`.
    public static func forwardToScanner(_ arguments: [String]) -> Never { ScannerTool.exec(arguments) }
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
