import CordonJSON
import CordonRPC
import Foundation
import Synchronization
import Testing

/// Workspaces through a real cordond, by two unprivileged users (uids 61001 and 61002, each
/// with a primary group of the same number, both in the socket's group 61100): a caller's own
/// directory is bound at /workspace and what the task writes there is the caller's; a
/// directory the caller could not use themselves is refused however it is named (another
/// user's, through a symlink, with `..`, outside the policy's places); and the directory
/// mounted is the one opened at submit, whatever its path names by the time the task runs.
@Suite(.serialized) struct WorkspaceTests {
    static let alice: UInt32 = 61001, bob: UInt32 = 61002, socketGroup: UInt32 = 61100

    /// One base directory (root's, 0755) holding each user's own directory (0700), a shared
    /// directory of root's (0755), and a place outside the policy's `workspace.allow`.
    final class Layout {
        /// One per layout: the suites that use layouts run side by side.
        let base = "/tmp/cordond-workspaces-\(getpid())-\(Layout.next.add(1, ordering: .relaxed).newValue)"
        static let next = Atomic<Int>(0)
        var allowed: String { "\(base)/projects" }
        var alices: String { "\(allowed)/alice" }
        var bobs: String { "\(allowed)/bob" }
        var shared: String { "\(allowed)/shared" }
        var outside: String { "\(base)/elsewhere/alice" }

        init() throws {
            try? FileManager.default.removeItem(atPath: base)
            for dir in [alices, bobs, shared, outside] { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
            for dir in [base, allowed, "\(base)/elsewhere", shared] { chmod(dir, 0o755) }
            for (dir, uid) in [(alices, alice), (bobs, bob), (outside, alice)] {
                chown(dir, uid, uid)
                chmod(dir, 0o700)
            }
            try "from bob\n".write(toFile: "\(bobs)/secret", atomically: true, encoding: .utf8)
            chown("\(bobs)/secret", bob, bob)
            try "shared\n".write(toFile: "\(shared)/readme", atomically: true, encoding: .utf8)
        }

        deinit { try? FileManager.default.removeItem(atPath: base) }
    }

    static func policy(_ name: String, allow: [String]) -> String {
        let places = allow.map { "\"\($0)\"" }.joined(separator: ", ")
        return "[policy]\nname = \"\(name)\"\nextends = [\"default\"]\n[workspace]\nallow = [\(places)]\n[access]\nusers = [\"\(alice)\", \"\(bob)\"]\n"
    }

    static func daemon(_ layout: Layout, config: String = "") throws -> TestDaemon {
        let d = try TestDaemon(config: "[socket]\ngroup = \"\(socketGroup)\"\n" + config, policies: [
            "ws": policy("ws", allow: [layout.allowed]),
            "nows": "[policy]\nname = \"nows\"\nextends = [\"default\"]\n[access]\nusers = [\"\(alice)\", \"\(bob)\"]\n",
        ])
        chmod(d.dir, 0o755)
        return d
    }

    /// `requests` sent as `uid` (primary group `uid`, supplementary the socket's) over one
    /// connection; the parsed answers.
    static func asCaller(_ uid: UInt32, _ d: TestDaemon, _ requests: [JSON]) -> [JSON] {
        let r = TestDaemon.exec("/usr/bin/setpriv", ["--reuid=\(uid)", "--regid=\(uid)", "--groups=\(socketGroup)", "--",
                                                     "/usr/bin/python3", "-c", TestDaemon.pythonClient, d.socket],
                                stdin: requests.map(\.text).joined(separator: "\n") + "\n")
        return r.stdout.split(separator: "\n").compactMap { try? JSON.parse(String($0)) }
    }

    static func submit(_ argv: [String], workspace: String?, writable: Bool = true, policy: String = "ws", id: Int = 1, wait: Bool = true) -> JSON {
        var params: [(String, JSON)] = [("argv", .array(argv.map(JSON.string))), ("policy", .string(policy)), ("wait", .bool(wait))]
        if let workspace { params.append(("workspace", .object([("path", .string(workspace)), ("writable", .bool(writable))]))) }
        return .object([("jsonrpc", .string("2.0")), ("id", .int(Int64(id))), ("method", .string("task.submit")), ("params", .object(params))])
    }

