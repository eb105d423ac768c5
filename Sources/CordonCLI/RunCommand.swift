import ArgumentParser
import CordonCommandLine
import CordonConfig
import CordonPolicy
import CordonSandbox
import CordonSystem
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// The options of `cordon run`, whichever parser filled them.
public struct RunOptions: Equatable, Sendable {
    public var policy = "default"
    public var json = false
    public var timeout: String?
    public var tty = false
    public var configDir: String?
    public var stateDir: String?
    public var runtimeDir: String?
    /// `--learn OUT.toml`: observe the command instead of confining it, and write a policy.
    public var learn: String?
    /// Egress name resolution (supervisor settings, not policy): a hosts file, a DNS server.
    public var dnsHosts: String?
    public var dnsUpstream: String?
    public var command: [String] = []

    public init() {}

    /// The same checks for both parsers; the message is what the user sees.
    func validationError() -> String? {
        if command.isEmpty { return "missing COMMAND: cordon run [OPTIONS] -- COMMAND [ARGS...]" }
        if let timeout, Units.parseDuration(timeout).map({ $0 > 0 }) != true {
            return "--timeout: bad duration \"\(timeout)\" (use e.g. 30s, 500ms, 2m)"
        }
        if command.contains(where: { $0.utf8.contains(0) }) { return "COMMAND contains a NUL byte" }
        if let learn {
            if learn.isEmpty || learn.hasSuffix("/") || !learn.hasSuffix(".toml") { return "--learn: expected a file name ending in .toml, found \"\(learn)\"" }
            if tty { return "--learn and --tty cannot be combined" }
        }
        return nil
    }
}

/// Well-formed arguments of a hot-path command: flags, options with a value (`--name VALUE` or
/// `--name=VALUE`; `take` gets "" for a flag), then `--` and a non-empty command. Anything else (--help, a typo, a missing
/// value, a flag given a value) is nil: ArgumentParser then owns the help and the messages.
enum FastArguments {
    static func scan(_ arguments: ArraySlice<String>, flags: Set<String>, options: Set<String>,
                     _ take: (_ name: String, _ value: String) -> Void) -> [String]? {
        var rest = arguments[...]
        while let arg = rest.first {
            rest = rest.dropFirst()
            if arg == "--" { return rest.isEmpty ? nil : Array(rest) }
            var name = arg
            var inlineValue: String?
            if let eq = arg.firstIndex(of: "="), arg.hasPrefix("--") {
                name = String(arg[..<eq])
                inlineValue = String(arg[arg.index(after: eq)...])
            }
            if flags.contains(name) {
                guard inlineValue == nil else { return nil }
                take(name, "")
            } else if options.contains(name) {
                if let inlineValue { take(name, inlineValue); continue }
                guard let next = rest.first, !next.hasPrefix("-") else { return nil }
                take(name, next)
                rest = rest.dropFirst()
            } else {
                return nil
            }
        }
        return nil
    }
}

/// `cordon run` on the hot path. Spawning is what Cordon is measured by, and the general
/// argument parser costs about 2 ms of start-up (reflection and protocol-conformance lookups),
/// so well-formed `run` invocations are parsed here. Anything this parser does not recognise
/// (--help, a typo, a missing value) returns nil and goes to ArgumentParser, which owns the
/// help text and the error messages. A test checks that both parsers agree.
public enum RunFastPath {
    public static func parse(_ arguments: ArraySlice<String>) -> RunOptions? {
        var options = RunOptions()
        let command = FastArguments.scan(arguments, flags: ["--json", "--tty"],
                                         options: ["--policy", "--timeout", "--config-dir", "--state-dir", "--runtime-dir",
                                                   "--learn", "--dns-hosts", "--dns-upstream"]) { name, value in
            switch name {
            case "--json": options.json = true
            case "--tty": options.tty = true
            case "--policy": options.policy = value
            case "--timeout": options.timeout = value
            case "--config-dir": options.configDir = value
            case "--state-dir": options.stateDir = value
            case "--learn": options.learn = value
            case "--dns-hosts": options.dnsHosts = value
            case "--dns-upstream": options.dnsUpstream = value
            default: options.runtimeDir = value
            }
        }
        guard let command else { return nil }
        options.command = command
        return options
    }

