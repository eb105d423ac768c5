@testable import CordonSandbox
import CordonSystem
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `cordon run`'s plan cache through the real binary: whatever changed between two runs (a
/// policy file edited in place with its size and mtime kept, an `extends` parent, a bind source,
/// the flags) shows in the second run, and an entry that is not root's and private, or is
/// damaged, is not used.
@Suite(.enabled(if: Harness.isRoot, "needs root: real sandboxes"))
struct PlanCacheTests {
    /// A config dir and a state dir of the test's own, and `cordon run` with them.
    struct Setup {
        let dir: String
        var config: String { "\(dir)/config" }
        var state: String { "\(dir)/state" }
        var plans: String { "\(state)/cache/plans" }

        init(_ name: String) throws {
            dir = "\(Harness.scratch)/plancache-\(name)"
            try? FileManager.default.removeItem(atPath: dir)
            try FileManager.default.createDirectory(atPath: "\(dir)/config/policies", withIntermediateDirectories: true)
            chmod(dir, 0o755)
        }

        /// The shipped default policy with GREETING in its environment and `edit` applied.
        func writePolicy(_ file: String, greeting: String, edit: (String) -> String = { $0 }) throws -> String {
            var text = try String(contentsOfFile: "\(Harness.repo)/policies/default.toml", encoding: .utf8)
            text = text.replacingOccurrences(of: "TMPDIR = \"/tmp\" }", with: "TMPDIR = \"/tmp\", GREETING = \"\(greeting)\" }")
            let path = "\(dir)/\(file)"
            try edit(text).write(toFile: path, atomically: false, encoding: .utf8)
            return path
        }

        func run(_ policy: String, _ argv: [String], options: [String] = [], cwd: String? = nil) -> Harness.Outcome {
            Harness.exec(Harness.cordon, ["run", "--policy", policy, "--config-dir", config, "--state-dir", state,
                                          "--runtime-dir", Harness.runtimeDir, "--json"] + options + ["--"] + argv, cwd: cwd)
        }

        func entry(_ policy: String, shaping: String = "") -> String {
            "\(plans)/\(SpawnPlanCache.Key(configDir: config, policy: policy, shapingFlags: shaping).fileName)"
        }
    }

    static func inode(_ path: String) -> UInt64? { FileSystem.identity(path)?.inode }

