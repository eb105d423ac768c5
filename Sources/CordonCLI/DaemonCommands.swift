import ArgumentParser
import CordonCommandLine
import CordonConfig
import CordonJSON
import CordonPolicy
import CordonRPC
import CordonSandbox
import CordonSystem
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// The options every command that talks to cordond takes.
struct ClientOptions: ParsableArguments {
    @Option(name: .customLong("socket"), help: "cordond's socket (default: $CORDON_SOCKET or /run/cordon/cordon.sock).")
    var socket: String?

    @Flag(name: .customLong("json"), help: "Print the daemon's answer as JSON.")
    var json = false

    var socketPath: String { Locations.socketPath(socket) }

    /// Calls `method` on a connection of its own; see `Self.call`.
    func call(_ method: String, _ params: JSON = .object([]), onNotification: ((String, JSON) -> Void)? = nil) throws -> JSON {
        try Self.call(try Self.connect(socketPath), method, params, onNotification: onNotification)
    }

    static func connect(_ path: String) throws -> RPCClient {
        do { return try RPCClient(socketPath: path) } catch {
            printError("cordon: \(error)")
            throw ExitCode(1)
        }
    }

    /// Calls `method`; connection and daemon errors become a message and exit status 1
    /// (a refusal 77, as sysexits' EX_NOPERM).
    static func call(_ client: RPCClient, _ method: String, _ params: JSON, onNotification: ((String, JSON) -> Void)? = nil) throws -> JSON {
        do {
            return try client.call(method, params, onNotification: onNotification)
        } catch let error as RPCError {
            printError("cordon: \(method): \(error.message)")
            throw ExitCode(error.code == RPCCode.unauthorized ? 77 : 1)
        } catch {
            printError("cordon: \(error)")
            throw ExitCode(1)
        }
    }

    func printJSON(_ value: JSON) { FileDescriptorIO.writeAll(1, value.text + "\n") }
}

/// Output chunks of `task.output` notifications, written to our stdout/stderr.
/// `--env NAME=VALUE` options (checked to hold a `=`) as a request's `env` object.
func envObject(_ env: [String]) -> JSON {
    .object(env.map { e in
        let eq = e.firstIndex(of: "=")!
        return (String(e[..<eq]), .string(String(e[e.index(after: eq)...])))
    })
}

func writeOutput(_ params: JSON) {
    guard let data = params["data"]?.stringValue, let bytes = Data(base64Encoded: data) else { return }
    let fd: Int32 = params["stream"]?.stringValue == "stderr" ? 2 : 1
    Array(bytes).withUnsafeBytes { FileDescriptorIO.writeAll(fd, $0.baseAddress!, $0.count) }
}

/// The status a shell would see for a task record: the one the sandbox decided, which the
/// daemon's record carries. A record from a cordond that did not store it is derived as before:
/// its exit code, 128+N for signal N, 126/127 when the command could not be executed or found,
/// 125 when it did not run to an exit (setup failure, cancelled, lost).
func exitStatus(_ task: JSON) -> Int32 {
    if let status = task["result"]?["exitStatus"]?.intValue { return Int32(clamping: status) }
    if let code = task["exitCode"]?.intValue { return Int32(clamping: code) }
    if let sig = task["signal"]?.intValue { return 128 + Int32(clamping: sig) }
    if let status = task["result"]?["setupFailure"]?["step"]?.stringValue, status == "execve" {
        return task["result"]?["setupFailure"]?["errno"]?.intValue == 2 ? 127 : 126
    }
    return 125
}

/// The options of `cordon submit`, whichever parser filled them.
public struct SubmitOptions: Equatable, Sendable {
    public var socket: String?
    public var json = false
    public var policy: String?
    public var wait = false
    public var label: String?
    public var timeout: String?
    public var memory: String?
    public var pids: String?
    public var env: [String] = []
    public var stdin: String?
    /// `DIR`, `DIR:rw` or `DIR:ro`: a directory of the caller's bound at /workspace.
    public var workspace: String?
    /// The workspace through a copy-on-write layer: reviewed with `cordon diff`, then applied.
    public var cow = false
    /// `LOCAL[=PATH]`: a file of this machine's put at PATH (default: its name) in /workspace.
    public var put: [String] = []
    public var command: [String] = []

