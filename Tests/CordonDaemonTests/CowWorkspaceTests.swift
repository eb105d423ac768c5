import CordonJSON
import CordonRPC
import Foundation
import Testing

/// Copy-on-write workspaces through a real cordond, by the unprivileged users of
/// `WorkspaceTests`: the task writes a layer over its caller's directory, the directory stays
/// as it was, and its owner reviews (task.diff), applies (task.apply) or discards the changes.
@Suite(.serialized) struct CowWorkspaceTests {
    typealias W = WorkspaceTests
    static let alice = W.alice, bob = W.bob

    /// `cordon COMMAND --socket … ARGS` run by alice (through a shell, from `dir`).
    static func cordon(_ d: TestDaemon, in dir: String, _ command: String, _ args: String) -> (status: Int32, stdout: String, stderr: String) {
        TestDaemon.exec("/usr/bin/setpriv", ["--reuid=\(alice)", "--regid=\(alice)", "--groups=\(W.socketGroup)", "--",
                                             "/bin/sh", "-c", "cd \(dir) && exec \(TestDaemon.cordon) \(command) --socket \(d.socket) \(args)"])
    }

    static func request(_ method: String, _ params: [(String, JSON)], id: Int = 1) -> JSON {
        .object([("jsonrpc", .string("2.0")), ("id", .int(Int64(id))), ("method", .string(method)), ("params", .object(params))])
    }

    static func submitCow(_ script: String, workspace: String, policy: String = "ws", id: Int = 1) -> JSON {
        request("task.submit", [("argv", .array([.string("/bin/sh"), .string("-c"), .string(script)])), ("policy", .string(policy)), ("wait", .bool(true)),
                                ("workspace", .object([("path", .string(workspace)), ("cow", .bool(true))]))], id: id)
    }

    /// Files of alice's, made as alice (so their ctime is before any task's start).
    static func write(_ text: String, _ path: String, owner: UInt32 = W.alice) throws {
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        chown(path, owner, owner)
    }

    /// Every file under `dir` with its bytes, mode and owner: what "unchanged" means.
    static func snapshot(_ dir: String) -> [String: String] {
        var out: [String: String] = [:]
        let e = FileManager.default.enumerator(atPath: dir)
        while let name = e?.nextObject() as? String {
            var st = stat()
            guard lstat("\(dir)/\(name)", &st) == 0 else { continue }
            let bytes = (st.st_mode & S_IFMT) == S_IFREG ? (FileManager.default.contents(atPath: "\(dir)/\(name)") ?? Data()).base64EncodedString() : ""
            out[name] = "\(String(st.st_mode, radix: 8)) \(st.st_uid):\(st.st_gid) \(bytes)"
        }
        return out
    }

    static func aliceProject(_ layout: W.Layout) throws {
        let d = layout.alices
        try write("one\ntwo\nthree\n", "\(d)/keep.txt")
        try write("bye\n", "\(d)/gone.txt")
        try FileManager.default.createDirectory(atPath: "\(d)/sub", withIntermediateDirectories: false)
        chown("\(d)/sub", alice, alice)
        try write("x\n", "\(d)/sub/x")
        try Data([0, 1, 2, 3, 255]).write(to: URL(fileURLWithPath: "\(d)/bin.dat"))
        chown("\(d)/bin.dat", alice, alice)
    }

    static let edits = "sed -i s/two/TWO/ keep.txt && rm gone.txt && echo new > sub/new.txt && mkdir made && printf '\\000\\001\\002' > bin.dat && chmod 600 sub/x"

