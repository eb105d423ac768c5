import ArgumentParser
import CordonCommandLine
import CordonConfig
import CordonJSON
import CordonPolicy
import CordonRPC
import CordonSystem
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

// `cordon session create|exec|ls|close`: a persistent sandbox whose commands share its
// namespaces, cgroup, Landlock domain, seccomp filter and workspace (docs/daemon.md, "Sessions").

struct SessionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "session", abstract: "Persistent sandboxes: create one, run commands in it, list and close them.",
        subcommands: [SessionCreateCommand.self, SessionExecCommand.self, SessionListCommand.self, SessionCloseCommand.self])
}

struct SessionCreateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Start a session; prints its id.",
        discussion: """
        The session's policy, limits, environment and workspace are a task's (`cordon submit`): \
        its memory, pids and cpu limits cover every command it runs together. It ends when \
        closed, after --ttl, or once no command has run for --idle. With --workspace DIR --cow \
        what its commands change waits, after it ends, for `cordon diff ID` and `cordon apply ID`.
        """)
    @OptionGroup var client: ClientOptions
    @Option(name: .customLong("policy"), help: "Policy name (default: the daemon's default policy).") var policy: String?
    @Option(name: .customLong("label"), help: "A label recorded with the session.") var label: String?
    @Option(name: .customLong("ttl"), help: "The session ends this long after it started (default 1h; at most the policy's wall_time).") var ttl: String?
    @Option(name: .customLong("idle"), help: "...or once no command has run for this long (default 10m).") var idle: String?
    @Option(name: .customLong("timeout"), help: "Each command's wall-clock limit (e.g. 30s); may only tighten the policy's.") var timeout: String?
    @Option(name: .customLong("memory"), help: "Memory limit of the whole session; may only tighten the policy's.") var memory: String?
    @Option(name: .customLong("pids"), help: "Process limit of the whole session; may only tighten the policy's.") var pids: String?
    @Option(name: .customLong("env"), help: ArgumentHelp("A variable for every command, for a NAME the policy passes. Repeatable.", valueName: "NAME=VALUE")) var env: [String] = []
    @Option(name: .customLong("workspace"), help: ArgumentHelp("A directory of yours at /workspace, writable unless :ro (the policy must allow it).", valueName: "DIR[:ro]")) var workspace: String?
    @Flag(name: .customLong("cow"), help: "The session sees --workspace through a copy-on-write layer, reviewed after it ends.") var cow = false
    @Option(name: .customLong("put"), help: ArgumentHelp("A file put into /workspace before the session starts (a --cow or scratch workspace). Repeatable.", valueName: "LOCAL[=PATH]")) var put: [String] = []

    var options: SubmitOptions {
        var o = SubmitOptions()
        (o.socket, o.json, o.policy, o.label, o.workspace, o.cow, o.put) = (client.socket, client.json, policy, label, workspace, cow, put)
        (o.timeout, o.memory, o.pids, o.env) = (timeout, memory, pids, env)
        return o
    }

    func validate() throws {
        if let message = options.validationError(needsCommand: false) { throw ValidationError(message) }
        for (name, value) in [("--ttl", ttl), ("--idle", idle)] {
            if let value, Units.parseDuration(value).map({ $0 >= 1 }) != true { throw ValidationError("\(name): expected a duration of at least 1s, found \"\(value)\"") }
        }
    }

    func run() throws {
        var params = try options.requestParams(for: "cordon session create")
        if let ttl, let d = Units.parseDuration(ttl) { params.append(("ttl", .double(d))) }
        if let idle, let d = Units.parseDuration(idle) { params.append(("idle", .double(d))) }
        let session = try client.call("session.create", .object(params))
        if client.json { return client.printJSON(session) }
        FileDescriptorIO.writeAll(1, "\(session["id"]?.intValue ?? 0)\n")
    }
}