    public init() {}

    /// `--workspace`'s directory and whether it is writable, or nil with no `--workspace`.
    var workspaceRequest: (path: String, writable: Bool)? {
        guard let workspace else { return nil }
        for (suffix, writable) in [(":ro", false), (":rw", true)] where workspace.hasSuffix(suffix) {
            return (String(workspace.dropLast(suffix.count)), writable)
        }
        return (workspace, true)
    }

    /// The same checks for both parsers; the message is what the user sees.
    func validationError(needsCommand: Bool = true) -> String? {
        if needsCommand && command.isEmpty { return "missing COMMAND: cordon submit [OPTIONS] -- COMMAND [ARGS...]" }
        if let timeout, Units.parseDuration(timeout).map({ $0 > 0 }) != true { return "--timeout: bad duration \"\(timeout)\"" }
        if let memory, Units.parseSize(memory) == nil { return "--memory: bad size \"\(memory)\"" }
        if let pids, Int(pids).map({ $0 >= 1 }) != true { return "--pids: expected a number of processes, found \"\(pids)\"" }
        for e in env where !e.contains("=") || e.hasPrefix("=") { return "--env: expected NAME=VALUE, found \"\(e)\"" }
        if let w = workspaceRequest, w.path.isEmpty { return "--workspace: expected DIR, DIR:rw or DIR:ro, found \"\(workspace!)\"" }
        if cow && workspace == nil { return "--cow: needs --workspace DIR (the directory the task changes through its own layer)" }
        for item in put where item.isEmpty || item.hasPrefix("=") || item.hasSuffix("=") {
            return "--put: expected LOCAL or LOCAL=PATH, found \"\(item)\""
        }
        if !put.isEmpty && workspace != nil && !cow {
            return "--put: files go into a --cow workspace, or a scratch one without --workspace (put them into your directory yourself)"
        }
        if cow, let workspace, workspace.hasSuffix(":ro") || workspace.hasSuffix(":rw") {
            return "--cow: name the directory alone (--workspace DIR --cow): a copy-on-write workspace is neither :ro nor :rw"
        }
        return nil
    }

    /// Submits (and with --wait, waits and writes the output) over one connection. Throws
    /// ExitCode for everything but success.
    public func execute() throws {
        var params: [(String, JSON)] = [("argv", .array(command.map { .string($0) }))]
        params += try requestParams(for: "cordon submit")
        if wait { params.append(("wait", .bool(true))) }
        let client = try ClientOptions.connect(Locations.socketPath(socket))
        let task = try ClientOptions.call(client, "task.submit", .object(params))
        if json {
            FileDescriptorIO.writeAll(1, task.text + "\n")
        } else if !wait {
            FileDescriptorIO.writeAll(1, "\(task["id"]?.intValue ?? 0)\n")
            return
        } else if let id = task["id"] {
            _ = try ClientOptions.call(client, "task.logs", .object([("id", id)]), onNotification: { _, p in writeOutput(p) })
        }
        if wait {
            let status = exitStatus(task)
            if status != 0 { throw ExitCode(status) }
        }
    }