    /// Rewrites `path` in place (same inode) and puts its mtime back.
    static func rewriteKeepingMtime(_ path: String, _ from: String, _ to: String) throws {
        var st = stat()
        #expect(stat(path, &st) == 0)
        let text = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(of: from, with: to)
        let fd = open(path, O_WRONLY | O_TRUNC)
        #expect(fd >= 0)
        _ = text.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count - 1) }
        var times = [timespec(tv_sec: st.st_atim.tv_sec, tv_nsec: st.st_atim.tv_nsec), st.st_mtim]
        #expect(futimens(fd, &times) == 0)
        close(fd)
        var after = stat()
        #expect(stat(path, &after) == 0 && after.st_size == st.st_size && after.st_mtim.tv_sec == st.st_mtim.tv_sec
                && after.st_mtim.tv_nsec == st.st_mtim.tv_nsec && after.st_ino == st.st_ino)
    }

    /// Edited in place, same size, same mtime: the change time tells. The file is written more
    /// than 2 s before the first run, so the entry holds no content hash for it: only its
    /// identity can tell.
    @Test func anEditKeepingSizeAndMtimeIsSeen() throws {
        let s = try Setup("edit")
        let policy = try s.writePolicy("p.toml", greeting: "aaaa")
        sleep(3)
        let first = s.run(policy, ["sh", "-c", "echo $GREETING"])
        #expect(first.status == 0 && first.output == "aaaa", "\(first.stderr)")
        let entry = s.entry(policy)
        let written = try #require(Self.inode(entry), "no cache entry written")
        // A hit leaves the entry as it was.
        let again = s.run(policy, ["sh", "-c", "echo $GREETING"])
        #expect(again.output == "aaaa" && Self.inode(entry) == written)

        try Self.rewriteKeepingMtime(policy, "GREETING = \"aaaa\"", "GREETING = \"bbbb\"")
        let second = s.run(policy, ["sh", "-c", "echo $GREETING"])
        #expect(second.status == 0 && second.output == "bbbb", "\(second.stderr)")
        #expect(Self.inode(entry) != written, "the stale entry was not replaced")
    }

    @Test func anEditOfAnExtendsParentIsSeen() throws {
        let s = try Setup("extends")
        _ = try s.writePolicy("parent.toml", greeting: "pppp")
        let child = "\(s.dir)/child.toml"
        try "[policy]\nname = \"child\"\nextends = [\"parent.toml\"]\n".write(toFile: child, atomically: false, encoding: .utf8)
        let first = s.run(child, ["sh", "-c", "echo $GREETING"])
        #expect(first.status == 0 && first.output == "pppp", "\(first.stderr)")
        #expect(Self.inode(s.entry(child)) != nil)
        try Self.rewriteKeepingMtime("\(s.dir)/parent.toml", "GREETING = \"pppp\"", "GREETING = \"qqqq\"")
        let second = s.run(child, ["sh", "-c", "echo $GREETING"])
        #expect(second.status == 0 && second.output == "qqqq", "\(second.stderr)")
        // A config-dir policy put where a built-in one was found is an input too.
        let builtin = s.run("default", ["sh", "-c", "echo ${GREETING:-none}"])
        #expect(builtin.output == "none", "\(builtin.stderr)")
        _ = try s.writePolicy("config/policies/default.toml", greeting: "cfg")
        let shadowed = s.run("default", ["sh", "-c", "echo ${GREETING:-none}"])
        #expect(shadowed.output == "cfg", "\(shadowed.stderr)")
    }

    /// A bind source that changes kind or disappears between runs: planned again, with the
    /// same outcome as without a cache.
    @Test func aBindSourceThatChangesIsNoticed() throws {
        let s = try Setup("bind")
        let source = "\(s.dir)/src"
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        try "in a dir\n".write(toFile: "\(source)/f", atomically: false, encoding: .utf8)
        let policy = try s.writePolicy("p.toml", greeting: "x") {
            $0.replacingOccurrences(of: "read_only = [\n", with: "read_only = [\n  { path = \"/opt/src\", source = \"\(source)\" },\n")
        }
        let first = s.run(policy, ["sh", "-c", "cat /opt/src/f"])
        #expect(first.status == 0 && first.output == "in a dir", "\(first.stderr)")
        #expect(Self.inode(s.entry(policy)) != nil)

        try FileManager.default.removeItem(atPath: source)
        try "a file now\n".write(toFile: source, atomically: false, encoding: .utf8)
        let file = s.run(policy, ["sh", "-c", "cat /opt/src"])
        #expect(file.status == 0 && file.output == "a file now", "\(file.stderr)")

        unlink(source)
        let gone = s.run(policy, ["true"])
        #expect(gone.status == 125 && gone.stderr.contains("\(source) does not exist on this host"), "\(gone.stderr)")
    }

    /// An entry is used only when root's and private: one forged with another environment is
    /// used while it is (which shows the runs read it), and not once it belongs to another
    /// user or its group may write it; it is then replaced.
    @Test func anEntryNotRootsAndPrivateIsIgnored() throws {
        let s = try Setup("trust")
        let policy = try s.writePolicy("p.toml", greeting: "real")
        let first = s.run(policy, ["sh", "-c", "echo $GREETING"])
        #expect(first.output == "real", "\(first.stderr)")
        let path = s.entry(policy)
        let decoded = try #require(SpawnPlanCache.decode(try FileSystem.read(path)))
        var forged = decoded.entry
        forged.policy.process.env = forged.policy.process.env.map { $0.name == "GREETING" ? .init("GREETING", "fake") : $0 }
        func plant() throws {
            try FileSystem.writeAtomically(path, SpawnPlanCache.encode(forged, stamp: decoded.stamp, name: decoded.name), mode: 0o600)
        }
        try plant()
        #expect(s.run(policy, ["sh", "-c", "echo $GREETING"]).output == "fake")

        try plant()
        #expect(chown(path, 1234, 0) == 0)
        let foreign = s.run(policy, ["sh", "-c", "echo $GREETING"])
        #expect(foreign.output == "real", "\(foreign.stderr)")
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_uid == 0 && st.st_mode & 0o777 == 0o600)

        try plant()
        #expect(chmod(path, 0o620) == 0)
        #expect(s.run(policy, ["sh", "-c", "echo $GREETING"]).output == "real")
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o600)
    }

    @Test func aCorruptEntryIsIgnoredAndReplaced() throws {
        let s = try Setup("corrupt")
        let policy = try s.writePolicy("p.toml", greeting: "ok")
        #expect(s.run(policy, ["sh", "-c", "echo $GREETING"]).output == "ok")
        let path = s.entry(policy)
        var bytes = try FileSystem.read(path)
        for damaged in [Array(bytes.prefix(bytes.count / 2)), [UInt8](repeating: 0x41, count: 64)] {
            try FileSystem.writeAtomically(path, damaged, mode: 0o600)
            let r = s.run(policy, ["sh", "-c", "echo $GREETING"])
            #expect(r.status == 0 && r.output == "ok", "\(r.stderr)")
            bytes = try FileSystem.read(path)
            #expect(SpawnPlanCache.decode(bytes) != nil, "not replaced")
        }
    }

    /// With a warm cache, --bind/--ro-bind select their own entry, and --env and --memory are
    /// applied at every run (and never written to the cache).
    @Test func flagsGiveTheirPlanWithAWarmCache() throws {
        let s = try Setup("flags")
        let policy = try s.writePolicy("p.toml", greeting: "g")
        let a = "\(s.dir)/a", b = "\(s.dir)/b"
        for (dir, text) in [(a, "from a\n"), (b, "from b\n")] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try text.write(toFile: "\(dir)/f", atomically: false, encoding: .utf8)
        }
        let show = ["sh", "-c", "cat /src/f 2>/dev/null || echo none; echo $SECRET; cat /sys/fs/cgroup/memory.max 2>/dev/null || true"]
        for round in 0..<2 {
            let withA = s.run(policy, show, options: ["--ro-bind", "\(a):/src", "--env", "SECRET=one-\(round)"])
            #expect(withA.status == 0 && withA.output.hasPrefix("from a\none-\(round)"), "\(withA.stderr)")
            let withB = s.run(policy, show, options: ["--ro-bind", "\(b):/src", "--env", "SECRET=two-\(round)"])
            #expect(withB.status == 0 && withB.output.hasPrefix("from b\ntwo-\(round)"), "\(withB.stderr)")
            let none = s.run(policy, show)
            #expect(none.status == 0 && none.output.hasPrefix("none\n"), "\(none.stderr)")
            let tight = s.run(policy, ["true"], options: ["--memory", "1G"])
            #expect(tight.status == 64 && tight.stderr.contains("--memory 1G: looser than policy default's limits.memory = 512M"), "\(tight.stderr)")
        }
        #expect(Self.inode(s.entry(policy, shaping: "--ro-bind \(a):/src")) != nil)
        for path in try FileSystem.regularFiles(under: s.plans) {
            let text = String(decoding: try FileSystem.read(path), as: UTF8.self)
            #expect(!text.contains("one-") && !text.contains("two-"), "an --env value reached \(path)")
        }
    }
}
