import ArgumentParser
import CordonCommandLine
import CordonJSON
import CordonRPC
import CordonSystem
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

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
            let path = Self.visible(change["path"]?.stringValue ?? "?", name: true)
            let what = change["change"]?.stringValue ?? "?"
            let kind = change["kind"]?.stringValue ?? "?"
            var line = "\(what) \(kind == "file" ? "" : kind + " ")\(path)"
            if let mode = change["mode"]?.stringValue, let host = change["hostMode"]?.stringValue, mode != host, what != "replaced" {
                line += " (mode \(host) -> \(mode))"
            }
            if let target = change["target"]?.stringValue { line += " -> \(Self.visible(target, name: true))" }
            if change["binary"] == .bool(true) { line += " (binary, \(change["size"]?.intValue ?? 0) bytes)" }
            if change["conflict"] == .bool(true) {
                conflicts += 1
                line += "  CONFLICT: changed on the host since the task started"
            }
            out += line + "\n"
            if !stat, let diff = change["diff"]?.stringValue { out += Self.visible(diff) }
            if !stat, change["diffOmitted"] == .bool(true) { out += "(diff omitted: the answer's diff text is full; use --json per path or read the file)\n" }
        }
        if changes.isEmpty { out += "task \(id) changed nothing that differs from \(answer["workspace"]?.stringValue ?? "its workspace") now\n" }
        if conflicts > 0 {
            out += "\(conflicts) conflict(s): `cordon apply` refuses them; apply the other paths with --path, or `cordon discard \(id)`\n"
        }
        FileDescriptorIO.writeAll(1, out)
    }

    /// Text a task chose, made safe for a terminal: newlines and tabs stay; a carriage return
    /// shows as \r, escape as \e, any other control character, DEL, a C1 control or a bidi or
    /// direction mark as \u{…} — so no escape sequence or overwritten line can hide a change
    /// (--json gives the text as it is).
    static func visible(_ text: String, name: Bool = false) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            let v = scalar.value
            switch v {
            // A name's newline or tab would start a line of its own in the listing.
            case 0x0A where name: out.append(contentsOf: "\\n".unicodeScalars)
            case 0x09 where name: out.append(contentsOf: "\\t".unicodeScalars)
            case 0x0A, 0x09: out.append(scalar)
            case 0x0D: out.append(contentsOf: "\\r".unicodeScalars)
            case 0x1B: out.append(contentsOf: "\\e".unicodeScalars)
            case 0..<0x20, 0x7F...0x9F, 0x061C, 0x200B...0x200F, 0x2028...0x202E, 0x2066...0x2069:
                out.append(contentsOf: "\\u{\(String(v, radix: 16))}".unicodeScalars)
            default: out.append(scalar)
            }
        }
        return String(out)
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

struct CopyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cp",
        abstract: "Copy a file a copy-on-write task left in its layer (an artifact) out, without applying its changes.",
        discussion: "SOURCE is ID:PATH, PATH relative to the task's workspace (`cordon diff ID` lists them). DEST is a file, a directory (the file keeps its name), or - for stdout.")
    @OptionGroup var client: ClientOptions
    @Argument(help: ArgumentHelp("The task and the file: ID:PATH.", valueName: "SOURCE")) var source: String
    @Argument(help: ArgumentHelp("Where to write it: a file, a directory, or -.", valueName: "DEST")) var destination: String

    var parsedSource: (id: Int64, path: String)? {
        guard let colon = source.firstIndex(of: ":"), let id = Int64(source[..<colon]), id > 0 else { return nil }
        let path = String(source[source.index(after: colon)...])
        return path.isEmpty ? nil : (id, path)
    }

    func validate() throws {
        if parsedSource == nil { throw ValidationError("SOURCE: expected ID:PATH (a task id, a colon, a path in its workspace), found \"\(source)\"") }
    }

    func run() throws {
        let (id, path) = parsedSource!
        let connection = try ClientOptions.connect(client.socketPath)
        var target = destination
        if target != "-" && FileSystem.isDirectory(target) { target += "/" + (path.split(separator: "/").last.map(String.init) ?? path) }
        var fd: Int32 = 1
        let temporary = target == "-" ? nil : "\(target).cordon-cp-\(getpid())"
        if let temporary {
            fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                printError("cordon cp: \(target): \(String(cString: strerror(errno)))")
                throw ExitCode(1)
            }
        }
        var offset: Int64 = 0
        var mode: mode_t = 0o644
        do {
            while true {
                let answer = try ClientOptions.call(connection, "task.get", .object([("id", .int(id)), ("path", .string(path)), ("offset", .int(offset))]))
                guard let data = answer["data"]?.stringValue.flatMap({ Data(base64Encoded: $0) }) else {
                    printError("cordon cp: task.get answered without data")
                    throw ExitCode(1)
                }
                let bytes = Array(data)
                let failed = bytes.withUnsafeBytes { FileDescriptorIO.writeFully(fd, $0.baseAddress, $0.count) }
                guard failed == 0 else {
                    printError("cordon cp: \(target): \(String(cString: strerror(failed)))")
                    throw ExitCode(1)
                }
                offset += Int64(bytes.count)
                if let m = answer["mode"]?.stringValue.flatMap({ mode_t($0, radix: 8) }) { mode = m }
                if answer["eof"] == .bool(true) || bytes.isEmpty { break }
            }
        } catch {
            if let temporary { close(fd); unlink(temporary) }
            throw error
        }
        if let temporary {
            // The task's mode bits, narrowed by this process's umask as any new file's are.
            let mask = umask(0)
            umask(mask)
            fchmod(fd, mode & 0o777 & ~mask)
            close(fd)
            guard rename(temporary, target) == 0 else {
                let e = errno
                unlink(temporary)
                printError("cordon cp: \(target): \(String(cString: strerror(e)))")
                throw ExitCode(1)
            }
        }
        if client.json { client.printJSON(.object([("task", .int(id)), ("path", .string(path)), ("to", .string(target)), ("bytes", .int(offset))])) }
    }
}