    static func owner(_ path: String) -> (UInt32, UInt32)? {
        var st = stat()
        return stat(path, &st) == 0 ? (st.st_uid, st.st_gid) : nil
    }

    /// The caller's own directory: the task starts in /workspace, sees the caller's files as
    /// its own user's, and what it writes there belongs to the caller on the host.
    @Test func aCallersOwnDirectoryIsTheirWorkspace() throws {
        let layout = try Layout()
        try "mine\n".write(toFile: "\(layout.alices)/notes", atomically: true, encoding: .utf8)
        chown("\(layout.alices)/notes", Self.alice, Self.alice)
        let d = try Self.daemon(layout)
        let answers = Self.asCaller(Self.alice, d, [
            Self.submit(["/bin/sh", "-c", "{ pwd; stat -c '%u %U' notes; cat notes; } > seen; echo made > out.txt; mkdir -p sub && echo deep > sub/f"],
                        workspace: layout.alices),
        ])
        let result = try #require(answers.first?["result"], "\(answers)")
        #expect(result["exitCode"] == .int(0), "\(result.text)")
        #expect((try? String(contentsOfFile: "\(layout.alices)/seen", encoding: .utf8)) == "/workspace\n1000 sandbox\nmine\n")
        for file in ["seen", "out.txt", "sub", "sub/f"] {
            let o = Self.owner("\(layout.alices)/\(file)")
            #expect(o?.0 == Self.alice && o?.1 == Self.alice, "\(file): \(String(describing: o))")
        }
        #expect((try? String(contentsOfFile: "\(layout.alices)/out.txt", encoding: .utf8)) == "made\n")
        // The record says which directory the task had, and how.
        let id = try #require(result["id"]?.intValue)
        let events = try d.call("audit.query", .object([("task", .int(id))]))["events"]?.arrayValue ?? []
        let submitted = try #require(events.first { $0["kind"] == .string("submitted") }, "\(events)")
        #expect(submitted["detail"]?["workspace"] == .string(layout.alices) && submitted["detail"]?["writable"] == .bool(true), "\(submitted.text)")
    }

    /// The same submit ten times in a row on one connection: each task gets the same workspace
    /// and sees what the ones before it wrote; the file stays the caller's.
    @Test func theSameWorkspaceTenTimesInARow() throws {
        let layout = try Layout()
        let d = try Self.daemon(layout)
        let requests = (1...10).map { Self.submit(["/bin/sh", "-c", "echo $(( $(cat count 2>/dev/null || echo 0) + 1 )) > count"], workspace: layout.alices, id: $0) }
        let answers = Self.asCaller(Self.alice, d, requests)
        #expect(answers.count == 10 && answers.allSatisfy { $0["result"]?["exitCode"] == .int(0) }, "\(answers)")
        #expect((try? String(contentsOfFile: "\(layout.alices)/count", encoding: .utf8)) == "10\n")
        #expect(Self.owner("\(layout.alices)/count").map { $0 == (Self.alice, Self.alice) } == true)
    }

    /// Whatever a caller names, cordond decides as the caller: another user's directory, a
    /// symlink to it, `..`, a relative path, a place outside `workspace.allow`, a policy with no
    /// workspaces — each refused with a message naming why, and nothing runs.
    @Test func whatTheCallerCannotUseIsRefused() throws {
        let layout = try Layout()
        symlink(layout.bobs, "\(layout.alices)/to-bob")
        lchown("\(layout.alices)/to-bob", Self.alice, Self.alice)
        let d = try Self.daemon(layout)
        let touch = ["/bin/sh", "-c", "echo pwned > owned"]
        let cases: [(JSON, Int64, String)] = [
            (Self.submit(touch, workspace: layout.bobs, id: 1), RPCCode.unauthorized, "you may not"),
            (Self.submit(touch, workspace: "\(layout.alices)/to-bob", id: 2), RPCCode.invalidParams, "symlink"),
            (Self.submit(touch, workspace: "\(layout.alices)/../bob", id: 3), RPCCode.invalidParams, ".."),
            (Self.submit(touch, workspace: "projects/alice", id: 4), RPCCode.invalidParams, "absolute"),
            (Self.submit(touch, workspace: layout.outside, id: 5), RPCCode.unauthorized, "not at or under a place policy ws allows"),
            (Self.submit(touch, workspace: layout.alices, policy: "nows", id: 6), RPCCode.policyError, "takes no workspace"),
            (Self.submit(touch, workspace: layout.shared, id: 7), RPCCode.unauthorized, "you may not write"),
        ]
        let answers = Self.asCaller(Self.alice, d, cases.map(\.0))
        try #require(answers.count == cases.count, "\(answers)")
        for (answer, (request, code, phrase)) in zip(answers, cases) {
            #expect(answer["error"]?["code"] == .int(code), "\(request.text) -> \(answer.text)")
            #expect(answer["error"]?["message"]?.stringValue?.contains(phrase) == true, "\(request.text) -> \(answer.text)")
        }
        for dir in [layout.bobs, layout.shared, layout.alices, layout.outside] {
            #expect(!FileManager.default.fileExists(atPath: "\(dir)/owned"), "\(dir)")
        }
        let tasks = try d.call("task.list", .object([("all", .bool(true))]))
        #expect(tasks.arrayValue?.isEmpty == true, "a refused submit records no task: \(tasks.text)")
    }

