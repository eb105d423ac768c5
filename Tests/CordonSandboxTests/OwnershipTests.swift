import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Writable binds are idmapped: what a sandbox writes belongs to the bind's host owner (or the
/// policy's `owner`), whichever uid range the sandbox got, so ordinary directories work — a
/// root-owned 755 one, a user's under /home — and run after run can rewrite its own files.
/// Nothing a sandbox writes can carry a setuid bit, be a device, or reach a file outside the
/// bind through a hardlink.
@Suite(.enabled(if: Harness.isRoot, "needs root: real sandboxes, directories of other owners"))
struct OwnershipTests {
    /// A fresh directory `root` (removed first), mode 0755, owned by `owner`.
    static func directory(_ path: String, owner: (uid_t, gid_t) = (0, 0)) throws -> String {
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        chmod(path, 0o755)
        chown(path, owner.0, owner.1)
        return path
    }

    static func owner(_ path: String) -> (uid_t, gid_t)? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return (st.st_uid, st.st_gid)
    }

    static func policy(_ name: String, _ filesystem: String, extends: String = "default") -> String {
        let path = "\(Harness.scratch)/policies/\(name).toml"
        let text = """
            [policy]
            name = "\(name)"
            extends = ["\(extends)"]

            [filesystem]
            \(filesystem)

            [landlock]
            mode = "required"
            """
        try? text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// learn → enforce → enforce again, in `dir`: the script reads in.txt and writes out.txt
    /// there (and whatever `extra` Python lines do).
    func learnRoundTrip(in dir: String, base: String? = nil, extra: String = "", expectOwner: (uid_t, gid_t)) throws {
        try "hello\n".write(toFile: "\(dir)/in.txt", atomically: true, encoding: .utf8)
        chown("\(dir)/in.txt", expectOwner.0, expectOwner.1)
        let script = "\(dir)/s.py"
        try """
            data = open("\(dir)/in.txt").read()
            open("\(dir)/out.txt", "w").write(data.upper())
            \(extra)
            print("done")
            """.write(toFile: script, atomically: true, encoding: .utf8)
        let learned = "\(dir).learned.toml"
        let options = base.map { ["--policy", $0] } ?? []
        let existed = FileManager.default.fileExists(atPath: "\(dir)/out.txt")
        let learn = Harness.exec(Harness.cordon, ["run", "--learn", learned, "--json"] + options + ["--", "python3", script])
        try #require(learn.status == 0, "learn: \(learn.stderr)")
        // The learning run (as the caller, root) made it; the sandbox must make it again.
        if !existed { try? FileManager.default.removeItem(atPath: "\(dir)/out.txt") }
        for round in 1...2 {
            let r = Harness.run(["python3", script], policy: learned)
            #expect(r.status == 0, "enforced run \(round): \(r.stderr) \(r.record)")
            #expect(r.output == "done", "run \(round): \(r.stdout)")
            #expect(r.denied.isEmpty, "run \(round) denied \(r.denied)")
            #expect((try? String(contentsOfFile: "\(dir)/out.txt", encoding: .utf8)) == "HELLO\n", "run \(round)")
            let o = Self.owner("\(dir)/out.txt")
            #expect(o?.0 == expectOwner.0 && o?.1 == expectOwner.1, "out.txt belongs to \(String(describing: o)) on the host")
        }
    }

    @Test func learnRoundTripInARootOwned755Directory() throws {
        let dir = try Self.directory("\(Harness.scratch)/own-root755")
        try learnRoundTrip(in: dir, expectOwner: (0, 0))
    }

    @Test func learnRoundTripInAUsersDirectoryUnderHome() throws {
        let home = try Self.directory("/home/cordon-test-\(getpid())", owner: (4242, 4242))
        defer { try? FileManager.default.removeItem(atPath: home) }
        let dir = try Self.directory("\(home)/project", owner: (4242, 4242))
        try learnRoundTrip(in: dir, expectOwner: (4242, 4242))
    }

    @Test func learnRoundTripRewritingAnExistingFile() throws {
        let dir = try Self.directory("\(Harness.scratch)/own-existing")
        try "old\n".write(toFile: "\(dir)/out.txt", atomically: true, encoding: .utf8)
        try learnRoundTrip(in: dir, expectOwner: (0, 0))
    }

    @Test func learnRoundTripWithANewFileInANewSubdirectory() throws {
        let dir = try Self.directory("\(Harness.scratch)/own-subdir")
        try learnRoundTrip(in: dir, extra: """
            import os
            os.makedirs("\(dir)/made/deeper", exist_ok=True)
            open("\(dir)/made/deeper/new.txt", "w").write("new")
            """, expectOwner: (0, 0))
        #expect(Self.owner("\(dir)/made/deeper/new.txt")?.0 == 0)
    }

    @Test func learnRoundTripOnTopOfPythonTool() throws {
        let dir = try Self.directory("\(Harness.scratch)/own-python-tool")
        try learnRoundTrip(in: dir, base: "python-tool", expectOwner: (0, 0))
    }

    /// Each sandbox gets another uid range; the repository's objects must stay writable.
    @Test func tenGitCommitsInAReadWriteRepository() throws {
        let repo = try Self.directory("\(Harness.scratch)/own-git")
        let setup = Harness.exec("/usr/bin/git", ["-C", repo, "init", "-q"])
        try #require(setup.status == 0, "\(setup.stderr)")
        let policy = Self.policy("own-git", "read_write = [\"\(repo)\"]")
        for i in 1...10 {
            let r = Harness.run(["/bin/sh", "-c", """
                cd \(repo) && echo \(i) >> log.txt && git add log.txt && \
                git -c user.name=t -c user.email=t@example.invalid commit -q -m "commit \(i)" && echo ok
                """], policy: policy, environment: ["HOME": "/work"])
            #expect(r.status == 0 && r.output == "ok", "commit \(i): \(r.stderr)")
        }
        let log = Harness.exec("/usr/bin/git", ["-C", repo, "rev-list", "--count", "HEAD"])
        #expect(log.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "10")
        // Everything in the repository, new objects included, belongs to its owner (root).
        let strays = Harness.exec("/usr/bin/find", [repo, "!", "-uid", "0"])
        #expect(strays.stdout.isEmpty, "files of other owners: \(strays.stdout)")
    }

    /// A file bound inside a read-only bind of its directory (the shape learn mode writes when a
    /// run rewrites a file next to ones it reads), read-write with Landlock required.
    @Test func aWritableFileBindInsideAReadOnlyDirectoryBind() throws {
        let dir = try Self.directory("\(Harness.scratch)/own-nested")
        try "print('script')\n".write(toFile: "\(dir)/script.py", atomically: true, encoding: .utf8)
        try "old\n".write(toFile: "\(dir)/out.txt", atomically: true, encoding: .utf8)
        let policy = Self.policy("own-nested", """
            read_only = ["\(dir)", "\(dir)/script.py"]
            read_write = ["\(dir)/out.txt"]
            """)
        let r = Harness.run(["/bin/sh", "-c", "python3 \(dir)/script.py; echo new > \(dir)/out.txt && echo wrote; echo x > \(dir)/other 2>/dev/null || echo refused"],
                            policy: policy)
        #expect(r.status == 0, "\(r.stderr) \(r.record)")
        #expect(r.output == "script\nwrote\nrefused")
        #expect((try? String(contentsOfFile: "\(dir)/out.txt", encoding: .utf8)) == "new\n")
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/other"))
    }

    /// A mount point that would have to be created inside a bound host directory is refused
    /// when the policy is planned, naming both paths.
    @Test func aMountPointMissingInsideABindIsRefusedByName() throws {
        let dir = try Self.directory("\(Harness.scratch)/own-missing-point")
        let source = try Self.directory("\(Harness.scratch)/own-missing-source")
        let policy = Self.policy("own-missing-point", """
            read_only = ["\(dir)", { path = "\(dir)/sub", source = "\(source)" }]
            """)
        let r = Harness.run(["/bin/true"], policy: policy)
        #expect(r.status != 0)
        #expect(r.stderr.contains("\(dir)/sub lies inside the bind of \(dir)") && r.stderr.contains("does not exist"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/sub"), "the host was changed")
    }

    @Test func aPolicyNamedOwnerOwnsWhatTheSandboxWrites() throws {
        // The named owner must be able to write the directory: only their ids are mapped.
        let dir = try Self.directory("\(Harness.scratch)/own-named", owner: (4243, 4244))
        let policy = Self.policy("own-named", "read_write = [{ path = \"/data\", source = \"\(dir)\", owner = \"4243:4244\" }]")
        let r = Harness.run(["/bin/sh", "-c", "echo x > /data/f && mkdir /data/d && echo ok"], policy: policy)
        #expect(r.status == 0 && r.output == "ok", "\(r.stderr)")
        for path in ["\(dir)/f", "\(dir)/d"] {
            let o = Self.owner(path)
            #expect(o?.0 == 4243 && o?.1 == 4244, "\(path): \(String(describing: o))")
        }
    }

    /// Through a root-owned writable bind the sandbox writes as root on the host, so it must not
    /// be able to leave a setuid or setgid file, a device node, or write through a hardlink to a
    /// file it does not own.
    @Test func noSetuidFileNoDeviceNodeNoWriteThroughAHardlink() throws {
        let dir = try Self.directory("\(Harness.scratch)/own-attacks", owner: (4242, 4242))
        let outside = try Self.directory("\(Harness.scratch)/own-attacks-outside")
        try "root's\n".write(toFile: "\(outside)/target", atomically: true, encoding: .utf8)
        chmod("\(outside)/target", 0o644)
        // Placed by the host's root (a user could not: protected_hardlinks).
        try #require(link("\(outside)/target", "\(dir)/alias") == 0)
        let policy = Self.policy("own-attacks", """
            read_only = ["\(outside)"]
            read_write = ["\(dir)"]
            """)
        let script = """
            cd \(dir)
            cp /bin/true t && chmod 4755 t 2>/dev/null && echo setuid-set
            chmod 2755 t 2>/dev/null && echo setgid-set
            python3 -c 'import os; os.close(os.open("u", os.O_CREAT | os.O_WRONLY, 0o4755))' 2>/dev/null || echo create-refused
            mknod dev c 1 3 2>/dev/null && echo mknod-made
            echo pwned >> alias 2>/dev/null && echo alias-written
            ln \(outside)/target ln2 2>/dev/null && echo linked
            echo end
            """
        let r = Harness.run(["/bin/sh", "-c", script], policy: policy)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.output == "create-refused\nend", "\(r.output)")
        #expect((try? String(contentsOfFile: "\(outside)/target", encoding: .utf8)) == "root's\n")
        var st = stat()
        #expect(stat("\(dir)/t", &st) == 0 && st.st_mode & (S_ISUID | S_ISGID) == 0 && st.st_uid == 4242,
                "t: mode \(String(st.st_mode, radix: 8)), uid \(st.st_uid)")
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/u"))
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/dev"))
        #expect(r.denied.contains("fchmodat") || r.denied.contains("fchmodat2") || r.denied.contains("chmod"), "\(r.denied)")
    }

    /// A file capability is a setuid bit by other means: with CAP_SETFCAP kept, a sandbox could
    /// write a v3 `security.capability` naming its own user as root, which the idmap turns into
    /// the bind's owner (root here), so any host user running the file would get those
    /// capabilities. A policy keeping CAP_SETFCAP with a writable bind is refused by name.
    @Test func noFileCapabilityThroughARootOwnedBindWithCapSetfcapKept() throws {
        let dir = try Self.directory("\(Harness.scratch)/own-fcaps")
        let policy = Self.policy("own-fcaps", """
            read_write = ["\(dir)"]

            [capabilities]
            keep = ["CAP_SETFCAP"]
            """)
        // v3, effective, permitted CAP_SETUID, rootid 1000 (the sandbox's user).
        let script = """
            import os, shutil, struct
            shutil.copy("/bin/true", "\(dir)/t")
            os.setxattr("\(dir)/t", "security.capability", struct.pack("<IIIIII", 0x03000001, 1 << 7, 0, 0, 0, 1000))
            print("set")
            """
        let r = Harness.run(["python3", "-c", script], policy: policy)
        let host = Harness.exec("/usr/bin/python3", ["-c", """
            import os
            try: print(len(os.getxattr("\(dir)/t", "security.capability")))
            except OSError as e: print("none")
            """])
        #expect(host.stdout == "none\n", "\(dir)/t carries a file capability on the host (\(host.stdout)\(host.stderr); sandbox said \(r.output))")
        #expect(r.status != 0 && r.stderr.contains("CAP_SETFCAP"), "\(r.stderr)")
    }

    /// "Whatever the profile says": a profile that allows chmod only under a condition of its
    /// own (here one on the path that every call meets) still cannot let a setuid bit through.
    @Test func noSetuidBitThroughAConditionalAllowInTheProfile() throws {
        let dir = try Self.directory("\(Harness.scratch)/own-conditional")
        let shipped = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(Harness.repo)/profiles/seccomp/default.json"))) as? [String: Any]
        var profile = try #require(shipped)
        var rules = try #require(profile["syscalls"] as? [[String: Any]])
        for i in rules.indices { rules[i]["names"] = (rules[i]["names"] as? [String])?.filter { $0 != "chmod" } }
        rules.append(["names": ["chmod"], "action": "SCMP_ACT_ALLOW",
                      "args": [["index": 0, "value": 0, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"]]])
        profile["syscalls"] = rules
        let profilePath = "\(Harness.scratch)/own-conditional.json"
        try JSONSerialization.data(withJSONObject: profile).write(to: URL(fileURLWithPath: profilePath))
        let policy = Self.policy("own-conditional", """
            read_write = ["\(dir)"]

            [seccomp]
            profile = "\(profilePath)"
            """)
        let r = Harness.run(["python3", "-c", """
            import os, shutil
            shutil.copy("/bin/true", "\(dir)/t")
            os.chmod("\(dir)/t", 0o755)
            try: os.chmod("\(dir)/t", 0o4755); print("setuid-set")
            except OSError: print("refused")
            """], policy: policy)
        #expect(r.output == "refused", "\(r.stdout) \(r.stderr)")
        var st = stat()
        #expect(stat("\(dir)/t", &st) == 0 && st.st_mode & (S_ISUID | S_ISGID) == 0, "mode \(String(st.st_mode, radix: 8))")
    }

    /// A setuid file bound read-write by itself could be rewritten through a shared mapping
    /// and keep its bit (the kernel clears it only on write and truncate): refused by name. So
    /// is a policy keeping CAP_FSETID beside a writable bind.
    @Test func aSetuidFileBindAndCapFsetidAreRefusedWithWritableBinds() throws {
        let dir = try Self.directory("\(Harness.scratch)/own-setuid-file")
        let file = "\(dir)/suid"
        try #require(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
        chmod(file, 0o4755)
        let bound = Harness.run(["/bin/true"], policy: Self.policy("own-setuid-file", "read_write = [\"\(file)\"]"))
        #expect(bound.status != 0 && bound.stderr.contains("\(file) is setuid or setgid (mode 4755)"), "\(bound.stderr)")
        let kept = Self.policy("own-fsetid", "read_write = [\"\(dir)\"]\n\n[capabilities]\nkeep = [\"CAP_FSETID\"]")
        let r = Harness.run(["/bin/true"], policy: kept)
        #expect(r.status != 0 && r.stderr.contains("CAP_FSETID with filesystem.read_write"), "\(r.stderr)")
    }

    /// The shipped unit's ProtectSystem/ProtectHome leave the daemon a read-only view of the
    /// host; a sandbox's writable bind is still writable (simulated: a private mount namespace
    /// with the directory remounted read-only, as systemd does).
    @Test func aWritableBindStaysWritableUnderAReadOnlyServiceView() throws {
        let dir = try Self.directory("\(Harness.scratch)/own-protected")
        let policy = Self.policy("own-protected", "read_write = [\"\(dir)\"]")
        let inner = [Harness.cordon, "run", "--policy", policy, "--state-dir", Harness.stateDir, "--runtime-dir", Harness.runtimeDir,
                     "--", "/bin/sh", "-c", "echo sandbox > \(dir)/written && echo ok"].map { "'\($0)'" }.joined(separator: " ")
        let r = Harness.exec("/usr/bin/unshare", ["--mount", "--propagation", "private", "/bin/sh", "-c", """
            mount --bind \(dir) \(dir) && mount -o remount,bind,ro \(dir) && \
            { touch \(dir)/by-service 2>/dev/null && echo service-wrote; true; } && \(inner)
            """])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "ok\n", "\(r.stdout)")
        #expect((try? String(contentsOfFile: "\(dir)/written", encoding: .utf8)) == "sandbox\n")
    }
}
