import ArgumentParser
import CordonConfig
import CordonSystem

// What the `cordon` and `cordon-scan` binaries share on the command line: the location flags
// and unbuffered error output. Nothing here spawns or confines, so a worker program links it
// without linking the sandbox.

/// Where Cordon keeps things; each has a flag and an environment variable so that tests and the
/// demo can run from a scratch directory (resolved by `Locations`).
public struct LocationOptions: ParsableArguments {
    public init() {}

    @Option(name: .customLong("config-dir"), help: "Policies and profiles directory (default: $CORDON_CONFIG, /etc/cordon, then built-in).")
    public var configDir: String?

    @Option(name: .customLong("state-dir"), help: "State directory (default: $CORDON_STATE_DIR or /var/lib/cordon).")
    public var stateDir: String?

    @Option(name: .customLong("runtime-dir"), help: "Runtime directory (default: $CORDON_RUNTIME_DIR or /run/cordon).")
    public var runtimeDir: String?

    /// The policy store these options name (see `Locations.policyStore`).
    public var policyStore: PolicyStore { Locations(configDir: configDir).policyStore() }
}

/// Writes to standard error without buffering.
public func printError(_ text: String) {
    FileDescriptorIO.writeAll(2, text.hasSuffix("\n") ? text : text + "\n")
}
