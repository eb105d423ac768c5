import ArgumentParser
import CordonPolicy
import CordonSandbox
import CordonSystem
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run COMMAND in a fresh sandbox built from a policy.",
        discussion: """
        Streams stdin/stdout/stderr and exits with the command's status (128+N when it was killed by
        signal N, 125 when the sandbox could not be set up, 126/127 when the command cannot be
        executed or is not found inside the sandbox). With --json, one result record (exit status
        or signal, termination reason, times, peak memory, denied operations) is printed as the
        last line of standard output.
        """
    )

    @Option(name: .long, help: "Policy name or path to a policy file.")
    var policy: String = "default"

    @Flag(name: .long, help: "Print the result record as JSON after the command's output.")
    var json = false

    @Option(name: .long, help: "Wall-clock limit, e.g. 30s, 500ms, 2m (overrides the policy's limits.wall_time).")
    var timeout: String?

    @Flag(name: .long, help: "Give the command a pseudo-terminal.")
    var tty = false

    @OptionGroup var locations: LocationOptions

    @Argument(parsing: .postTerminator, help: "The command and its arguments (after --).")
    var command: [String] = []

    func validate() throws {
        if command.isEmpty { throw ValidationError("missing COMMAND: cordon run [OPTIONS] -- COMMAND [ARGS...]") }
        if let timeout, Units.parseDuration(timeout).map({ $0 > 0 }) != true {
            throw ValidationError("--timeout: bad duration \"\(timeout)\" (use e.g. 30s, 500ms, 2m)")
        }
        if command.contains(where: { $0.utf8.contains(0) }) { throw ValidationError("COMMAND contains a NUL byte") }
    }

    func run() throws {
        guard geteuid() == 0 else {
            printError("cordon run: needs root: it creates user, pid, mount and network namespaces, maps a private uid range and creates cgroups. Run it as root, or submit the task to cordond.")
            throw ExitCode(125)
        }
        let store = PolicyStore(configDir: locations.resolvedConfigDir())
        let plan: SpawnPlan
        do {
            let policy = try store.loadPolicy(self.policy)
            plan = try store.spawnPlan(for: policy, cacheDir: "\(locations.resolvedStateDir())/cache/seccomp",
                                       callerEnvironment: ProcessInfo.processInfo.environment)
        } catch {
            printError("cordon run: \(error.description)")
            throw ExitCode(125)
        }
        var io = SandboxIO()
        io.tty = tty
        let result = Sandbox.run(plan: plan, argv: command,
                                 environment: SandboxEnvironment(runtimeDir: locations.resolvedRuntimeDir()),
                                 io: io, wallTime: timeout.flatMap(Units.parseDuration))
        if let failure = result.setupFailure {
            printError("cordon: \(failure.message)")
        } else if result.reason != .exited && result.reason != .signaled && !json {
            printError("cordon: sandbox ended: \(result.reason.rawValue)")
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            if let data = try? encoder.encode(result) {
                FileDescriptorIO.writeAll(1, String(decoding: data, as: UTF8.self) + "\n")
            }
        }
        throw ExitCode(result.exitStatus)
    }
}