    /// The request's members but its command: policy, label, limits, workspace, files, env,
    /// stdin (task.submit's, which session.create shares). `command` names the caller in errors.
    func requestParams(for caller: String) throws -> [(String, JSON)] {
        var params: [(String, JSON)] = []
        if let policy { params.append(("policy", .string(policy))) }
        if let label { params.append(("label", .string(label))) }
        var limits: [(String, JSON)] = []
        if let timeout, let d = Units.parseDuration(timeout) { limits.append(("wallTime", .double(d))) }
        if let memory, let n = Units.parseSize(memory) { limits.append(("memory", .int(Int64(clamping: n)))) }
        if let pids, let n = Int64(pids) { limits.append(("pids", .int(n))) }
        if !limits.isEmpty { params.append(("limits", .object(limits))) }
        if let w = workspaceRequest {
            // The daemon takes an absolute path and follows no symlink: the directory is named
            // as this process resolves it (relative to here, links followed), and cordond then
            // opens that with the caller's own rights.
            guard let real = FileSystem.realPath(w.path) else {
                FileDescriptorIO.writeAll(2, "\(caller): --workspace \(w.path): \(String(cString: strerror(errno)))\n")
                throw ExitCode(2)
            }
            params.append(("workspace", .object(cow ? [("path", .string(real)), ("cow", .bool(true))]
                                                     : [("path", .string(real)), ("writable", .bool(w.writable))])))
        }
        if !put.isEmpty {
            var files: [JSON] = []
            for item in put {
                let (local, path) = item.firstIndex(of: "=").map { (String(item[..<$0]), String(item[item.index(after: $0)...])) }
                    ?? (item, String(item.split(separator: "/").last ?? Substring(item)))
                let bytes: [UInt8]
                do { bytes = try FileSystem.read(local, limit: 1 << 30) } catch {
                    FileDescriptorIO.writeAll(2, "\(caller): --put \(local): \(error)\n")
                    throw ExitCode(2)
                }
                var st = stat()
                let mode = stat(local, &st) == 0 ? Int64(st.st_mode & 0o777) : 0o644
                files.append(.object([("path", .string(path)), ("data", .string(Data(bytes).base64EncodedString())), ("mode", .int(mode))]))
            }
            params.append(("files", .array(files)))
        }
        if !env.isEmpty {
            params.append(("env", envObject(env)))
        }
        if let stdin {
            let bytes: [UInt8]
            do { bytes = stdin == "-" ? try Self.readAll(0) : try FileSystem.read(stdin, limit: 1 << 20) } catch {
                printError("\(caller): --stdin: \(error)")
                throw ExitCode(2)
            }
            params.append(("stdinBase64", .string(Data(bytes).base64EncodedString())))
        }
        return params
    }

    private static func readAll(_ fd: Int32) throws(SystemError) -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw SystemError("read", path: "stdin", errno: errno) }
            if n == 0 { return out }
            out += buffer[0..<n]
            if out.count > 1 << 20 { throw SystemError("read (more than 1 MiB)", path: "stdin", errno: EFBIG) }
        }
    }
}

/// `cordon submit` on the hot path, like RunFastPath: well-formed invocations skip
/// ArgumentParser's start-up; anything else is nil and goes to it. A test checks both agree.
public enum SubmitFastPath {
    public static func parse(_ arguments: ArraySlice<String>) -> SubmitOptions? {
        var options = SubmitOptions()
        let command = FastArguments.scan(arguments, flags: ["--json", "--wait", "--cow"],
                                         options: ["--socket", "--policy", "--label", "--timeout", "--memory", "--pids", "--env", "--stdin", "--workspace", "--put"]) { name, value in
            switch name {
            case "--json": options.json = true
            case "--wait": options.wait = true
            case "--cow": options.cow = true
            case "--socket": options.socket = value
            case "--policy": options.policy = value
            case "--label": options.label = value
            case "--timeout": options.timeout = value
            case "--memory": options.memory = value
            case "--pids": options.pids = value
            case "--env": options.env.append(value)
            case "--workspace": options.workspace = value
            case "--put": options.put.append(value)
            default: options.stdin = value
            }
        }
        guard let command else { return nil }
        options.command = command
        return options
    }

    /// Runs a parsed `cordon submit`; returns the exit status.
    public static func execute(_ options: SubmitOptions) -> Int32 {
        if let message = options.validationError() {
            printError("cordon submit: \(message)")
            return 64
        }
        do { try options.execute() } catch let code as ExitCode { return code.rawValue } catch {
            printError("cordon: \(error)")
            return 1
        }
        return 0
    }
}