    /// The task changes, deletes, adds and makes; the host directory is exactly as before; the
    /// diff shows each change (a unified diff for text, binary marked); apply writes them as
    /// the caller's own files and releases the held changes.
    @Test func theHostStaysAsItWasUntilTheOwnerApplies() throws {
        let layout = try W.Layout()
        try Self.aliceProject(layout)
        let before = Self.snapshot(layout.alices)
        let d = try W.daemon(layout)
        let ran = W.asCaller(Self.alice, d, [Self.submitCow(Self.edits + " && cat sub/new.txt keep.txt", workspace: layout.alices)])
        let result = try #require(ran.first?["result"], "\(ran)")
        #expect(result["exitCode"] == .int(0), "\(result.text)")
        let id = try #require(result["id"]?.intValue)
        #expect((result["changesHeld"]?.intValue ?? 0) > 0, "the record says changes wait for review: \(result.text)")
        #expect(Self.snapshot(layout.alices) == before, "the host directory is untouched")

        let events = try d.call("audit.query", .object([("task", .int(id))]))["events"]?.arrayValue ?? []
        let kept = try #require(events.first { $0["kind"] == .string("changes") }, "\(events)")
        #expect(kept["detail"]?["kept"] == .bool(true), "\(kept.text)")
        let submitted = events.first { $0["kind"] == .string("submitted") }
        #expect(submitted?["detail"]?["cow"] == .bool(true) && submitted?["detail"]?["writable"] == .bool(false), "\(String(describing: submitted?.text))")

        let diff = try #require(W.asCaller(Self.alice, d, [Self.request("task.diff", [("id", .int(id))])]).first?["result"])
        let changes = Dictionary(uniqueKeysWithValues: (diff["changes"]?.arrayValue ?? []).compactMap { c in c["path"]?.stringValue.map { ($0, c) } })
        #expect(Set(changes.keys) == ["keep.txt", "gone.txt", "sub/new.txt", "made", "bin.dat", "sub/x"], "\(diff.text)")
        #expect(changes["keep.txt"]?["change"] == .string("modified"))
        #expect(changes["keep.txt"]?["diff"] == .string("--- a/keep.txt\n+++ b/keep.txt\n@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n"), "\(String(describing: changes["keep.txt"]?.text))")
        #expect(changes["gone.txt"]?["change"] == .string("deleted"))
        #expect(changes["sub/new.txt"]?["change"] == .string("added") && changes["sub/new.txt"]?["diff"] == .string("--- /dev/null\n+++ b/sub/new.txt\n@@ -0,0 +1 @@\n+new\n"))
        #expect(changes["made"]?["change"] == .string("added") && changes["made"]?["kind"] == .string("directory"))
        #expect(changes["bin.dat"]?["binary"] == .bool(true))
        #expect(changes["sub/x"]?["change"] == .string("modified") && changes["sub/x"]?["mode"] == .string("600") && changes["sub/x"]?["hostMode"] == .string("644"))
        #expect(changes.values.allSatisfy { $0["conflict"] == nil })

        let applied = try #require(W.asCaller(Self.alice, d, [Self.request("task.apply", [("id", .int(id))])]).first?["result"])
        #expect(applied["released"] == .bool(true), "\(applied.text)")
        #expect((try? String(contentsOfFile: "\(layout.alices)/keep.txt", encoding: .utf8)) == "one\nTWO\nthree\n")
        #expect(!FileManager.default.fileExists(atPath: "\(layout.alices)/gone.txt"))
        #expect((try? String(contentsOfFile: "\(layout.alices)/sub/new.txt", encoding: .utf8)) == "new\n")
        #expect(FileManager.default.contents(atPath: "\(layout.alices)/bin.dat") == Data([0, 1, 2]))
        var st = stat()
        #expect(stat("\(layout.alices)/sub/x", &st) == 0 && st.st_mode & 0o777 == 0o600)
        for file in ["keep.txt", "sub/new.txt", "made", "bin.dat"] {
            #expect(W.owner("\(layout.alices)/\(file)").map { $0 == (Self.alice, Self.alice) } == true, "\(file) is alice's")
        }
        // Released: nothing more to review, and nothing of it left in the state directory.
        let again = W.asCaller(Self.alice, d, [Self.request("task.diff", [("id", .int(id))])]).first
        #expect(again?["error"]?["code"] == .int(RPCCode.notFound), "\(String(describing: again?.text))")
        #expect(!FileManager.default.fileExists(atPath: "\(d.stateDir)/tasks/\(id)/changes"))
        #expect(try d.call("task.status", .object([("id", .int(id))]))["changesHeld"] == nil)
    }

    /// A host file changed after the task started is a conflict: nothing is applied at all;
    /// the other paths apply alone with `paths`; discard releases the rest.
    @Test func aConflictAppliesNothing() throws {
        let layout = try W.Layout()
        try Self.aliceProject(layout)
        let d = try W.daemon(layout)
        let ran = W.asCaller(Self.alice, d, [Self.submitCow("echo mine >> keep.txt && echo fresh > fresh.txt", workspace: layout.alices)])
        let id = try #require(ran.first?["result"]?["id"]?.intValue, "\(ran)")
        try Self.write("one\ntwo\nthree\nand theirs\n", "\(layout.alices)/keep.txt")
        let refused = W.asCaller(Self.alice, d, [Self.request("task.apply", [("id", .int(id))])]).first
        #expect(refused?["error"]?["code"] == .int(RPCCode.conflict), "\(String(describing: refused?.text))")
        #expect(refused?["error"]?["message"]?.stringValue?.contains("keep.txt") == true)
        #expect(!FileManager.default.fileExists(atPath: "\(layout.alices)/fresh.txt"), "nothing applied")
        let diff = W.asCaller(Self.alice, d, [Self.request("task.diff", [("id", .int(id))])]).first?["result"]
        let keep = diff?["changes"]?.arrayValue?.first { $0["path"] == .string("keep.txt") }
        #expect(keep?["conflict"] == .bool(true), "\(String(describing: diff?.text))")

        let some = W.asCaller(Self.alice, d, [Self.request("task.apply", [("id", .int(id)), ("paths", .array([.string("fresh.txt")]))])]).first
        #expect(some?["result"]?["applied"] == .array([.string("fresh.txt")]) && some?["result"]?["released"] == .bool(false), "\(String(describing: some?.text))")
        #expect((try? String(contentsOfFile: "\(layout.alices)/fresh.txt", encoding: .utf8)) == "fresh\n")
        #expect((try? String(contentsOfFile: "\(layout.alices)/keep.txt", encoding: .utf8)) == "one\ntwo\nthree\nand theirs\n")
        let unknown = W.asCaller(Self.alice, d, [Self.request("task.apply", [("id", .int(id)), ("paths", .array([.string("nothing-here")]))])]).first
        #expect(unknown?["error"]?["code"] == .int(RPCCode.invalidParams), "\(String(describing: unknown?.text))")

        let discarded = W.asCaller(Self.alice, d, [Self.request("task.discard", [("id", .int(id))])]).first
        #expect(discarded?["result"]?["discarded"] != nil, "\(String(describing: discarded?.text))")
        let gone = W.asCaller(Self.alice, d, [Self.request("task.apply", [("id", .int(id))])]).first
        #expect(gone?["error"]?["code"] == .int(RPCCode.notFound))
        let kinds = (try d.call("audit.query", .object([("task", .int(id))]))["events"]?.arrayValue ?? []).compactMap { $0["kind"]?.stringValue }
        #expect(kinds.contains("changes-applied") && kinds.contains("changes-discarded"), "\(kinds)")
    }

