import ArgumentParser
import CordonJSON
import CordonRPC
import CordonSystem

// `cordon diff`, `cordon apply` and `cordon discard`: reviewing what a copy-on-write task
// (`cordon submit --workspace DIR --cow`) changed, then writing it into DIR or letting it go.

struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Show what a copy-on-write task changed in its workspace (unified diffs for text; binary files, deletions and mode changes listed).")
    @OptionGroup var client: ClientOptions
    @Flag(name: .customLong("stat"), help: "One line per changed path, no diff text.") var stat = false
    @Argument(help: "The task id.") var id: Int64

    func run() throws {
        let answer = try client.call("task.diff", .object([("id", .int(id))]))
        if client.json { return client.printJSON(answer) }
        let changes = answer["changes"]?.arrayValue ?? []
        var out = ""
        var conflicts = 0
        for change in changes {
            let path = change["path"]?.stringValue ?? "?"
            let what = change["change"]?.stringValue ?? "?"
            let kind = change["kind"]?.stringValue ?? "?"
            var line = "\(what) \(kind == "file" ? "" : kind + " ")\(path)"
            if let mode = change["mode"]?.stringValue, let host = change["hostMode"]?.stringValue, mode != host, what != "replaced" {
                line += " (mode \(host) -> \(mode))"
            }
            if let target = change["target"]?.stringValue { line += " -> \(target)" }
            if change["binary"] == .bool(true) { line += " (binary, \(change["size"]?.intValue ?? 0) bytes)" }
            if change["conflict"] == .bool(true) {
                conflicts += 1
                line += "  CONFLICT: changed on the host since the task started"
            }
            out += line + "\n"
            if !stat, let diff = change["diff"]?.stringValue { out += diff }
            if !stat, change["diffOmitted"] == .bool(true) { out += "(diff omitted: the answer's diff text is full; use --json per path or read the file)\n" }
        }
        if changes.isEmpty { out += "task \(id) changed nothing that differs from \(answer["workspace"]?.stringValue ?? "its workspace") now\n" }
        if conflicts > 0 {
            out += "\(conflicts) conflict(s): `cordon apply` refuses them; apply the other paths with --path, or `cordon discard \(id)`\n"
        }
        FileDescriptorIO.writeAll(1, out)
    }
}

struct ApplyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Write a copy-on-write task's changes into its workspace, as you; nothing at all if any changed path was also changed on the host since the task started.")
    @OptionGroup var client: ClientOptions
    @Option(name: .customLong("path"), help: ArgumentHelp("Only this path (relative to the workspace) and what is under it. Repeatable. The changes stay held until all are applied or discarded.", valueName: "PATH")) var paths: [String] = []
    @Argument(help: "The task id.") var id: Int64

    func run() throws {
        var params: [(String, JSON)] = [("id", .int(id))]
        if !paths.isEmpty { params.append(("paths", .array(paths.map(JSON.string)))) }
        let answer = try client.call("task.apply", .object(params))
        if client.json { return client.printJSON(answer) }
        let applied = answer["applied"]?.arrayValue?.count ?? 0
        var out = "task \(id): \(applied) path(s) applied"
        let skipped = answer["skipped"]?.arrayValue?.count ?? 0
        if skipped > 0 { out += ", \(skipped) left as they were (unchanged, or a fifo, socket or device)" }
        out += answer["released"] == .bool(true) ? "; its changes are released\n" : "; the rest stay held (`cordon diff \(id)`)\n"
        FileDescriptorIO.writeAll(1, out)
    }
}

struct DiscardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "discard", abstract: "Let a copy-on-write task's held changes go without applying them.")
    @OptionGroup var client: ClientOptions
    @Argument(help: "The task id.") var id: Int64

    func run() throws {
        let answer = try client.call("task.discard", .object([("id", .int(id))]))
        if client.json { return client.printJSON(answer) }
        FileDescriptorIO.writeAll(1, "task \(id): \(answer["discarded"]?.intValue ?? 0) change(s) discarded\n")
    }
}