struct SubmitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit", abstract: "Submit a task to cordond.",
        discussion: """
        Without --wait, prints the task id. With --wait, waits for the task, writes its output to
        stdout and stderr, and exits with its status (125 when it did not run to an exit).

        A submitted task runs under the policy as an admin installed it: --timeout, --memory and \
        --pids only tighten its limits, --env only fills variables its process.pass_env lists, \
        and there is no --bind: the one host directory a caller adds is their own --workspace, \
        where the policy allows one.
        """)

    @OptionGroup var client: ClientOptions
    @Option(name: .customLong("policy"), help: "Policy name (default: the daemon's default policy).") var policy: String?
    @Flag(name: .customLong("wait"), help: "Wait for the task and print its output.") var wait = false
    @Option(name: .customLong("label"), help: "A label recorded with the task.") var label: String?
    @Option(name: .customLong("timeout"), help: "Wall-clock limit (e.g. 30s); may only tighten the policy's.") var timeout: String?
    @Option(name: .customLong("memory"), help: "Memory limit (e.g. 256MiB); may only tighten the policy's.") var memory: String?
    @Option(name: .customLong("pids"), help: "Process limit; may only tighten the policy's.") var pids: String?
    @Option(name: .customLong("env"), help: ArgumentHelp("A variable for the task, for a NAME the policy passes (process.pass_env); any other NAME is an error. Repeatable.", valueName: "NAME=VALUE")) var env: [String] = []
    @Option(name: .customLong("stdin"), help: "A file whose contents are the task's stdin ('-': this process's stdin).") var stdin: String?
    @Option(name: .customLong("workspace"), help: ArgumentHelp("A directory of yours, bound at /workspace (also the task's working directory), writable unless :ro. The policy must allow it ([workspace] allow); cordond opens it with your own rights.", valueName: "DIR[:ro]")) var workspace: String?
    @Option(name: .customLong("put"), help: ArgumentHelp("A file of yours put into /workspace before the task starts, at PATH (default: its name), with its mode: into a --cow workspace, or without --workspace a scratch one (copy what the task leaves out with `cordon cp`). Repeatable.", valueName: "LOCAL[=PATH]")) var put: [String] = []
    @Flag(name: .customLong("cow"), help: "The task sees --workspace through a copy-on-write layer: the directory is only read, and what the task changes waits for `cordon diff` and `cordon apply` (or `cordon discard`).") var cow = false
    @Argument(parsing: .postTerminator, help: "The command and its arguments.") var command: [String] = []

    var options: SubmitOptions {
        var o = SubmitOptions()
        (o.socket, o.json, o.policy, o.wait, o.label, o.workspace, o.cow, o.put) = (client.socket, client.json, policy, wait, label, workspace, cow, put)
        (o.timeout, o.memory, o.pids, o.env, o.stdin, o.command) = (timeout, memory, pids, env, stdin, command)
        return o
    }

    func validate() throws {
        if let message = options.validationError() { throw ValidationError(message) }
    }

    func run() throws { try options.execute() }
}

struct TasksCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tasks", abstract: "List your tasks (admins: --all for everyone's).")
    @OptionGroup var client: ClientOptions
    @Flag(name: .customLong("all"), help: "Every user's tasks (cordond admins).") var all = false
    @Option(name: .customLong("state"), help: "Only tasks in this state (queued, running, finished, cancelled, lost).") var state: [String] = []
    @Option(name: .customLong("limit"), help: "At most this many, newest first.") var limit = 50

    func run() throws {
        var params: [(String, JSON)] = [("limit", .int(Int64(limit)))]
        if all { params.append(("all", .bool(true))) }
        if !state.isEmpty { params.append(("states", .array(state.map { .string($0) }))) }
        let list = try client.call("task.list", .object(params))
        if client.json { return client.printJSON(list) }
        var rows = [["ID", "STATE", "REASON", "EXIT", "POLICY", "UID", "SUBMITTED", "COMMAND"]]
        for t in list.arrayValue ?? [] {
            let exit = t["exitCode"]?.intValue.map { "\($0)" } ?? t["signal"]?.intValue.map { "sig\($0)" } ?? "-"
            let argv = (t["argv"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: " ")
            rows.append(["\(t["id"]?.intValue ?? 0)", t["state"]?.stringValue ?? "?", t["reason"]?.stringValue ?? "-", exit,
                         t["policy"]?.stringValue ?? "?", "\(t["submitter"]?["uid"]?.intValue ?? 0)",
                         t["submittedAt"]?.stringValue ?? "", argv.count > 60 ? String(argv.prefix(57)) + "..." : argv])
        }
        printTable(rows)
    }
}

/// Prints rows as aligned columns. Cells carry other users' strings (argv, labels, event
/// details), so each is made inert first (`inert`): no terminal control sequence, line break
/// or bidirectional override reaches the reader's screen, and one row stays one line; and each
/// is cut to 160 characters, so padding cannot wrap text to where a row starts (`--json` has
/// everything).
func printTable(_ rows: [[String]]) {
    let rows = rows.map { $0.map { cell in
        let safe = inert(cell)
        return safe.count > 160 ? String(safe.prefix(157)) + "..." : safe
    } }
    guard let first = rows.first else { return }
    var widths = first.map(\.count)
    for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
    var out = ""
    for row in rows {
        for (i, cell) in row.enumerated() {
            out += i == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count + 2)
        }
        out += "\n"
    }
    FileDescriptorIO.writeAll(1, out)
}