    /// Another user can neither see nor apply alice's changes; an admin may discard them but
    /// not apply them (applying writes as the owner, and only the owner acts as themselves).
    @Test func onlyTheOwnerReviewsAndApplies() throws {
        let layout = try W.Layout()
        try Self.aliceProject(layout)
        let d = try W.daemon(layout)
        let id = try #require(W.asCaller(Self.alice, d, [Self.submitCow("echo hi > hi.txt", workspace: layout.alices)]).first?["result"]?["id"]?.intValue)
        for method in ["task.diff", "task.apply", "task.discard"] {
            let answer = W.asCaller(Self.bob, d, [Self.request(method, [("id", .int(id))])]).first
            #expect(answer?["error"]?["code"] == .int(RPCCode.notFound), "\(method): \(String(describing: answer?.text))")
        }
        #expect(throws: RPCError.self) { try d.call("task.apply", .object([("id", .int(id))])) }
        #expect(!FileManager.default.fileExists(atPath: "\(layout.alices)/hi.txt"))
        #expect(try d.call("task.discard", .object([("id", .int(id))]))["discarded"] == .int(1))
    }

    /// Copy-on-write needs only read access: a directory of root's (0755) works, the task
    /// adds to its layer (root's own files stay unwritable to it: their ids are not mapped),
    /// and applying as alice is refused on the host's permissions.
    @Test func aDirectoryTheCallerCanOnlyReadWorksAndCannotBeApplied() throws {
        let layout = try W.Layout()
        let d = try W.daemon(layout)
        let ran = W.asCaller(Self.alice, d, [Self.submitCow("cat readme && echo made > new.txt && ! echo more 2>/dev/null >> readme", workspace: layout.shared)])
        let result = try #require(ran.first?["result"], "\(ran)")
        #expect(result["exitCode"] == .int(0), "\(result.text)")
        #expect((try? String(contentsOfFile: "\(layout.shared)/readme", encoding: .utf8)) == "shared\n")
        #expect(!FileManager.default.fileExists(atPath: "\(layout.shared)/new.txt"))
        let id = try #require(result["id"]?.intValue)
        let refused = W.asCaller(Self.alice, d, [Self.request("task.apply", [("id", .int(id))])]).first
        #expect(refused?["error"]?["code"] == .int(RPCCode.unauthorized), "\(String(describing: refused?.text))")
        #expect(!FileManager.default.fileExists(atPath: "\(layout.shared)/new.txt"))
    }

    /// The agent's loop from the command line, as alice, ten times in a row on the same
    /// directory: `submit --cow --wait` edits, `diff` shows it, `apply` writes it; each round
    /// sees the rounds before it, and the directory never changes before an apply.
    @Test func theCommandLineLoopTenTimes() throws {
        let layout = try W.Layout()
        try Self.write("0\n", "\(layout.alices)/count")
        let d = try W.daemon(layout)
        func cordon(_ command: String, _ args: String) -> (status: Int32, stdout: String, stderr: String) { Self.cordon(d, in: layout.alices, command, args) }
        for round in 1...10 {
            let ran = cordon("submit", "--policy ws --workspace . --cow --wait --json -- /bin/sh -c 'echo $(( $(cat count) + 1 )) > count; printf done'")
            let id = try #require((try? JSON.parse(ran.stdout))?["id"]?.intValue, "\(ran)")
            #expect((try? String(contentsOfFile: "\(layout.alices)/count", encoding: .utf8)) == "\(round - 1)\n", "round \(round): not applied yet")
            let diff = cordon("diff", "\(id)")
            #expect(diff.status == 0 && diff.stdout == "modified count\n--- a/count\n+++ b/count\n@@ -1 +1 @@\n-\(round - 1)\n+\(round)\n", "\(diff)")
            let apply = cordon("apply", "\(id)")
            #expect(apply.status == 0 && apply.stdout == "task \(id): 1 path(s) applied; its changes are released\n", "\(apply)")
            #expect((try? String(contentsOfFile: "\(layout.alices)/count", encoding: .utf8)) == "\(round)\n")
        }
        #expect(W.owner("\(layout.alices)/count").map { $0 == (Self.alice, Self.alice) } == true)
        let misuse = cordon("submit", "--policy ws --workspace .:ro --cow -- /bin/true")
        #expect(misuse.status == 64 && misuse.stderr.contains("--cow: name the directory alone"), "\(misuse)")
        let none = cordon("diff", "999999")
        #expect(none.status == 1 && none.stderr.contains("no task 999999"), "\(none)")
    }