    /// A writable workspace needs its owner to be the caller, not its group: alice's project
    /// directory of a shared group works, setgid or not; in the setgid one what the task creates
    /// takes the directory's group, in the other alice's own, as it would for alice herself; the
    /// group's bits give the sandbox nothing (a group-only file stays unreadable). A directory
    /// of that group that bob owns is not alice's to write, nor one of hers in a group she is
    /// not in (read-only, it is read with her ids alone).
    @Test func aSharedGroupsDirectoryOfTheCallersIsWritable() throws {
        let layout = try Layout()
        let setgid = "\(layout.allowed)/team", plain = "\(layout.allowed)/team-plain", bobsTeam = "\(layout.allowed)/bobs-team"
        let notHers = "\(layout.allowed)/other-group"
        for dir in [setgid, plain, bobsTeam, notHers] { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false) }
        chown(notHers, Self.alice, 61200)
        chmod(notHers, 0o2775)
        chown(setgid, Self.alice, Self.socketGroup)
        chown(plain, Self.alice, Self.socketGroup)
        chown(bobsTeam, Self.bob, Self.socketGroup)
        chmod(setgid, 0o2770)
        chmod(plain, 0o0770)
        chmod(bobsTeam, 0o2770)
        try "team only\n".write(toFile: "\(setgid)/group-only", atomically: true, encoding: .utf8)
        chown("\(setgid)/group-only", 0, Self.socketGroup)
        chmod("\(setgid)/group-only", 0o040)
        let d = try Self.daemon(layout)
        let answers = Self.asCaller(Self.alice, d, [
            Self.submit(["/bin/sh", "-c", "echo t > made && mkdir sub && ! cat group-only 2>/dev/null"], workspace: setgid, id: 1),
            Self.submit(["/bin/sh", "-c", "echo t > made"], workspace: plain, id: 2),
            Self.submit(["/bin/true"], workspace: bobsTeam, id: 3),
            Self.submit(["/bin/true"], workspace: notHers, id: 4),
            Self.submit(["/bin/ls"], workspace: notHers, writable: false, id: 5),
        ])
        try #require(answers.count == 5, "\(answers)")
        #expect(answers[3]["error"]?["message"]?.stringValue?.contains("belongs to group 61200, which is not one of yours") == true, "\(answers[3].text)")
        #expect(answers[4]["result"]?["exitCode"] == .int(0), "\(answers[4].text)")
        #expect(answers[0]["result"]?["exitCode"] == .int(0), "\(answers[0].text)")
        #expect(answers[1]["result"]?["exitCode"] == .int(0), "\(answers[1].text)")
        for (path, group) in [("\(setgid)/made", Self.socketGroup), ("\(setgid)/sub", Self.socketGroup), ("\(plain)/made", Self.alice)] {
            let o = Self.owner(path)
            #expect(o?.0 == Self.alice && o?.1 == group, "\(path): \(String(describing: o))")
        }
        #expect(answers[2]["error"]?["code"] == .int(RPCCode.unauthorized), "\(answers[2].text)")
        #expect(answers[2]["error"]?["message"]?.stringValue?.contains("belongs to uid \(Self.bob), not to you") == true, "\(answers[2].text)")
    }