struct LogsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Print a task's output (stdout to stdout, stderr to stderr).")
    @OptionGroup var client: ClientOptions
    @Flag(name: [.customShort("f"), .customLong("follow")], help: "Keep printing until the task ends.") var follow = false
    @Option(name: .customLong("stream"), help: "stdout, stderr or both.") var stream = "both"
    @Argument(help: "The task id.") var id: Int64

    func run() throws {
        let params: JSON = .object([("id", .int(id)), ("follow", .bool(follow)), ("stream", .string(stream))])
        let end = try client.call("task.logs", params, onNotification: { method, p in
            if method == "task.output" {
                if client.json { client.printJSON(p) } else { writeOutput(p) }
            }
        })
        if client.json { client.printJSON(end) }
    }
}

struct CancelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cancel", abstract: "Cancel a queued or running task (kills its whole cgroup).")
    @OptionGroup var client: ClientOptions
    @Argument(help: "The task id.") var id: Int64

    func run() throws {
        let task = try client.call("task.cancel", .object([("id", .int(id))]))
        if client.json { return client.printJSON(task) }
        if task["cancelled"]?.boolValue == true {
            FileDescriptorIO.writeAll(1, "task \(id) cancelled\n")
        } else {
            FileDescriptorIO.writeAll(1, "task \(id) had already ended (\(task["state"]?.stringValue ?? "?"), \(task["reason"]?.stringValue ?? "?"))\n")
        }
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "cordond's version and health.")
    @OptionGroup var client: ClientOptions

    func run() throws {
        let version = try client.call("system.version")
        let health = try client.call("system.health")
        if client.json { return client.printJSON(.object([("version", version), ("health", health)])) }
        var out = "cordond \(version["version"]?.stringValue ?? "?") (pid \(version["pid"]?.intValue ?? 0), up since \(version["startedAt"]?.stringValue ?? "?")) on \(client.socketPath)\n"
        out += "health: \(health["status"]?.stringValue ?? "?")\n"
        if case .object(let checks)? = health["checks"] {
            for (name, check) in checks {
                out += "  \(check["ok"]?.boolValue == true ? "ok  " : "FAIL") \(name): \(check["detail"]?.stringValue ?? "")\n"
            }
        }
        FileDescriptorIO.writeAll(1, out)
        if health["status"]?.stringValue != "ok" { throw ExitCode(1) }
    }
}

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Query cordond's audit log: tasks and events.",
        discussion: "Non-admins see only their own records.")
    @OptionGroup var client: ClientOptions
    @Option(name: .customLong("since"), help: "Only records from this long ago on (e.g. 1h, 7d).") var since: String?
    @Option(name: .customLong("user"), help: "Only this user's records (name or uid).") var user: String?
    @Option(name: .customLong("policy"), help: "Only tasks under this policy.") var policy: String?
    @Option(name: .customLong("task"), help: "One task: its full record and every event.") var task: Int64?
    @Flag(name: .customLong("denials"), help: "Only refusals: denied syscalls, denied egress, refused requests.") var denials = false
    @Flag(name: .customLong("calls"), help: "Tool calls instead of tasks: who called which tool, how it ended, how long it took.") var calls = false
    @Option(name: .customLong("limit"), help: "At most this many of each.") var limit = 200

    func validate() throws {
        if let since, Units.parseDuration(since) == nil { throw ValidationError("--since: bad duration \"\(since)\" (e.g. 30m, 1h, 7d)") }
    }

    func run() throws {
        var params: [(String, JSON)] = [("limit", .int(Int64(limit)))]
        if let since, let d = Units.parseDuration(since) { params.append(("since", .double(max(0, UTCTime.epochSeconds() - d)))) }
        if let user { params.append(("user", .string(user))) }
        if let policy { params.append(("policy", .string(policy))) }
        if let task { params.append(("task", .int(task))) }
        if denials { params.append(("denials", .bool(true))) }
        if calls { params.append(("calls", .bool(true))) }
        let answer = try client.call("audit.query", .object(params))
        if client.json { return client.printJSON(answer) }
        if calls {
            var rows = [["CALL", "TIME", "UID", "TOOL", "OUTCOME", "LATENCY", "ARGS", "RESULT", "DENIED", "MESSAGE"]]
            for c in answer["calls"]?.arrayValue ?? [] {
                let denied = (c["denials"]?.arrayValue ?? []).map { d in
                    let what = d["what"]?.stringValue ?? "?"
                    switch d["kind"]?.stringValue {
                    case "syscall": return "syscall \(what)"
                    case "lookup": return "lookup \(what)"
                    default: return "connect \(what)"
                    }
                }
                rows.append(["\(c["id"]?.intValue ?? 0)", c["time"]?.stringValue ?? "", "\(c["uid"]?.intValue ?? 0)", c["tool"]?.stringValue ?? "",
                             c["outcome"]?.stringValue ?? "", "\(Int((c["latencySeconds"]?.doubleValue ?? 0) * 1000))ms",
                             "\(c["argumentBytes"]?.intValue ?? 0)B", "\(c["resultBytes"]?.intValue ?? 0)B",
                             denied.isEmpty ? "-" : denied.joined(separator: ", "), c["message"]?.stringValue ?? ""])
            }
            if rows.count > 1 { printTable(rows) } else { print("no tool calls") }
            return
        }
        var rows = [["TASK", "STATE", "REASON", "EXIT", "POLICY", "UID", "CPU", "PEAK MEM", "FINISHED", "COMMAND"]]
        for t in answer["tasks"]?.arrayValue ?? [] {
            let cpu = (t["cpuUserSeconds"]?.doubleValue ?? 0) + (t["cpuSystemSeconds"]?.doubleValue ?? 0)
            rows.append(["\(t["id"]?.intValue ?? 0)", t["state"]?.stringValue ?? "?", t["reason"]?.stringValue ?? "-",
                         t["exitCode"]?.intValue.map { "\($0)" } ?? "-", t["policy"]?.stringValue ?? "?",
                         "\(t["submitter"]?["uid"]?.intValue ?? 0)", "\(Int(cpu * 1000))ms",
                         t["peakMemoryBytes"]?.intValue.map { Units.formatSize(UInt64($0)) } ?? "-",
                         t["finishedAt"]?.stringValue ?? "-", (t["argv"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: " ")])
        }
        if rows.count > 1 { printTable(rows) }
        let events = answer["events"]?.arrayValue ?? []
        if !events.isEmpty {
            if rows.count > 1 { FileDescriptorIO.writeAll(1, "\n") }
            var eventRows = [["TIME", "KIND", "TASK", "UID", "DETAIL"]]
            for e in events {
                eventRows.append([e["time"]?.stringValue ?? "", e["kind"]?.stringValue ?? "", e["task"]?.intValue.map { "\($0)" } ?? "-",
                                  e["uid"]?.intValue.map { "\($0)" } ?? "-", e["detail"]?.text ?? ""])
            }
            printTable(eventRows)
        }
    }
}

struct MetricsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "metrics", abstract: "cordond's metrics in the Prometheus text format (admins).")
    @OptionGroup var client: ClientOptions

    func run() throws {
        let answer = try client.call("system.metrics")
        if client.json { return client.printJSON(answer) }
        FileDescriptorIO.writeAll(1, answer["text"]?.stringValue ?? "")
    }
}

/// `text` with control characters (C0, DEL, C1), line and paragraph separators and bidi
/// overrides and isolates written as `\u{XX}` escapes, and backslashes doubled, so the
/// printed form is unambiguous.
func inert(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.utf8.count)
    for scalar in text.unicodeScalars {
        let v = scalar.value
        if v < 0x20 || v == 0x7F || (0x80...0x9F).contains(v) || v == 0x2028 || v == 0x2029
            || (0x202A...0x202E).contains(v) || (0x2066...0x2069).contains(v) || v == 0x200E || v == 0x200F || v == 0x061C {
            out += "\\u{" + String(v, radix: 16) + "}"
        } else if scalar == "\\" {
            out += "\\\\"
        } else {
            out.unicodeScalars.append(scalar)
        }
    }
    return out
}