struct SessionExecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec", abstract: "Run a command in a session; its output is printed as it comes and its status is this command's.",
        discussion: "Exits with the command's status: its exit code, 128+N for signal N, 127 when it could not be started, 125 when it did not run to an exit (timeout, output limit, the session ended).")
    @OptionGroup var client: ClientOptions
    @Option(name: .customLong("timeout"), help: "This command's wall-clock limit; may only tighten the policy's.") var timeout: String?
    @Option(name: .customLong("cwd"), help: "Its working directory in the sandbox (default: the policy's).") var cwd: String?
    @Option(name: .customLong("env"), help: ArgumentHelp("A variable for this command, for a NAME the policy passes. Repeatable.", valueName: "NAME=VALUE")) var env: [String] = []
    @Flag(name: .customLong("stdin"), help: "Send this process's stdin (read to its end first) as the command's.") var stdin = false
    @Argument(help: "The session id.") var id: Int64
    @Argument(parsing: .postTerminator, help: "The command and its arguments.") var command: [String] = []

    func validate() throws {
        if command.isEmpty { throw ValidationError("missing COMMAND: cordon session exec ID -- COMMAND [ARGS...]") }
        if let timeout, Units.parseDuration(timeout).map({ $0 > 0 }) != true { throw ValidationError("--timeout: bad duration \"\(timeout)\"") }
        for e in env where !e.contains("=") || e.hasPrefix("=") { throw ValidationError("--env: expected NAME=VALUE, found \"\(e)\"") }
    }

    func run() throws {
        var params: [(String, JSON)] = [("id", .int(id)), ("argv", .array(command.map(JSON.string))), ("stream", .bool(!client.json))]
        if let timeout, let d = Units.parseDuration(timeout) { params.append(("timeout", .double(d))) }
        if let cwd { params.append(("cwd", .string(cwd))) }
        if !env.isEmpty {
            params.append(("env", envObject(env)))
        }
        if stdin {
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                bytes += buffer[0..<n]
                if bytes.count > 1 << 20 { throw ValidationError("--stdin: more than 1 MiB") }
            }
            params.append(("stdinBase64", .string(Data(bytes).base64EncodedString())))
        }
        let answer = try client.call("session.exec", .object(params), onNotification: { method, p in
            if method == "session.output" { writeOutput(p) }
        })
        if client.json { client.printJSON(answer) }
        if let error = answer["error"]?.stringValue { printError("cordon session exec: \(inert(error))") }
        let status: Int32
        switch answer["reason"]?.stringValue {
        case "exited"?: status = Int32(clamping: answer["exitCode"]?.intValue ?? 0)
        case "signaled"?: status = 128 + Int32(clamping: answer["signal"]?.intValue ?? 0)
        case "not-started"?: status = 127
        default:
            if !client.json { printError("cordon session exec: the command did not run to an exit: \(answer["reason"]?.stringValue ?? "?")") }
            status = 125
        }
        if status != 0 { throw ExitCode(status) }
    }
}

struct SessionListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List your open sessions (admins: --all for everyone's).")
    @OptionGroup var client: ClientOptions
    @Flag(name: .customLong("all"), help: "Every user's sessions (cordond admins).") var all = false

    func run() throws {
        let list = try client.call("session.list", .object(all ? [("all", .bool(true))] : []))
        if client.json { return client.printJSON(list) }
        var rows = [["ID", "STATE", "POLICY", "UID", "EXECS", "RUNNING", "IDLE", "EXPIRES", "WORKSPACE"]]
        for s in list.arrayValue ?? [] {
            let w = s["workspace"].map { w in (w["path"]?.stringValue ?? "") + (w["cow"]?.boolValue == true ? " (cow)" : "") } ?? "-"
            rows.append(["\(s["id"]?.intValue ?? 0)", s["state"]?.stringValue ?? "?", s["policy"]?.stringValue ?? "?", "\(s["uid"]?.intValue ?? 0)",
                         "\(s["execs"]?.intValue ?? 0)", "\(s["running"]?.intValue ?? 0)", "\(Int(s["idleSeconds"]?.doubleValue ?? 0))s",
                         s["expiresAt"]?.stringValue ?? "?", w])
        }
        printTable(rows)
    }
}

struct SessionCloseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "close", abstract: "End a session: its commands are killed, a --cow workspace's changes kept for `cordon diff`.")
    @OptionGroup var client: ClientOptions
    @Argument(help: "The session id.") var id: Int64

    func run() throws {
        let record = try client.call("session.close", .object([("id", .int(id))]))
        if client.json { return client.printJSON(record) }
        var out = "session \(id) closed"
        if let held = record["changesHeld"]?.intValue, held > 0 { out += "; its changes wait for `cordon diff \(id)` and `cordon apply \(id)`" }
        FileDescriptorIO.writeAll(1, out + "\n")
    }
}
