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
    /// What the flags add to or tighten in the policy for this run (see `PolicyOverrides`),
    /// as typed.
    public var bind: [String] = []
    public var roBind: [String] = []
    public var env: [String] = []
    public var cwd: String?
    public var memory: String?
    public var pids: String?
    public var networkAllow: [String] = []
    public var command: [String] = []

    public init() {}

    /// The same checks for both parsers; the message is what the user sees.
    func validationError() -> String? {
        if command.isEmpty { return "missing COMMAND: cordon run [OPTIONS] [--] COMMAND [ARGS...]" }
        if command.contains(where: { $0.utf8.contains(0) }) { return "COMMAND contains a NUL byte" }
        do { _ = try overrides() } catch { return error.description }
        if let learn {
            if learn.isEmpty || learn.hasSuffix("/") || !learn.hasSuffix(".toml") { return "--learn: expected a file name ending in .toml, found \"\(learn)\"" }
            if tty { return "--learn and --tty cannot be combined" }
        }
        return nil
    }

    /// The flags' values, checked on their own (against the policy: `PolicyOverrides.apply`).
    func overrides() throws(PolicyOverrides.Problem) -> PolicyOverrides {
        var o = PolicyOverrides()
        for b in bind { o.binds.append(try PolicyOverrides.bind(b, writable: true)) }
        for b in roBind { o.binds.append(try PolicyOverrides.bind(b, writable: false)) }
        for e in env { o.env.append(try PolicyOverrides.envVar(e)) }
        if let cwd { o.cwd = try PolicyOverrides.cwd(cwd) }
        if let memory { o.memoryBytes = try PolicyOverrides.memory(memory) }
        if let pids { o.pids = try PolicyOverrides.pids(pids) }
        if let timeout { o.wallTimeSeconds = try PolicyOverrides.duration(timeout) }
        for d in networkAllow { o.networkAllow.append(try PolicyOverrides.destination(d)) }
        return o
    }
}