    /// An artifact comes out without applying anything: `cordon cp ID:PATH DEST` writes the
    /// bytes the task left (over several task.get calls for a file past 4 MiB), with its mode;
    /// a directory, a deleted path or an unchanged one is not a file to copy.
    @Test func anArtifactIsCopiedOutWithoutApplying() throws {
        let layout = try W.Layout()
        try Self.aliceProject(layout)
        let d = try W.daemon(layout)
        let script = "mkdir -p dist && head -c 5000000 /dev/urandom > dist/app.bin && chmod 750 dist/app.bin && rm gone.txt"
        let id = try #require(W.asCaller(Self.alice, d, [Self.submitCow(script, workspace: layout.alices)]).first?["result"]?["id"]?.intValue)
        let out = "\(layout.base)/out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        chown(out, Self.alice, Self.alice)
        func cordon(_ args: String) -> (status: Int32, stdout: String, stderr: String) { Self.cordon(d, in: layout.alices, "cp", args) }
        let copied = cordon("\(id):dist/app.bin \(out)")
        #expect(copied.status == 0, "\(copied)")
        let blob = try #require(FileManager.default.subpathsOfDirectory(atPath: "\(d.stateDir)/tasks/\(id)/changes/blobs").first)
        #expect(FileManager.default.contents(atPath: "\(out)/app.bin") == FileManager.default.contents(atPath: "\(d.stateDir)/tasks/\(id)/changes/blobs/\(blob)"))
        #expect(FileManager.default.contents(atPath: "\(out)/app.bin")?.count == 5_000_000)
        var st = stat()
        #expect(stat("\(out)/app.bin", &st) == 0 && st.st_mode & 0o777 == 0o750 && st.st_uid == Self.alice)
        #expect(!FileManager.default.fileExists(atPath: "\(layout.alices)/dist"), "nothing applied")
        for (source, why) in [("\(id):dist", "is a directory"), ("\(id):gone.txt", "was deleted by the task"), ("\(id):keep.txt", "left no keep.txt"), ("nonsense", "expected ID:PATH")] {
            let refused = cordon("\(source) \(out)/x")
            #expect(refused.status != 0 && refused.stderr.contains(why), "\(source): \(refused)")
        }
        #expect(!FileManager.default.fileExists(atPath: "\(out)/x"))
        let bob = W.asCaller(Self.bob, d, [Self.request("task.get", [("id", .int(id)), ("path", .string("dist/app.bin"))])]).first
        #expect(bob?["error"]?["code"] == .int(RPCCode.notFound), "\(String(describing: bob?.text))")
    }

    static func file(_ path: String, _ text: String, mode: Int64? = nil) -> JSON {
        var m: [(String, JSON)] = [("path", .string(path)), ("data", .string(Data(text.utf8).base64EncodedString()))]
        if let mode { m.append(("mode", .int(mode))) }
        return .object(m)
    }

    /// Files in and out with no host directory at all: files put into a scratch workspace are
    /// there (with their modes) when the task starts, and what it makes comes back with
    /// task.get; there is nothing to apply to.
    @Test func filesGoInAndArtifactsComeOutOfAScratchWorkspace() throws {
        let layout = try W.Layout()
        let d = try W.daemon(layout)
        let submit = Self.request("task.submit", [
            ("argv", .array([.string("./run.sh")])), ("policy", .string("ws")), ("wait", .bool(true)),
            ("files", .array([Self.file("in/data.txt", "hello\n"), Self.file("run.sh", "#!/bin/sh\nstat -c '%a %U' run.sh in/data.txt; pwd; tr a-z A-Z < in/data.txt > out.txt\n", mode: 0o755)])),
        ])
        let result = try #require(W.asCaller(Self.alice, d, [submit]).first?["result"])
        #expect(result["exitCode"] == .int(0), "\(result.text)")
        let id = try #require(result["id"]?.intValue)
        #expect((try? String(contentsOfFile: "\(d.stateDir)/tasks/\(id)/stdout", encoding: .utf8)) == "755 sandbox\n644 sandbox\n/workspace\n")
        let got = try #require(W.asCaller(Self.alice, d, [Self.request("task.get", [("id", .int(id)), ("path", .string("out.txt"))])]).first?["result"])
        #expect(got["data"]?.stringValue.flatMap { Data(base64Encoded: $0) } == Data("HELLO\n".utf8) && got["eof"] == .bool(true), "\(got.text)")
        let diff = try #require(W.asCaller(Self.alice, d, [Self.request("task.diff", [("id", .int(id))])]).first?["result"])
        #expect(Set((diff["changes"]?.arrayValue ?? []).compactMap { $0["path"]?.stringValue }) == ["in", "in/data.txt", "run.sh", "out.txt"], "\(diff.text)")
        #expect(diff["workspace"] == .null)
        let apply = W.asCaller(Self.alice, d, [Self.request("task.apply", [("id", .int(id))])]).first
        #expect(apply?["error"]?["code"] == .int(RPCCode.invalidParams) && apply?["error"]?["message"]?.stringValue?.contains("scratch") == true)
        let events = try d.call("audit.query", .object([("task", .int(id))]))["events"]?.arrayValue ?? []
        #expect(events.first { $0["kind"] == .string("submitted") }?["detail"]?["scratch"] == .bool(true))
    }

