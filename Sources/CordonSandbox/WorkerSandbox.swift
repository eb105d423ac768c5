import CordonConfig
import CordonJSON
import CordonPolicy
import CordonSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One run of a helper program of Cordon's own (`cordon-scan unpack`, `cordon-scan check`) as
/// a worker: in the built-in `default` policy's sandbox — no network (or only the hosts given),
/// no capabilities, no writable host path but the binds given here (a read-only one of root's
/// behind a directory private to root is cloned by this process: SpawnPlan.withPrivateBindsCloned), the built-in seccomp profile — with limits the
/// caller sets (the worker is Cordon's, not a caller's request: its limits are set, not
/// tightened). Its standard output and error go to files only root can open, created for this
/// run; the output is untrusted bytes for the caller to read under a cap.
///
/// The daemon's image preparation and the install gate run their workers through this, so the
/// confinement of every Cordon worker is decided in one place.
public enum WorkerSandbox {
    /// Numbers this process's output files: two workers started in the same microsecond (two
    /// installs in cordond, tests in parallel) had the same names, and the second failed (EEXIST).
    private static let started = Atomic<UInt64>(0)

    public struct Bind: Sendable {
        public var host: String
        public var inside: String
        public var writable: Bool
        public init(_ host: String, at inside: String, writable: Bool = false) {
            self.host = host
            self.inside = inside
            self.writable = writable
        }
    }

    public struct Limits: Sendable {
        public var memoryBytes: UInt64
        public var wallSeconds: Double
        public var cpuCores: Double?
        public init(memoryBytes: UInt64, wallSeconds: Double, cpuCores: Double? = nil) {
            self.memoryBytes = memoryBytes
            self.wallSeconds = wallSeconds
            self.cpuCores = cpuCores
        }
    }

    public struct Outcome: Sendable {
        public var result: SandboxResult
        /// Its standard output, at most `stdoutLimit` bytes (nil: it printed more).
        public var stdout: [UInt8]?
        /// The last non-empty line of its standard error (its reason, when it failed).
        public var lastError: String
        /// The end of its standard error (at most 4000 bytes, whole lines): for a record.
        public var errorTail: String

        /// "exit status 2", "killed at its wall-clock limit", a set-up failure: for a message.
        public var how: String {
            result.reason == .exited ? "exit status \(result.exitCode ?? -1)" : result.setupFailure.map { "\($0)" } ?? result.reason.rawValue
        }
        public var succeeded: Bool { result.exitCode == 0 }
    }

    public struct Problem: Error, CustomStringConvertible, Sendable {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// Runs `argv` (its first element a path inside the sandbox) with `binds`. `scratch` is a
    /// root-only directory that gets this run's output files (removed before returning).
    /// `stdin` is a descriptor to hand over (a read-only regular file passes straight through),
    /// or /dev/null. `network`: the egress allowlist ("host:port" rules, as a policy's
    /// `network.allow` spells them) — empty, no network at all; otherwise those and nothing
    /// else, through the egress supervisor, names resolved as `environment.egress` says. `env`:
    /// variables set besides the built-in policy's.
    public static func run(argv: [String], binds: [Bind], network: [String] = [], env: [(String, String)] = [], limits: Limits, stdin: Int32? = nil, scratch: String,
                           environment: SandboxEnvironment, seccompCache: String?, stdoutLimit: Int = 1 << 20) throws(Problem) -> Outcome {
        let plan: SpawnPlan
        do {
            var overrides = PolicyOverrides()
            for bind in binds {
                overrides.binds.append(try PolicyOverrides.bind("\(bind.host):\(bind.inside)", writable: bind.writable))
            }
            for (name, value) in env { overrides.env.append(Policy.EnvVar(name, value)) }
            for rule in network {
                guard case .success(let parsed) = EgressRule.parse(rule), !parsed.isBroad else {
                    throw Problem("the worker's network allowlist: \"\(rule)\" is not one host:port")
                }
                overrides.networkAllow.append(rule)
            }
            // The built-in default, not a config directory's: a worker's confinement is Cordon's to fix.
            let builtIn = PolicyStore(configDir: nil)
            let base = try builtIn.loadPolicy("default")
            guard base.network.mode == .none, base.capabilities.keep.isEmpty, base.filesystem.readWrite.isEmpty, base.filesystem.image == nil else {
                throw Problem("the built-in default policy is not what a worker's sandbox needs")
            }
            var policy = try overrides.apply(to: base)
            policy.limits.memoryBytes = limits.memoryBytes
            policy.limits.wallTimeSeconds = limits.wallSeconds
            policy.limits.cpuTimeSeconds = limits.wallSeconds * max(1, limits.cpuCores ?? 1)
            if let cores = limits.cpuCores { policy.limits.cpuCores = cores }
            plan = try builtIn.spawnPlan(for: policy, cacheDir: seccompCache, callerEnvironment: [:])
        } catch let problem as Problem {
            throw problem
        } catch {
            throw Problem("the worker's sandbox: \(error)")
        }
        let stamp = "\(getpid())-\(started.wrappingAdd(1, ordering: .relaxed).newValue)-\(UInt64(MonotonicClock.now * 1e6))"
        let stdoutPath = "\(scratch)/.worker-\(stamp).stdout", stderrPath = "\(scratch)/.worker-\(stamp).stderr"
        let out = open(stdoutPath, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        let err = open(stderrPath, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        let null = stdin == nil ? open("/dev/null", O_RDONLY | O_CLOEXEC) : -1
        defer {
            for fd in [out, err, null] where fd >= 0 { close(fd) }
            unlink(stdoutPath)
            unlink(stderrPath)
        }
        guard out >= 0, err >= 0, stdin != nil || null >= 0 else { throw Problem("the worker's output files in \(scratch): \(SystemError.text(errno))") }
        var io = SandboxIO()
        io.stdin = stdin ?? null
        io.stdout = out
        io.stderr = err
        io.relaySignals = false
        var env = environment
        env.writeOwnership = .sourceOwner
        let result = Sandbox.run(plan: plan, argv: argv, environment: env, io: io, wallTime: limits.wallSeconds)
        let errors = readTail(stderrPath, 4000)
        let tail = String(decoding: errors.firstIndex(of: 10).map { errors.count == 4000 ? Array(errors[($0 + 1)...]) : errors } ?? errors, as: UTF8.self)
        let said = tail.split(separator: "\n").last(where: { !$0.isEmpty }).map(String.init) ?? ""
        return Outcome(result: result, stdout: try? FileSystem.read(stdoutPath, limit: stdoutLimit), lastError: said, errorTail: tail)
    }

    /// The last `count` bytes of a file (its size is the worker's to choose: only the end is read).
    static func readTail(_ path: String, _ count: Int) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return [] }
        let start = max(0, Int64(st.st_size) - Int64(count))
        var out = [UInt8](repeating: 0, count: count)
        let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(start)) }
        return n > 0 ? Array(out.prefix(n)) : []
    }
}