    /// `cordon submit --workspace` as the caller, from inside their directory: `.` is named as
    /// the client resolves it; `:ro` binds it read-only.
    @Test func theCommandLineNamesTheWorkspace() throws {
        let layout = try Layout()
        let d = try Self.daemon(layout)
        func cordon(_ args: String) -> (status: Int32, stdout: String, stderr: String) {
            TestDaemon.exec("/usr/bin/setpriv", ["--reuid=\(Self.alice)", "--regid=\(Self.alice)", "--groups=\(Self.socketGroup)", "--",
                                                 "/bin/sh", "-c", "cd \(layout.alices) && exec \(TestDaemon.cordon) submit --socket \(d.socket) --policy ws \(args)"])
        }
        let rw = cordon("--workspace . --wait -- /bin/sh -c 'echo cli > from-cli; pwd'")
        #expect(rw.status == 0 && rw.stdout == "/workspace\n", "\(rw)")
        #expect(Self.owner("\(layout.alices)/from-cli").map { $0 == (Self.alice, Self.alice) } == true)
        let ro = cordon("--workspace .:ro --wait -- /bin/sh -c 'cat from-cli && echo more >> from-cli'")
        #expect(ro.status != 0 && ro.stdout == "cli\n" && ro.stderr.contains("Read-only file system"), "\(ro)")
        #expect((try? String(contentsOfFile: "\(layout.alices)/from-cli", encoding: .utf8)) == "cli\n")
        let missing = cordon("--workspace ./nowhere --wait -- /bin/true")
        #expect(missing.status == 2 && missing.stderr.contains("--workspace ./nowhere: No such file or directory"), "\(missing)")
    }

    /// A policy that already uses /workspace (its workdir there), or binds a host directory at
    /// `/`, cannot take a workspace: said at submit, naming the policy; a policy's own
    /// `process.cwd` stays the task's working directory.
    @Test func aPolicyThatUsesTheWorkspacesPlaceIsRefused() throws {
        let layout = try Layout()
        let users = "[access]\nusers = [\"\(Self.alice)\"]\n[workspace]\nallow = [\"\(layout.allowed)\"]\n"
        let d = try TestDaemon(config: "[socket]\ngroup = \"\(Self.socketGroup)\"\n", policies: [
            "workdir": "[policy]\nname = \"workdir\"\nextends = [\"default\"]\n[filesystem]\nworkdir = \"/workspace\"\n" + users,
            "hostroot": "[policy]\nname = \"hostroot\"\nextends = [\"default\"]\n[filesystem]\nread_only = [\"/\"]\n" + users,
            "cwd": "[policy]\nname = \"cwd\"\nextends = [\"default\"]\n[process]\ncwd = \"/tmp\"\n" + users,
            "setfcap": "[policy]\nname = \"setfcap\"\nextends = [\"default\"]\n[capabilities]\nkeep = [\"SETFCAP\"]\n" + users,
        ])
        chmod(d.dir, 0o755)
        let answers = Self.asCaller(Self.alice, d, [
            Self.submit(["/bin/true"], workspace: layout.alices, policy: "workdir", id: 1),
            Self.submit(["/bin/true"], workspace: layout.alices, policy: "hostroot", id: 2),
            Self.submit(["/bin/sh", "-c", "pwd > /workspace/where"], workspace: layout.alices, policy: "cwd", id: 3),
            Self.submit(["/bin/true"], workspace: layout.alices, policy: "setfcap", id: 4),
            Self.submit(["/bin/ls"], workspace: layout.alices, writable: false, policy: "setfcap", id: 5),
        ])
        try #require(answers.count == 5, "\(answers)")
        #expect(answers[3]["error"]?["message"]?.stringValue?.contains("keeps CAP_SETFCAP: through a writable workspace") == true, "\(answers[3].text)")
        #expect(answers[4]["result"]?["exitCode"] == .int(0), "\(answers[4].text)")
        #expect(answers[0]["error"]?["code"] == .int(RPCCode.policyError), "\(answers[0].text)")
        #expect(answers[0]["error"]?["message"]?.stringValue?.contains("policy workdir has its own mount /workspace (tmpfs") == true, "\(answers[0].text)")
        #expect(answers[1]["error"]?["message"]?.stringValue?.contains("binds a host directory at /") == true, "\(answers[1].text)")
        #expect(answers[2]["result"]?["exitCode"] == .int(0), "\(answers[2].text)")
        #expect((try? String(contentsOfFile: "\(layout.alices)/where", encoding: .utf8)) == "/tmp\n")
    }