    /// From the command line: `--put` sends this machine's files (as the user reads them, with
    /// their modes) into a scratch workspace, `cordon cp ID:PATH -` brings the result back.
    @Test func theCommandLinePutsAndCopies() throws {
        let layout = try W.Layout()
        let d = try W.daemon(layout)
        try Self.write("#!/bin/sh\nwc -c < in/data.txt > count.txt\n", "\(layout.alices)/script.sh")
        chmod("\(layout.alices)/script.sh", 0o750)
        try Self.write("12345", "\(layout.alices)/data.txt")
        func cordon(_ command: String, _ args: String) -> (status: Int32, stdout: String, stderr: String) { Self.cordon(d, in: layout.alices, command, args) }
        let ran = cordon("submit", "--policy ws --put script.sh=run.sh --put data.txt=in/data.txt --wait --json -- ./run.sh")
        let id = try #require((try? JSON.parse(ran.stdout))?["id"]?.intValue, "\(ran)")
        let copied = cordon("cp", "\(id):count.txt -")
        #expect(copied.status == 0 && copied.stdout == "5\n", "\(copied)")
        let unreadable = cordon("submit", "--policy ws --put /etc/shadow -- true")
        #expect(unreadable.status == 2 && unreadable.stderr.contains("/etc/shadow"), "\(unreadable)")
        let direct = cordon("submit", "--policy ws --workspace . --put data.txt -- true")
        #expect(direct.status == 64 && direct.stderr.contains("--put: files go into a --cow workspace"), "\(direct)")
    }

    /// A tree deeper than any path can name (600 levels of 10-byte names, made with relative
    /// steps) is captured to 256 levels and listed there, without the daemon walking on.
    @Test func aTreeTooDeepToNameIsListedNotWalked() throws {
        let layout = try W.Layout()
        let d = try W.daemon(layout)
        let deep = "python3 -c \"import os\nfor i in range(600): os.mkdir('d123456789'); os.chdir('d123456789')\nopen('f', 'w').write('bottom')\""
        let ran = W.asCaller(Self.alice, d, [Self.submitCow(deep, workspace: layout.alices)])
        let result = try #require(ran.first?["result"], "\(ran)")
        #expect(result["exitCode"] == .int(0), "\(result.text)")
        let id = try #require(result["id"]?.intValue)
        let diff = try #require(W.asCaller(Self.alice, d, [Self.request("task.diff", [("id", .int(id))])]).first?["result"])
        let changes = diff["changes"]?.arrayValue ?? []
        let unsupported = changes.filter { $0["change"] == .string("unsupported") }
        #expect(unsupported.count == 1 && changes.count <= 257, "\(changes.count) changes, \(unsupported.count) unsupported")
        #expect(try d.call("system.health")["status"] == .string("ok"))
    }

    /// Removing a host directory checks everything under it: a file edited in place there after
    /// the task started (which leaves the directory's own times alone) is a conflict, and
    /// nothing is removed.
    @Test func aDeletedDirectoryWithANewerFileUnderItConflicts() throws {
        let layout = try W.Layout()
        try Self.aliceProject(layout)
        let d = try W.daemon(layout)
        let id = try #require(W.asCaller(Self.alice, d, [Self.submitCow("rm -rf sub", workspace: layout.alices)]).first?["result"]?["id"]?.intValue)
        usleep(20_000)
        let handle = try #require(FileHandle(forWritingAtPath: "\(layout.alices)/sub/x"))
        try handle.write(contentsOf: Data("edited after the task started\n".utf8))
        try handle.close()
        let refused = W.asCaller(Self.alice, d, [Self.request("task.apply", [("id", .int(id))])]).first
        #expect(refused?["error"]?["code"] == .int(RPCCode.conflict), "\(String(describing: refused?.text))")
        #expect((try? String(contentsOfFile: "\(layout.alices)/sub/x", encoding: .utf8)) == "edited after the task started\n")
    }

    /// A directory the task deleted and made again is applied only as a whole: one path under
    /// it alone is refused (it would replace the host's directory); applying it whole works,
    /// and what is left applies after, the held changes shrinking as they are applied.
    @Test func aRemadeDirectoryIsAppliedWhole() throws {
        let layout = try W.Layout()
        try Self.aliceProject(layout)
        let d = try W.daemon(layout)
        let script = "rm -rf sub && mkdir sub && echo x > sub/new && echo more >> keep.txt"
        let id = try #require(W.asCaller(Self.alice, d, [Self.submitCow(script, workspace: layout.alices)]).first?["result"]?["id"]?.intValue)
        let part = W.asCaller(Self.alice, d, [Self.request("task.apply", [("id", .int(id)), ("paths", .array([.string("sub/new")]))])]).first
        #expect(part?["error"]?["code"] == .int(RPCCode.invalidParams) && part?["error"]?["message"]?.stringValue?.contains("made again") == true, "\(String(describing: part?.text))")
        #expect(FileManager.default.fileExists(atPath: "\(layout.alices)/sub/x"), "nothing removed")
        let whole = W.asCaller(Self.alice, d, [Self.request("task.apply", [("id", .int(id)), ("paths", .array([.string("sub")]))])]).first?["result"]
        #expect(whole?["released"] == .bool(false), "\(String(describing: whole?.text))")
        #expect(!FileManager.default.fileExists(atPath: "\(layout.alices)/sub/x") && FileManager.default.fileExists(atPath: "\(layout.alices)/sub/new"))
        let diff = W.asCaller(Self.alice, d, [Self.request("task.diff", [("id", .int(id))])]).first?["result"]
        #expect((diff?["changes"]?.arrayValue ?? []).compactMap { $0["path"]?.stringValue } == ["keep.txt"], "\(String(describing: diff?.text))")
        let rest = W.asCaller(Self.alice, d, [Self.request("task.apply", [("id", .int(id))])]).first?["result"]
        #expect(rest?["released"] == .bool(true) && rest?["applied"] == .array([.string("keep.txt")]), "\(String(describing: rest?.text))")
    }

