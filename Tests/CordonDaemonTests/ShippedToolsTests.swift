import CordonJSON
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The shipped tools (tools/*.toml, with the mcp-* policies) run for real through a real
/// cordond. Each test copies the shipped manifest, and the shipped policy where a path in it is
/// the host's, into the daemon's config directory with only what an admin sets up replaced: the
/// venv (/opt/cordon/mcp → the tests' .build/pydeps/mcp), the git repository (/srv/cordon/git →
/// a scratch repository) and fetch's allowlist (example.com → the test's loopback server).
@Suite(.enabled(if: TestDaemon.isRoot, "needs root: cordond"), .serialized)
struct ShippedToolsTests {
    static let repo = TestDaemon.repoRoot
    static let venv = "\(repo)/.build/pydeps/mcp"
    /// A caller who is not an admin (uid, primary gid): the socket's group is theirs.
    static let user: (uid: UInt32, gid: UInt32) = (4243, 65534)

    /// The repository's file at `path` with each pair's first string replaced by its second;
    /// each must occur in the file, so that a shipped file that no longer says it fails here.
    static func shipped(_ path: String, _ replacements: [(String, String)] = []) throws -> String {
        var text = try String(contentsOfFile: "\(repo)/\(path)", encoding: .utf8)
        for (from, to) in replacements {
            try #require(text.contains(from), "\(path) no longer contains \(from)")
            text = text.replacingOccurrences(of: from, with: to)
        }
        return text
    }

    static let installedVenv = ("/opt/cordon/mcp", venv)

    /// A cordond whose config holds `tools` (shipped manifests, venv path replaced) and
    /// `policies` (by name: replacing the built-in copy of the same name).
    static func daemon(tools: [String], policies: [String: String] = [:]) throws -> TestDaemon {
        try #require(FileManager.default.fileExists(atPath: "\(venv)/bin/python3"), "no \(venv): run make pydeps")
        var files: [String: String] = [:]
        for tool in tools { files["tools/\(tool).toml"] = try shipped("tools/\(tool).toml", tool == "python" ? [] : [installedVenv]) }
        let d = try TestDaemon(config: "[socket]\ngroup = \"\(user.gid)\"\n", policies: policies, files: files)
        chmod(d.dir, 0o755)  // the socket's directory, for the other user
        return d
    }

    static func call(_ d: TestDaemon, _ name: String, _ arguments: [(String, JSON)]) throws -> JSON {
        try d.call("tool.call", .object([("name", .string(name)), ("arguments", .object(arguments))]))
    }

    static func request(_ id: Int, _ name: String, _ arguments: [(String, JSON)]) -> String {
        JSON.object([("jsonrpc", .string("2.0")), ("id", .int(Int64(id))), ("method", .string("tool.call")),
                     ("params", .object([("name", .string(name)), ("arguments", .object(arguments))]))]).text
    }

    static func text(_ answer: JSON) -> String { answer["result"]?["content"]?.arrayValue?.first?["text"]?.stringValue ?? "" }
    /// The result's isError (absent is false).
    static func isError(_ answer: JSON) -> Bool { answer["result"]?["isError"] == .bool(true) }

    /// A scratch directory, root's and 0755 as a user's directories are; removed with the value.
    final class Scratch {
        let path: String
        init(_ name: String) throws {
            path = "/tmp/cordon-shipped-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
            chmod(path, 0o755)
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    // MARK: time

    @Test func timeAnswersTheCurrentTime() throws {
        let d = try Self.daemon(tools: ["time"], policies: ["mcp-time": try Self.shipped("policies/mcp-time.toml", [Self.installedVenv])])
        let names = try d.call("tool.list")["tools"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
        #expect(names == ["time.convert_time", "time.get_current_time"], "\(names)")
        let now = try Self.call(d, "time.get_current_time", [("timezone", .string("UTC"))])
        #expect(now["outcome"] == .string("ok") && !Self.isError(now), "\(now)")
        let year = Calendar(identifier: .gregorian).component(.year, from: Date())
        #expect(Self.text(now).contains("\"timezone\": \"UTC\"") && Self.text(now).contains("\(year)-"), "\(now)")
        // The tz database: a conversion between two named zones.
        let converted = try Self.call(d, "time.convert_time", [("source_timezone", .string("Europe/Paris")), ("time", .string("12:00")),
                                                                ("target_timezone", .string("Asia/Tokyo"))])
        #expect(converted["outcome"] == .string("ok") && !Self.isError(converted), "\(converted)")
        #expect(Self.text(converted).contains("Asia/Tokyo"), "\(converted)")
        // Recorded under the shipped policy's name.
        #expect(ToolMethodsTests.rows(d, "SELECT DISTINCT policy FROM tool_calls") == [["mcp-time"]])
    }

    // MARK: python

    @Test func pythonRunsTheCodeItIsSent() throws {
        let d = try Self.daemon(tools: ["python"])
        let answer = try Self.call(d, "python", [("code", .string("print(6*7)"))])
        #expect(answer["outcome"] == .string("ok") && !Self.isError(answer) && Self.text(answer) == "42\n", "\(answer)")
        // An uncaught exception: the tool's error, with the traceback in its text.
        let raised = try Self.call(d, "python", [("code", .string("print('before')\nraise ValueError('no such thing')"))])
        #expect(Self.isError(raised), "\(raised)")
        #expect(Self.text(raised).hasPrefix("before\nTraceback") && Self.text(raised).hasSuffix("ValueError: no such thing\n"), "\(raised)")
        // Under python-tool: no network, a read-only system, a scratch working directory.
        let confined = try Self.call(d, "python", [("code", .string("""
            import os, socket
            try:
                socket.create_connection(("192.0.2.1", 80), timeout=2)
            except OSError as e:
                print("network:", type(e).__name__)
            try:
                open("/usr/cordon-was-here", "w")
            except OSError as e:
                print("system:", e.strerror)
            open("out.txt", "w").write("kept")
            print(os.getcwd(), open("out.txt").read())
            """))])
        #expect(Self.text(confined).hasPrefix("network: ") && Self.text(confined).hasSuffix("\nsystem: Read-only file system\n/work kept\n"),
                "\(confined)")
        // Arguments the schema does not allow never reach a sandbox.
        let invalid = try Self.call(d, "python", [("code", .string("print(1)")), ("extra", .bool(true))])
        #expect(invalid["outcome"] == .string("invalid-arguments"), "\(invalid)")
    }

    // MARK: git

    /// A repository made by the host's git, with one commit, in a root-owned 0755 directory.
    static func makeRepository(_ dir: String) throws {
        for args in [["init", "-q", "-b", "main"], ["-c", "user.name=Host", "-c", "user.email=host@example.invalid", "commit", "-q", "--allow-empty", "-m", "start"]] {
            let r = TestDaemon.exec("/usr/bin/git", ["-C", dir] + args)
            try #require(r.status == 0, "git \(args): \(r.stderr)")
        }
    }

    /// The host's git, reading a repository whoever owns it.
    static func hostGit(_ dir: String, _ args: [String]) -> String {
        TestDaemon.exec("/usr/bin/git", ["-c", "safe.directory=*", "-C", dir] + args).stdout
    }

    /// Every file and directory under `dir` (itself included) whose owner is not uid:gid.
    static func notOwned(under dir: String, by uid: UInt32, _ gid: UInt32) -> [String] {
        var others: [String] = []
        var st = stat()
        if lstat(dir, &st) != 0 || st.st_uid != uid || st.st_gid != gid { others.append(dir) }
        for case let relative as String in FileManager.default.enumerator(atPath: dir) ?? FileManager.DirectoryEnumerator() {
            if lstat("\(dir)/\(relative)", &st) != 0 || st.st_uid != uid || st.st_gid != gid {
                others.append("\(relative) (\(st.st_uid):\(st.st_gid))")
            }
        }
        return others
    }

    static func gitPolicy(_ workspace: String, access: String = "") throws -> String {
        try shipped("policies/mcp-git.toml", [installedVenv, ("source = \"/srv/cordon/git\"", "source = \"\(workspace)\"")]) + access
    }

    /// An admin (root) calls git on a root-owned repository: status, then a file staged and
    /// committed, three times over; the commits are the host's to read, and everything the
    /// server wrote is root's.
    @Test func gitStatusAddAndCommitAsAnAdmin() throws {
        let workspace = try Scratch("git-root")
        try Self.makeRepository(workspace.path)
        let d = try Self.daemon(tools: ["git"], policies: ["mcp-git": try Self.gitPolicy(workspace.path)])
        try "first\n".write(toFile: "\(workspace.path)/one.txt", atomically: false, encoding: .utf8)
        let status = try Self.call(d, "git.git_status", [("repo_path", .string("/repo"))])
        #expect(status["outcome"] == .string("ok") && !Self.isError(status), "\(status)")
        #expect(Self.text(status).contains("On branch main") && Self.text(status).contains("one.txt"), "\(status)")
        var hashes: [String] = []
        for i in 1...3 {
            if i > 1 { try "file \(i)\n".write(toFile: "\(workspace.path)/f\(i).txt", atomically: false, encoding: .utf8) }
            let file = i == 1 ? "one.txt" : "f\(i).txt"
            let add = try Self.call(d, "git.git_add", [("repo_path", .string("/repo")), ("files", .array([.string(file)]))])
            #expect(Self.text(add) == "Files staged successfully", "\(add)")
            let commit = try Self.call(d, "git.git_commit", [("repo_path", .string("/repo")), ("message", .string("commit \(i)"))])
            #expect(commit["outcome"] == .string("ok") && !Self.isError(commit), "\(commit)")
            if let hash = Self.text(commit).split(separator: " ").last { hashes.append(String(hash)) }
        }
        // The host's git sees the three commits, by the manifest's identity, over the first one.
        let log = Self.hostGit(workspace.path, ["log", "--format=%H %an <%ae> %s"]).split(separator: "\n").map(String.init)
        let expected = hashes.reversed().enumerated().map { "\($0.element) Cordon agent <agent@cordon.invalid> commit \(3 - $0.offset)" }
        #expect(log.count == 4 && Array(log.prefix(3)) == expected && log.last?.hasSuffix(" Host <host@example.invalid> start") == true, "\(log)")
        #expect(Self.hostGit(workspace.path, ["status", "--porcelain"]) == "", "a clean tree")
        #expect(Self.notOwned(under: workspace.path, by: 0, 0) == [], "what the server wrote is the directory owner's")
        // A path outside the repository is refused by the server (--repository).
        let outside = try Self.call(d, "git.git_status", [("repo_path", .string("/work"))])
        #expect(Self.isError(outside) && Self.text(outside).contains("outside the allowed repository"), "\(outside)")
    }

    /// A user who is not an admin, owning the repository, calls git through the socket: each
    /// commit flow of several in a row leaves only files that are theirs on the host (cordond
    /// maps a non-admin's writes to them, whoever the bind's owner would otherwise be).
    @Test func gitCommitsAsAUserWriteTheUsersFiles() throws {
        let workspace = try Scratch("git-user")
        try Self.makeRepository(workspace.path)
        let (uid, gid) = Self.user
        let chown = TestDaemon.exec("/usr/bin/chown", ["-R", "\(uid):\(gid)", workspace.path])
        try #require(chown.status == 0, "\(chown.stderr)")
        let d = try Self.daemon(tools: ["git"], policies: ["mcp-git": try Self.gitPolicy(workspace.path, access: "\n[access]\nusers = [\"\(uid)\"]\n")])
        let status = d.asUser(uid, gid: gid, [Self.request(1, "git.git_status", [("repo_path", .string("/repo"))])])
        #expect(status.first?["result"]?["outcome"] == .string("ok") && Self.text(status.first?["result"] ?? .null).contains("nothing to commit"), "\(status)")
        for i in 1...4 {
            let file = "\(workspace.path)/n\(i).txt"
            let wrote = TestDaemon.runAs(uid: uid, gid: gid, ["/bin/sh", "-c", "echo \(i) > \"$1\"", "sh", file])
            try #require(wrote.status == 0, "\(wrote.stderr)")
            let answers = d.asUser(uid, gid: gid, [
                Self.request(1, "git.git_add", [("repo_path", .string("/repo")), ("files", .array([.string("n\(i).txt")]))]),
                Self.request(2, "git.git_commit", [("repo_path", .string("/repo")), ("message", .string("user commit \(i)"))]),
            ])
            #expect(answers.count == 2 && answers.allSatisfy { $0["result"]?["outcome"] == .string("ok") && !Self.isError($0["result"] ?? .null) },
                    "flow \(i): \(answers)")
            let committed = Self.text(answers.last?["result"] ?? .null)
            #expect(committed.hasPrefix("Changes committed successfully with hash "), "flow \(i): \(answers)")
            #expect(Self.notOwned(under: workspace.path, by: uid, gid) == [], "flow \(i)")
        }
        let subjects = Self.hostGit(workspace.path, ["log", "--format=%s"])
        #expect(subjects == "user commit 4\nuser commit 3\nuser commit 2\nuser commit 1\nstart\n", "\(subjects)")
        // The user's own instance did all of it (root never called).
        #expect(ToolMethodsTests.rows(d, "SELECT DISTINCT uid FROM tool_calls") == [["\(uid)"]])
    }

    // MARK: fetch

    /// python3 -m http.server on 127.0.0.1 (an ephemeral port), serving `dir`; its log of
    /// requests is its stderr. Killed by its pid.
    final class PageServer {
        let process = Process()
        let port: Int
        let log: String
        init(serving dir: String) throws {
            log = "\(dir).log"
            try #require(FileManager.default.createFile(atPath: log, contents: nil))
            process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            process.arguments = ["-u", "-m", "http.server", "--bind", "127.0.0.1", "--directory", dir, "0"]
            let out = Pipe()
            process.standardOutput = out
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            process.standardInput = FileHandle.nullDevice
            try process.run()
            // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
            var line = Data()
            while line.count < 512 {
                let byte = out.fileHandleForReading.readData(ofLength: 1)
                if byte.isEmpty || byte == Data("\n".utf8) { break }
                line.append(byte)
            }
            let words = String(decoding: line, as: UTF8.self).split(separator: " ")
            guard let at = words.firstIndex(of: "port"), at + 1 < words.count, let port = Int(words[at + 1]) else {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                throw TestFailure("http.server did not start: \(String(decoding: line, as: UTF8.self))")
            }
            self.port = port
        }
        deinit {
            // SIGKILL: the test process blocks SIGTERM, and its children inherit the mask.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            try? FileManager.default.removeItem(atPath: log)
        }
        func requests() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
    }

    /// fetch under an allowlist of the loopback server's one address and port (an address rule:
    /// loopback is reached only through one): the page comes back as Markdown, robots.txt
    /// asked first; a name and an address the list does not name are the tool's errors, which
    /// leave the instance serving.
    @Test func fetchReadsAnAllowedPageAndIsRefusedTheRest() throws {
        let site = try Scratch("fetch-site")
        let token = "cordon-\(UInt32.random(in: 0...UInt32.max))"
        try """
            <!DOCTYPE html>
            <html><head><title>Shipped tools</title></head>
            <body><article><h1>The fetch tool</h1>
            <p>This page was served on loopback to a sandboxed fetch server through the supervisor's proxy.
            Its token is \(token), which the test looks for in the tool's answer.</p>
            <p>A second paragraph, so that the readability extractor finds an article here.</p>
            </article></body></html>
            """.write(toFile: "\(site.path)/page.html", atomically: false, encoding: .utf8)
        let server = try PageServer(serving: site.path)
        let policy = try Self.shipped("policies/mcp-fetch.toml", [Self.installedVenv, ("allow = [\"example.com:443\"]", "allow = [\"127.0.0.1/32:\(server.port)\"]")])
        let d = try Self.daemon(tools: ["fetch"], policies: ["mcp-fetch": policy])
        let url = "http://127.0.0.1:\(server.port)/page.html"
        let page = try Self.call(d, "fetch.fetch", [("url", .string(url))])
        #expect(page["outcome"] == .string("ok") && !Self.isError(page), "\(page)")
        #expect(Self.text(page).contains("# The fetch tool") && Self.text(page).contains("Its token is \(token)"), "\(page)")
        let served = server.requests()
        #expect(served.contains("\"GET /robots.txt HTTP/1.1\" 404") && served.contains("\"GET /page.html HTTP/1.1\" 200"), "\(served)")

        // Not on the list: a name (refused before any lookup: .test never resolves anyway) and
        // another loopback address at the same port. Neither reaches the server: the proxy's 403
        // for robots.txt, which mcp-server-fetch reads as "autonomous fetching is not allowed",
        // is the tool's error.
        for refused in ["http://unlisted.example.test/page.html", "http://127.0.0.2:\(server.port)/page.html"] {
            let answer = try Self.call(d, "fetch.fetch", [("url", .string(refused))])
            #expect(answer["outcome"] == .string("tool-error") && Self.isError(answer), "\(refused): \(answer)")
            #expect(Self.text(answer).contains("received status 403"), "\(refused): \(answer)")
        }
        #expect(server.requests() == served, "nothing more reached the server")
        // The refusals were answers, not crashes: the same instance serves the page again.
        let again = try Self.call(d, "fetch.fetch", [("url", .string(url))])
        #expect(!Self.isError(again) && Self.text(again).contains(token), "\(again)")
        let metrics = try d.call("system.metrics")["text"]?.stringValue ?? ""
        #expect(metrics.contains("cordon_tool_instance_starts_total{tool=\"fetch\"} 1\n"), "\(metrics)")
    }
}