    /// Runs a parsed `cordon run`; returns the exit status.
    public static func execute(_ options: RunOptions) -> Int32 {
        if let message = options.validationError() {
            printError("cordon run: \(message)")
            return 64
        }
        if options.learn != nil { return LearnRun.execute(options) }
        guard geteuid() == 0 else {
            printError("cordon run: needs root: it creates user, pid, mount and network namespaces, maps a private uid range and creates cgroups. Run it as root, or submit the task to cordond.")
            return 125
        }
        let locations = Locations(configDir: options.configDir, stateDir: options.stateDir, runtimeDir: options.runtimeDir)
        let store = locations.policyStore()
        let plan: SpawnPlan
        do {
            let policy = try store.loadPolicy(options.policy)
            // The state dir is created private (cordond shares it and keeps every user's records there).
            let stateDir = locations.resolvedStateDir()
            if !FileSystem.exists(stateDir) { try? FileSystem.makeDirectories(stateDir, mode: 0o700) }
            plan = try store.spawnPlan(for: policy, cacheDir: "\(stateDir)/cache/seccomp",
                                       callerEnvironment: ProcessInfo.processInfo.environment)
        } catch {
            printError("cordon run: \(error.description)")
            return 125
        }
        var io = SandboxIO()
        io.tty = options.tty
        var environment = SandboxEnvironment(runtimeDir: locations.resolvedRuntimeDir())
        environment.egress = EgressSettings(hostsFile: options.dnsHosts, upstream: options.dnsUpstream)
        let result = Sandbox.run(plan: plan, argv: options.command, environment: environment,
                                 io: io, wallTime: options.timeout.flatMap(Units.parseDuration))
        if let failure = result.setupFailure {
            printError("cordon: \(failure.message)")
        } else if result.reason != .exited && result.reason != .signaled && !options.json {
            printError("cordon: sandbox ended: \(result.reason.rawValue)")
        }
        if options.json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            if let data = try? encoder.encode(result) {
                FileDescriptorIO.writeAll(1, String(decoding: data, as: UTF8.self) + "\n")
            }
        }
        return result.exitStatus
    }
}

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run COMMAND in a fresh sandbox built from a policy.",
        discussion: """
        Streams stdin/stdout/stderr and exits with the command's status: 128+N when it was killed \
        by signal N, 125 when the sandbox could not be set up, 126/127 when the command cannot be \
        executed or is not found inside the sandbox.

        With --json, one result record (exit status or signal, termination reason, times, peak \
        memory, denied operations, the layers applied) is printed as the last line of standard \
        output.

        With --learn OUT.toml, COMMAND is not confined but observed (every system call, with \
        its paths and addresses, through seccomp user notification), and OUT.toml plus \
        OUT.seccomp.json are written: a policy that extends --policy with just what the run \
        used. Learn only commands you would run unconfined anyway.
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

    @Option(name: .long, help: ArgumentHelp("Observe COMMAND (unconfined) and write the smallest policy on top of --policy that lets the same run succeed.", valueName: "OUT.toml"))
    var learn: String?

    @Option(name: .customLong("dns-hosts"), help: ArgumentHelp("With network.mode = \"allowlist\": a hosts file the supervisor consults first when resolving listed names.", valueName: "FILE"))
    var dnsHosts: String?

    @Option(name: .customLong("dns-upstream"), help: ArgumentHelp("With network.mode = \"allowlist\": the DNS server the supervisor asks (default: the host's resolver).", valueName: "IPv4:PORT"))
    var dnsUpstream: String?

    @OptionGroup var locations: LocationOptions

    @Argument(parsing: .postTerminator, help: "The command and its arguments (after --).")
    var command: [String] = []

    var options: RunOptions {
        var o = RunOptions()
        o.policy = policy
        o.json = json
        o.timeout = timeout
        o.tty = tty
        o.configDir = locations.configDir
        o.stateDir = locations.stateDir
        o.runtimeDir = locations.runtimeDir
        o.learn = learn
        o.dnsHosts = dnsHosts
        o.dnsUpstream = dnsUpstream
        o.command = command
        return o
    }

    func validate() throws {
        if let message = options.validationError() { throw ValidationError(message) }
    }

    func run() throws {
        let status = RunFastPath.execute(options)
        if status != 0 { throw ExitCode(status) }
    }
}