    /// A read-only directory (0555) the task opened, filled and set back takes the new file on
    /// apply and is read-only again after; `cordon diff` shows a name with an escape sequence
    /// escaped, never raw.
    @Test func aReadOnlyDirectoryTakesItsNewFilesAndNamesAreShownEscaped() throws {
        let layout = try W.Layout()
        let ro = "\(layout.alices)/ro"
        try FileManager.default.createDirectory(atPath: ro, withIntermediateDirectories: false)
        chown(ro, Self.alice, Self.alice)
        chmod(ro, 0o555)
        let d = try W.daemon(layout)
        let script = "chmod u+w ro && echo new > ro/new && chmod 555 ro && printf x > \"$(printf 'a\\033[2Kb')\" && printf y > \"$(printf 'n\\nmodified z')\""
        let id = try #require(W.asCaller(Self.alice, d, [Self.submitCow(script, workspace: layout.alices)]).first?["result"]?["id"]?.intValue)
        let shown = Self.cordon(d, in: layout.alices, "diff", "\(id)")
        #expect(shown.status == 0 && shown.stdout.contains("added a\\e[2Kb") && !shown.stdout.contains("\u{1B}"), "\(shown)")
        #expect(shown.stdout.contains("added n\\nmodified z\n") && !shown.stdout.contains("\nmodified z"), "\(shown)")
        let applied = W.asCaller(Self.alice, d, [Self.request("task.apply", [("id", .int(id))])]).first?["result"]
        #expect(applied?["released"] == .bool(true), "\(String(describing: applied?.text))")
        #expect((try? String(contentsOfFile: "\(ro)/new", encoding: .utf8)) == "new\n")
        var st = stat()
        #expect(stat(ro, &st) == 0 && st.st_mode & 0o777 == 0o555)
    }