    /// An admin is held to the same rules: the directory is opened with root's plain
    /// permissions (no capability counts), and only the admin's own ids are mapped — another
    /// user's private directory is not an admin's workspace, read-only or not.
    @Test func anAdminsWorkspaceIsOpenedAndMappedAsTheAdmin() throws {
        let layout = try Layout()
        let d = try Self.daemon(layout)
        for writable in [true, false] {
            let error = try d.callError("task.submit", .object([("argv", .array([.string("/bin/cat"), .string("secret")])), ("policy", .string("ws")),
                                                                 ("workspace", .object([("path", .string(layout.bobs)), ("writable", .bool(writable))]))]))
            #expect(error.code == RPCCode.unauthorized && error.message.contains("you may not"), "\(error)")
        }
        // Root's own directory, writable: what the task writes is root's.
        let rootDir = "\(layout.allowed)/roots"
        try FileManager.default.createDirectory(atPath: rootDir, withIntermediateDirectories: false)
        let done = try d.submit(["/bin/sh", "-c", "echo r > by-admin"], policy: "ws", wait: true,
                                extra: [("workspace", .object([("path", .string(rootDir))]))])
        #expect(done["exitCode"] == .int(0), "\(done.text)")
        #expect(Self.owner("\(rootDir)/by-admin").map { $0 == (0, 0) } == true)
    }

    /// A directory the caller may read but not write: refused writable, granted read-only, and
    /// then nothing can be written through it from the sandbox.
    @Test func aReadOnlyWorkspaceIsReadNotWritten() throws {
        let layout = try Layout()
        let d = try Self.daemon(layout)
        let answers = Self.asCaller(Self.bob, d, [
            Self.submit(["/bin/cat", "readme"], workspace: layout.shared, writable: false, id: 1),
            Self.submit(["/bin/sh", "-c", "echo x > new; echo x >> readme"], workspace: layout.shared, writable: false, id: 2),
        ])
        try #require(answers.count == 2, "\(answers)")
        #expect(answers[0]["result"]?["exitCode"] == .int(0), "\(answers[0].text)")
        #expect(answers[1]["result"]?["exitCode"] != .int(0), "\(answers[1].text)")
        #expect(!FileManager.default.fileExists(atPath: "\(layout.shared)/new"))
        #expect((try? String(contentsOfFile: "\(layout.shared)/readme", encoding: .utf8)) == "shared\n")
    }

    /// The directory mounted is the one opened at submit: a task queued behind another, whose
    /// workspace path is then swapped for a symlink to bob's directory, still writes into the
    /// directory alice was granted (now under its new name) and never into bob's.
    @Test func aDirectorySwappedAfterSubmitIsNotWhatIsMounted() throws {
        let layout = try Layout()
        let d = try Self.daemon(layout, config: "[scheduler]\nmax_running = 1\n")
        let answers = Self.asCaller(Self.alice, d, [
            Self.submit(["/bin/sleep", "1.5"], workspace: nil, id: 1, wait: false),
            Self.submit(["/bin/sh", "-c", "echo queued > swapped"], workspace: layout.alices, id: 2, wait: false),
        ])
        try #require(answers.count == 2, "\(answers)")
        let second = try #require(answers[1]["result"]?["id"]?.intValue, "\(answers[1].text)")
        #expect(answers[1]["result"]?["state"] == .string("queued"), "\(answers[1].text)")
        let moved = "\(layout.allowed)/alice-moved"
        #expect(rename(layout.alices, moved) == 0)
        #expect(symlink(layout.bobs, layout.alices) == 0)
        let done = try d.call("task.wait", .object([("id", .int(second)), ("timeout", .double(30))]))
        #expect(done["exitCode"] == .int(0), "\(done.text)")
        #expect(FileManager.default.fileExists(atPath: "\(moved)/swapped"))
        #expect(!FileManager.default.fileExists(atPath: "\(layout.bobs)/swapped"))
    }
}