/// Well-formed arguments of a hot-path command: flags, options with a value (`--name VALUE` or
/// `--name=VALUE`; `take` gets "" for a flag), then the command: after `--`, or — with
/// `commandStartsOptions: false` — from the first argument that is not an option, as env(1) and
/// sudo read theirs. Anything else (--help, a typo, a missing value, a flag given a value) is
/// nil: ArgumentParser then owns the help and the messages.
enum FastArguments {
    static func scan(_ arguments: ArraySlice<String>, flags: [String], options: [String], commandWithoutTerminator: Bool = false,
                     _ take: (_ name: String, _ value: String) -> Void) -> [String]? {
        var rest = arguments[...]
        while let arg = rest.first {
            if arg == "--" { rest = rest.dropFirst(); return rest.isEmpty ? nil : Array(rest) }
            if commandWithoutTerminator && !arg.hasPrefix("-") { return Array(rest) }
            rest = rest.dropFirst()
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

    /// `arguments` with `--` inserted before the command when it was given without one, so
    /// ArgumentParser (which reads the command after `--` only) sees the command the fast path
    /// sees, and still reports a mistyped option before it with its suggestion.
    static func terminated(_ arguments: [String], flags: [String], options: [String]) -> [String] {
        var i = 0
        while i < arguments.count {
            let arg = arguments[i]
            if arg == "--" { return arguments }
            if !arg.hasPrefix("-") { return Array(arguments[..<i]) + ["--"] + arguments[i...] }
            // An option's value is not the command.
            if options.contains(arg) { i += 1 }
            i += 1
        }
        return arguments
    }
}

/// `cordon run` on the hot path. Spawning is what Cordon is measured by, and the general
/// argument parser costs about 2 ms of start-up (reflection and protocol-conformance lookups),
/// so well-formed `run` invocations are parsed here. Anything this parser does not recognise
/// (--help, a typo, a missing value) returns nil and goes to ArgumentParser, which owns the
/// help text and the error messages. A test checks that both parsers agree.
public enum RunFastPath {
    // Arrays, not sets: a Set<String> built at start-up costs more (metadata, hashing) than
    // comparing a few strings.
    static let flags = ["--json", "--tty"]
    static let options = ["--policy", "--timeout", "--config-dir", "--state-dir", "--runtime-dir", "--learn", "--dns-hosts",
                          "--dns-upstream", "--bind", "--ro-bind", "--env", "--cwd", "--memory", "--pids", "--network-allow"]

    public static func parse(_ arguments: ArraySlice<String>) -> RunOptions? {
        var options = RunOptions()
        let command = FastArguments.scan(arguments, flags: flags, options: Self.options, commandWithoutTerminator: true) { name, value in
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
            case "--bind": options.bind.append(value)
            case "--ro-bind": options.roBind.append(value)
            case "--env": options.env.append(value)
            case "--cwd": options.cwd = value
            case "--memory": options.memory = value
            case "--pids": options.pids = value
            case "--network-allow": options.networkAllow.append(value)
            default: options.runtimeDir = value
            }
        }
        guard let command else { return nil }
        options.command = command
        return options
    }

    /// `cordon run ARGS` as ArgumentParser must read it (see `FastArguments.terminated`).
    public static func argumentsForParser(_ arguments: [String]) -> [String] {
        FastArguments.terminated(arguments, flags: flags, options: options)
    }

    /// Runs a parsed `cordon run`; returns the exit status.
    public static func execute(_ options: RunOptions) -> Int32 {
        if let message = options.validationError() {
            printError("cordon run: \(message)")
            if options.json { printRecord(.setupFailed(step: .arguments, errno: EINVAL, message: message, policy: options.policy, policyHash: ""), after: nil) }
            return 64
        }
        if options.learn != nil { return LearnRun.execute(options) }
        guard geteuid() == 0 else {
            let message = "needs root: it creates user, pid, mount and network namespaces, maps a private uid range and creates cgroups. Run it as root, or submit the task to cordond."
            printError("cordon run: \(message)")
            if options.json { printRecord(.setupFailed(step: .privileges, errno: EPERM, message: message, policy: options.policy, policyHash: ""), after: nil) }
            return 125
        }
        let locations = Locations(configDir: options.configDir, stateDir: options.stateDir, runtimeDir: options.runtimeDir)
        // The state dir is created private (cordond shares it and keeps every user's records there).
        let stateDir = locations.resolvedStateDir()
        if !FileSystem.exists(stateDir) { try? FileSystem.makeDirectories(stateDir, mode: 0o700) }
        var store = locations.policyStore()
        let prepared: PreparedRun
        let plan: SpawnPlan
        do {
            let overrides = try PreparedRun.overrides(options)
            // Loading and planning are cached by the identity of every input (SpawnPlanCache);
            // the flags that only set values are applied after, hit or miss.
            let cache = SpawnPlanCache(directory: "\(stateDir)/cache/plans")
            var name = options.policy
            if (PolicyStore.isPath(name) && !name.hasPrefix("/")) || store.configDir.map({ !$0.hasPrefix("/") }) == true {
                name = "\(FileSystem.currentDirectory()) \(name)"
            }
            let key = SpawnPlanCache.Key(configDir: store.configDir, policy: name, shapingFlags: overrides.planShaping.canonicalText)
            let cached = cache.lookup(key)
            let inputs = PolicyInputs()
            if cached == nil { store.inputs = inputs }
            let shaped: Policy
            if let cached { shaped = cached.policy } else { shaped = try PreparedRun.shaped(options.policy, overrides: overrides, store: store) }
            prepared = try PreparedRun(shaped: shaped, overrides: overrides)
            let confinement: Confinement
            if let cached {
                confinement = cached.confinement
            } else {
                let seen = SpawnPlanCache.ObservationLog()
                do { confinement = try store.confinement(for: shaped, cacheDir: "\(stateDir)/cache/seccomp", inspect: seen.inspect) } catch {
                    printError("cordon run: \(error.description)")
                    if options.json {
                        printRecord(.setupFailed(step: .policy, errno: EINVAL, message: error.description, policy: prepared.policy.name,
                                                 policyHash: prepared.policy.contentHash), after: nil)
                    }
                    return 125
                }
                cache.store(key, policy: shaped, confinement: confinement, inputs: inputs.all, observations: seen.all)
            }
            plan = SpawnPlan(policy: prepared.policy, confinement: confinement, callerEnvironment: ProcessInfo.processInfo.environment)
        } catch {
            printError("cordon run: \(error.message)")
            if options.json {
                printRecord(.setupFailed(step: error.step, errno: EINVAL, message: error.message, policy: error.policyName ?? options.policy,
                                         policyHash: error.policyHash ?? ""), after: nil)
            }
            return error.status
        }
        var io = SandboxIO()
        io.tty = options.tty
        var environment = SandboxEnvironment(runtimeDir: locations.resolvedRuntimeDir())
        environment.egress = EgressSettings(hostsFile: options.dnsHosts, upstream: options.dnsUpstream)
        let result = Sandbox.run(plan: plan, argv: options.command, environment: environment, io: io, wallTime: nil)
        if let failure = result.setupFailure {
            printError("cordon: \(failure.message)")
        } else if !options.json {
            for line in RunSummary.lines(result, policy: prepared.policy, flagged: prepared.flagged) { printError("cordon: \(line)") }
        }
        // Said only when the command failed, where a file it expected in the cwd may be why: on
        // every run it buried scripts' and benchmarks' stderr under the same line.
        if let notice = prepared.cwdNotice, result.setupFailure == nil, result.exitStatus != 0 { printError("cordon: \(notice)") }
        if options.json { printRecord(result, after: result.stdoutLastByte) }
        return result.exitStatus
    }

    /// The record on a line of its own: a newline first when the output relayed to stdout did
    /// not end with one.
    static func printRecord(_ result: SandboxResult, after lastByte: UInt8?) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(result) else { return }
        let lead = lastByte.map { $0 == UInt8(ascii: "\n") ? "" : "\n" } ?? ""
        FileDescriptorIO.writeAll(1, lead + String(decoding: data, as: UTF8.self) + "\n")
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

        --bind, --ro-bind, --env, --cwd and --network-allow extend the policy for this run, as a \
        policy file extending it would; --memory, --pids and --timeout only tighten its limits. \
        The command runs in your cwd when a bind shows it (otherwise in the workdir, said on \
        stderr when the command fails).

        When Cordon refused something (a system call, a network destination) or a limit ended \
        the run, a summary naming the policy key follows on standard error. With --json instead, \
        one result record (exit status or signal, termination reason, times, peak memory, denied \
        operations, the layers applied) is printed on a line of its own as the last line of \
        standard output, also when the policy does not load.

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

    @Option(name: .long, help: "Wall-clock limit, e.g. 30s, 500ms, 2m: tightens the policy's limits.wall_time (a longer one is an error).")
    var timeout: String?

    @Option(name: .long, help: ArgumentHelp("Bind host path SRC writable at DST (default: SRC), as a filesystem.read_write entry; what the sandbox writes there belongs to SRC's owner. Repeatable.", valueName: "SRC[:DST]"))
    var bind: [String] = []

    @Option(name: .customLong("ro-bind"), help: ArgumentHelp("Bind host path SRC read-only at DST (default: SRC), as a filesystem.read_only entry. Repeatable.", valueName: "SRC[:DST]"))
    var roBind: [String] = []

    @Option(name: .long, help: ArgumentHelp("Set NAME to VALUE in the sandbox (process.env). Repeatable.", valueName: "NAME=VALUE"))
    var env: [String] = []

    @Option(name: .long, help: ArgumentHelp("Working directory inside the sandbox (process.cwd). Default: the policy's, else your cwd when a bind shows it, else the workdir.", valueName: "PATH"))
    var cwd: String?

    @Option(name: .long, help: ArgumentHelp("Memory limit, e.g. 256M: tightens the policy's limits.memory.", valueName: "SIZE"))
    var memory: String?

    @Option(name: .long, help: ArgumentHelp("Process limit: tightens the policy's limits.pids.", valueName: "N"))
    var pids: String?

    @Option(name: .customLong("network-allow"), help: ArgumentHelp("Allow connections to HOST:PORT through the egress proxy (a network.allow entry; a policy with network.mode = \"none\" becomes an allowlist of these). Repeatable.", valueName: "HOST:PORT"))
    var networkAllow: [String] = []

    @Flag(name: .long, help: "Give the command a pseudo-terminal.")
    var tty = false

    @Option(name: .long, help: ArgumentHelp("Observe COMMAND (unconfined) and write the smallest policy on top of --policy that lets the same run succeed.", valueName: "OUT.toml"))
    var learn: String?

    @Option(name: .customLong("dns-hosts"), help: ArgumentHelp("With network.mode = \"allowlist\": a hosts file the supervisor consults first when resolving listed names.", valueName: "FILE"))
    var dnsHosts: String?

    @Option(name: .customLong("dns-upstream"), help: ArgumentHelp("With network.mode = \"allowlist\": the DNS server the supervisor asks (default: the host's resolver).", valueName: "IPv4:PORT"))
    var dnsUpstream: String?

    @OptionGroup var locations: LocationOptions

    @Argument(parsing: .postTerminator, help: "The command and its arguments (after -- or the first argument that is not an option).")
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
        o.bind = bind
        o.roBind = roBind
        o.env = env
        o.cwd = cwd
        o.memory = memory
        o.pids = pids
        o.networkAllow = networkAllow
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