    /// A name whose first character is a combining mark ("C/" then U+0301 "evil") is split at
    /// the "/" byte, as the kernel splits it. The task makes C/y and that name; C/y is applied
    /// (C with it, which leaves the held changes); the host's C is then swapped for a symlink to
    /// a place outside; the rest is applied: nothing is written through the symlink.
    @Test func aCombiningMarkAfterASlashDoesNotHideADirectory() throws {
        let layout = try W.Layout()
        let outside = "\(layout.base)/outside"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: false)
        chown(outside, Self.alice, Self.alice)
        let d = try W.daemon(layout)
        let script = "mkdir C && printf y > C/y && printf x > \"C/$(printf '\\314\\201')evil\""
        let id = try #require(W.asCaller(Self.alice, d, [Self.submitCow(script, workspace: layout.alices)]).first?["result"]?["id"]?.intValue)
        let first = W.asCaller(Self.alice, d, [Self.request("task.apply", [("id", .int(id)), ("paths", .array([.string("C/y")]))])]).first
        #expect(first?["result"]?["applied"] == .array([.string("C"), .string("C/y")]), "\(String(describing: first?.text))")
        try FileManager.default.removeItem(atPath: "\(layout.alices)/C")
        symlink(outside, "\(layout.alices)/C")
        lchown("\(layout.alices)/C", Self.alice, Self.alice)
        let rest = W.asCaller(Self.alice, d, [Self.request("task.apply", [("id", .int(id))])]).first
        #expect(rest?["error"] != nil, "\(String(describing: rest?.text))")
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty, "nothing written through the symlink")
    }

    /// The changes belong to the directory the task ran on: one moved away and another put at
    /// its path is not it, and neither diff nor apply compares with or writes into it.
    @Test func aDirectoryReplacedAtThePathIsNotTheOne() throws {
        let layout = try W.Layout()
        try Self.aliceProject(layout)
        let d = try W.daemon(layout)
        let id = try #require(W.asCaller(Self.alice, d, [Self.submitCow("echo hi > hi.txt", workspace: layout.alices)]).first?["result"]?["id"]?.intValue)
        try FileManager.default.moveItem(atPath: layout.alices, toPath: "\(layout.allowed)/alice-old")
        try FileManager.default.createDirectory(atPath: layout.alices, withIntermediateDirectories: false)
        chown(layout.alices, Self.alice, Self.alice)
        for method in ["task.diff", "task.apply"] {
            let answer = W.asCaller(Self.alice, d, [Self.request(method, [("id", .int(id))])]).first
            #expect(answer?["error"]?["code"] == .int(RPCCode.conflict) && answer?["error"]?["message"]?.stringValue?.contains("not the directory the task ran on") == true,
                    "\(method): \(String(describing: answer?.text))")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: layout.alices).isEmpty)
    }

    /// "Clean and regenerate": the task deletes gen/ and makes it again, some files as they
    /// were. Applying it keeps every file the task left, equal to the old ones or not.
    @Test func aRegeneratedDirectoryKeepsItsUnchangedFiles() throws {
        let layout = try W.Layout()
        let gen = "\(layout.alices)/gen"
        try FileManager.default.createDirectory(atPath: "\(gen)/sub", withIntermediateDirectories: true)
        for dir in [gen, "\(gen)/sub"] { chown(dir, Self.alice, Self.alice) }
        try Self.write("generated v1\n", "\(gen)/sub/same.txt")
        try Self.write("old\n", "\(gen)/old.txt")
        let d = try W.daemon(layout)
        let script = "rm -rf gen && mkdir -p gen/sub && echo 'generated v1' > gen/sub/same.txt && echo new > gen/new.txt"
        let id = try #require(W.asCaller(Self.alice, d, [Self.submitCow(script, workspace: layout.alices)]).first?["result"]?["id"]?.intValue)
        let applied = W.asCaller(Self.alice, d, [Self.request("task.apply", [("id", .int(id))])]).first?["result"]
        #expect(applied?["released"] == .bool(true), "\(String(describing: applied?.text))")
        #expect((try? String(contentsOfFile: "\(gen)/sub/same.txt", encoding: .utf8)) == "generated v1\n")
        #expect((try? String(contentsOfFile: "\(gen)/new.txt", encoding: .utf8)) == "new\n")
        #expect(!FileManager.default.fileExists(atPath: "\(gen)/old.txt"))
    }

    /// Files put in that cannot all be written (the layer is too small) end the task before
    /// it starts, and nothing of them is kept where no quota or method reaches it.
    @Test func filesThatDoNotFitLeaveNothingBehind() throws {
        let layout = try W.Layout()
        let d = try TestDaemon(config: "[socket]\ngroup = \"\(W.socketGroup)\"\n", policies: [
            "small": W.policy("small", allow: [layout.allowed]) + "[limits]\noutput = \"1M\"\n",
        ])
        chmod(d.dir, 0o755)
        let big = String(repeating: "z", count: 700_000)
        let submit = Self.request("task.submit", [("argv", .array([.string("/bin/true")])), ("policy", .string("small")), ("wait", .bool(true)),
                                                  ("files", .array([Self.file("big", big)]))])
        let result = try #require(W.asCaller(Self.alice, d, [submit]).first?["result"])
        #expect(result["reason"] == .string("setup-failed"), "\(result.text)")
        let id = try #require(result["id"]?.intValue)
        #expect(!FileManager.default.fileExists(atPath: "\(d.stateDir)/tasks/\(id)/changes"))
        let diff = W.asCaller(Self.alice, d, [Self.request("task.diff", [("id", .int(id))])]).first
        #expect(diff?["error"]?["code"] == .int(RPCCode.notFound))
    }

    /// A file put into an existing private directory keeps that directory's mode (the task
    /// sees 0700, and applying changes no mode); two names Swift calls equal (NFC and NFD) are
    /// two paths: applying one applies only it.
    @Test func putKeepsDirectoryModesAndNamesAreBytes() throws {
        let layout = try W.Layout()
        let priv = "\(layout.alices)/private"
        try FileManager.default.createDirectory(atPath: priv, withIntermediateDirectories: false)
        chown(priv, Self.alice, Self.alice)
        chmod(priv, 0o700)
        let d = try W.daemon(layout)
        let submit = Self.request("task.submit", [
            ("argv", .array([.string("/bin/sh"), .string("-c"), .string("stat -c %a private; printf n > \"$(printf 'caf\\303\\251')\"; printf d > \"$(printf 'cafe\\314\\201')\"")])),
            ("policy", .string("ws")), ("wait", .bool(true)),
            ("workspace", .object([("path", .string(layout.alices)), ("cow", .bool(true))])), ("files", .array([Self.file("private/cfg", "x")])),
        ])
        let result = try #require(W.asCaller(Self.alice, d, [submit]).first?["result"])
        let id = try #require(result["id"]?.intValue)
        #expect((try? String(contentsOfFile: "\(d.stateDir)/tasks/\(id)/stdout", encoding: .utf8)) == "700\n")
        let answer = W.asCaller(Self.alice, d, [Self.request("task.apply", [("id", .int(id)), ("paths", .array([.string("caf\u{e9}")]))])]).first
        let one = answer?["result"]
        #expect(one?["applied"] == .array([.string("caf\u{e9}")]), "\(String(describing: answer?.text)) \(result.text)")
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: layout.alices).map { Array($0.utf8) }).contains(Array("caf\u{e9}".utf8)))
        #expect(!Set(try FileManager.default.contentsOfDirectory(atPath: layout.alices).map { Array($0.utf8) }).contains(Array("cafe\u{301}".utf8)))
        let rest = W.asCaller(Self.alice, d, [Self.request("task.apply", [("id", .int(id))])]).first?["result"]
        #expect(rest?["released"] == .bool(true), "\(String(describing: rest?.text))")
        var st = stat()
        #expect(stat(priv, &st) == 0 && st.st_mode & 0o777 == 0o700 && FileManager.default.fileExists(atPath: "\(priv)/cfg"))
    }

    /// Files put into a copy-on-write workspace sit over the host's (which stays as it was);
    /// files with a directly bound workspace, bad paths and duplicates are refused and nothing runs.
    @Test func filesGoIntoACopyOnWriteWorkspaceOnly() throws {
        let layout = try W.Layout()
        try Self.aliceProject(layout)
        let d = try W.daemon(layout)
        func submit(_ files: [JSON], workspace: JSON?) -> JSON {
            var p: [(String, JSON)] = [("argv", .array([.string("/bin/cat"), .string("keep.txt")])), ("policy", .string("ws")), ("wait", .bool(true)),
                                       ("files", .array(files))]
            if let workspace { p.append(("workspace", workspace)) }
            return Self.request("task.submit", p)
        }
        let cow = JSON.object([("path", .string(layout.alices)), ("cow", .bool(true))])
        let over = try #require(W.asCaller(Self.alice, d, [submit([Self.file("keep.txt", "from the caller\n")], workspace: cow)]).first?["result"])
        let id = try #require(over["id"]?.intValue)
        #expect((try? String(contentsOfFile: "\(d.stateDir)/tasks/\(id)/stdout", encoding: .utf8)) == "from the caller\n")
        #expect((try? String(contentsOfFile: "\(layout.alices)/keep.txt", encoding: .utf8)) == "one\ntwo\nthree\n")
        let refusals: [([JSON], JSON?, String)] = [
            ([Self.file("x", "1")], .object([("path", .string(layout.alices))]), "copy-on-write"),
            ([Self.file("../x", "1")], nil, "without empty"),
            ([Self.file("/etc/x", "1")], nil, "without empty"),
            ([Self.file("a", "1"), Self.file("a", "2")], nil, "given twice"),
            ([Self.file("a", "1"), Self.file("a/b", "2")], nil, "a file and a directory"),
            ([.object([("path", .string("a")), ("data", .string("%%%"))])], nil, "base64"),
        ]
        for (files, workspace, why) in refusals {
            let answer = W.asCaller(Self.alice, d, [submit(files, workspace: workspace)]).first
            #expect(answer?["error"]?["code"] == .int(RPCCode.invalidParams) && answer?["error"]?["message"]?.stringValue?.contains(why) == true,
                    "\(why): \(String(describing: answer?.text))")
        }
        #expect(try d.call("task.list", .object([("all", .bool(true))])).arrayValue?.count == 1, "nothing else was queued")
    }

    /// The layer is bounded by the task's output cap: a task writing past it gets ENOSPC, and
    /// what it wrote before is what is kept.
    @Test func theLayerIsBoundedByTheOutputCap() throws {
        let layout = try W.Layout()
        let d = try TestDaemon(config: "[socket]\ngroup = \"\(W.socketGroup)\"\n", policies: [
            "small": W.policy("small", allow: [layout.allowed]) + "[limits]\noutput = \"1M\"\n",
        ])
        chmod(d.dir, 0o755)
        let ran = W.asCaller(Self.alice, d, [Self.submitCow("dd if=/dev/zero of=big bs=64k count=64 2>&1; echo status $?", workspace: layout.alices, policy: "small")])
        let result = try #require(ran.first?["result"], "\(ran)")
        let id = try #require(result["id"]?.intValue)
        let stdout = (try? String(contentsOfFile: "\(d.stateDir)/tasks/\(id)/stdout", encoding: .utf8)) ?? ""
        #expect(stdout.contains("No space left on device"), "\(stdout)")
        let diff = try #require(W.asCaller(Self.alice, d, [Self.request("task.diff", [("id", .int(id))])]).first?["result"])
        let big = diff["changes"]?.arrayValue?.first { $0["path"] == .string("big") }
        #expect((big?["size"]?.intValue ?? 0) <= 1 << 20, "\(diff.text)")
    }

    /// A sparse file takes no room in the layer whatever its length: one longer than the layer
    /// (200 MB under the default policy's 256 MB file_size, past its 64 MB output cap) is
    /// listed, not expanded onto cordond's disk, and never applied.
    @Test func aSparseFileIsNotExpanded() throws {
        let layout = try W.Layout()
        let d = try W.daemon(layout)
        let ran = W.asCaller(Self.alice, d, [Self.submitCow("truncate -s 200M huge && echo ok > small", workspace: layout.alices)])
        let id = try #require(ran.first?["result"]?["id"]?.intValue, "\(ran)")
        #expect(ran.first?["result"]?["exitCode"] == .int(0))
        let diff = try #require(W.asCaller(Self.alice, d, [Self.request("task.diff", [("id", .int(id))])]).first?["result"])
        let changes = diff["changes"]?.arrayValue ?? []
        #expect(changes.first { $0["path"] == .string("huge") }?["change"] == .string("unsupported"), "\(diff.text)")
        #expect(changes.first { $0["path"] == .string("small") }?["change"] == .string("added"))
        let held = try FileManager.default.subpathsOfDirectory(atPath: "\(d.stateDir)/tasks/\(id)/changes").reduce(0) { sum, name in
            sum + ((try? FileManager.default.attributesOfItem(atPath: "\(d.stateDir)/tasks/\(id)/changes/\(name)")[.size] as? Int) ?? 0)
        }
        #expect(held < 1 << 20, "\(held) bytes held")
        let applied = try #require(W.asCaller(Self.alice, d, [Self.request("task.apply", [("id", .int(id))])]).first?["result"])
        #expect(applied["applied"] == .array([.string("small")]) && applied["skipped"] == .array([.string("huge")]), "\(applied.text)")
        #expect(!FileManager.default.fileExists(atPath: "\(layout.alices)/huge"))
    }
}
