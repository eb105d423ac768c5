import ArgumentParser
import CordonPolicy
import CordonSandbox
import CordonSystem
import FoundationEssentials

public let cordonVersion = "0.1.0"

/// `cordon`: run commands in sandboxes, and (later) talk to cordond, check policies, scan packages.
public struct CordonCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "cordon",
        abstract: "Run commands and AI-agent tools in policy-enforced Linux sandboxes.",
        version: cordonVersion,
        subcommands: [RunCommand.self, PolicyCommand.self, ScanCommand.self, DBCommand.self, VersionCommand.self]
    )
    public init() {}
}

/// Where Cordon keeps things; each has a flag and an environment variable so that tests and the
/// demo can run from a scratch directory.
struct LocationOptions: ParsableArguments {
    @Option(name: .customLong("config-dir"), help: "Policies and profiles directory (default: $CORDON_CONFIG, /etc/cordon, then built-in).")
    var configDir: String?

    @Option(name: .customLong("state-dir"), help: "State directory (default: $CORDON_STATE_DIR or /var/lib/cordon).")
    var stateDir: String?

    @Option(name: .customLong("runtime-dir"), help: "Runtime directory (default: $CORDON_RUNTIME_DIR or /run/cordon).")
    var runtimeDir: String?

}

/// Resolves the three locations: flag, then environment variable, then the system default.
struct Locations {
    var configDir: String? = nil
    var stateDir: String? = nil
    var runtimeDir: String? = nil

    func resolvedConfigDir() -> String? { configDir ?? PolicyStore.defaultConfigDir() }
    func resolvedStateDir() -> String { stateDir ?? environment("CORDON_STATE_DIR") ?? "/var/lib/cordon" }
    func resolvedRuntimeDir() -> String { runtimeDir ?? environment("CORDON_RUNTIME_DIR") ?? "/run/cordon" }

    func environment(_ name: String) -> String? {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return nil }
        return value
    }
}

/// Writes to standard error without buffering.
func printError(_ text: String) {
    FileDescriptorIO.writeAll(2, text.hasSuffix("\n") ? text : text + "\n")
}
