import CordonJSON
import CordonRPC
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Images as roots through a real cordond (docs/daemon.md, "Images as roots"): a policy whose
/// `filesystem.image` names an OCI layout or a docker save archive runs its tasks and sessions
/// on the image's files, unpacked once in a sandbox (whiteouts applied, no setuid bits, nothing
/// written through a symlink, devices refused), read-only, and refused when its scan reaches the
/// policy's `image_fail_on`. The images are built by make_root_image.py from the host's shell.
@Suite(.serialized) struct ImageRootTests {
    typealias W = WorkspaceTests
    static let users = "[access]\nusers = [\"\(W.alice)\", \"\(W.bob)\"]\n"
    static let generator = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("make_root_image.py").path

    /// A root-owned 0755 directory of images, as an admin keeps them.
    final class Images {
        let dir = "/tmp/cordon-images-\(getpid())-\(UUID().uuidString.prefix(6))"
        init() throws {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            chmod(dir, 0o755)
        }
        deinit { try? FileManager.default.removeItem(atPath: dir) }

        @discardableResult
        func make(_ name: String, _ format: String, _ flags: [String] = []) throws -> String {
            let path = "\(dir)/\(name)"
            let r = TestDaemon.exec("/usr/bin/python3", [ImageRootTests.generator, path, format] + flags)
            try #require(r.status == 0, "\(r.stderr)")
            return path
        }
    }

    static func policy(_ name: String, image: String, extra: String = "") -> String {
        "[policy]\nname = \"\(name)\"\n[filesystem]\nimage = \"\(image)\"\ntmpfs = [{ path = \"/tmp\", size = \"16M\", mode = \"1777\" }]\n\(extra)"
            + "[process]\nenv = { PATH = \"/bin\" }\n[limits]\nmemory = \"256M\"\npids = 64\nwall_time = \"30s\"\n" + users
    }

    static func daemon(_ policies: [String: String]) throws -> TestDaemon {
        let d = try TestDaemon(config: "[socket]\ngroup = \"\(W.socketGroup)\"\n", policies: policies)
        chmod(d.dir, 0o755)
        return d
    }

    static func submit(_ script: String, policy: String, id: Int = 1) -> JSON {
        CowWorkspaceTests.request("task.submit", [("argv", .array([.string("/bin/sh"), .string("-c"), .string(script)])), ("policy", .string(policy)),
                                                  ("wait", .bool(true))], id: id)
    }

    static func logs(_ d: TestDaemon, _ id: Int64?) -> String {
        (try? String(contentsOfFile: "\(d.stateDir)/tasks/\(id ?? 0)/stdout", encoding: .utf8)) ?? ""
    }

    /// The store's entries (one directory per prepared image).
    static func entries(_ d: TestDaemon) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "\(d.stateDir)/cache/images")) ?? []).filter { !$0.hasSuffix(".json") }.sorted()
    }

    /// What a program of the image sees: the image's files and only them, the second layer's
    /// whiteout and opaque directory applied, its hard link, the absolute symlink resolved inside,
    /// no set-user-ID bit, nothing writable; ten tasks in a row from one preparation, as the
    /// unprivileged alice through the socket.
    static let probe = """
        cat /etc/os-release /etc/motd; test -e /secret.txt && echo secret-present; for f in /keep/*; do echo "keep: $f"; done
        test -u /bin/suid-sh && echo setuid; test -e /bin/sh2 && echo hardlink; test -x /usr/bin/awk-alt && echo symlink-ok
        test -e /usr/lib && echo host-usr; test -e /etc/shadow && echo host-etc
        (echo x > /etc/written) 2>/dev/null || echo etc-read-only; (echo x > /bin/written) 2>/dev/null || echo bin-read-only
        echo x > /tmp/t && echo tmp-writable; cat /etc/resolv.conf
        while read k v rest; do [ "$k" = Uid: ] && echo "uid $v"; done < /proc/self/status; true
        """
    static let expected = """
        NAME=cordon-test-image
        from layer two
        keep: /keep/c
        hardlink
        symlink-ok
        etc-read-only
        bin-read-only
        tmp-writable
        nameserver 127.0.0.1
        options attempts:2 timeout:2
        uid 1000

        """

    @Test(.enabled(if: TestDaemon.isRoot, "cordond needs root"), arguments: ["oci-dir", "oci-tar", "docker"])
    func anImageRootedSandboxRunsAProgramFromTheImage(_ format: String) throws {
        let images = try Images()
        let image = try images.make("img", format)
        let d = try Self.daemon(["img": Self.policy("img", image: format == "docker" ? "\(image):cordon/test:1" : image)])
        var ids: [Int64] = []
        for i in 1...10 {
            let answer = W.asCaller(W.alice, d, [Self.submit(Self.probe, policy: "img", id: i)]).first
            let id = answer?["result"]?["id"]?.intValue
            #expect(answer?["result"]?["exitCode"] == .int(0), "\(String(describing: answer?["result"]?["exitCode"]?.text ?? answer?.text)) \(d.log().suffix(2000))")
            #expect(Self.logs(d, id) == Self.expected, "\(Self.logs(d, id))")
            ids.append(id ?? 0)
        }
        #expect(Set(ids).count == 10)
        // Prepared once; on the host, root's files without the set-user-ID bit.
        let entries = Self.entries(d)
        #expect(entries.count == 1, "\(entries)")
        let rootfs = "\(d.stateDir)/cache/images/\(entries.first ?? "")/rootfs"
        var st = stat()
        #expect(lstat("\(rootfs)/bin/suid-sh", &st) == 0 && st.st_mode & 0o7777 == 0o755 && st.st_uid == 0, "\(String(st.st_mode, radix: 8))")
        #expect(!FileManager.default.fileExists(atPath: "\(rootfs)/secret.txt"))
        let verdict = try JSON.parse(try String(contentsOfFile: "\(d.stateDir)/cache/images/\(entries.first ?? "").verdict.json", encoding: .utf8))
        #expect(verdict["worst"] == .string("medium") && verdict["layers"] == .int(2), "\(verdict.text)")
        #expect(verdict["findings"]?.arrayValue?.first?.stringValue?.contains("setuid-file") == true, "\(verdict.text)")
    }

    /// A session on an image keeps its state between commands, on the image's programs.
    @Test(.enabled(if: TestDaemon.isRoot, "cordond needs root"))
    func aSessionRunsOnTheImage() throws {
        let images = try Images()
        let d = try Self.daemon(["img": Self.policy("img", image: try images.make("img", "oci-dir"))])
        let created = W.asCaller(W.alice, d, [CowWorkspaceTests.request("session.create", [("policy", .string("img"))])]).first?["result"]
        let session = try #require(created?["id"]?.intValue, "\(String(describing: created?.text)) \(d.log())")
        func exec(_ script: String) -> JSON? {
            W.asCaller(W.alice, d, [CowWorkspaceTests.request("session.exec", [("id", .int(session)),
                                                                              ("argv", .array([.string("/bin/sh"), .string("-c"), .string(script)]))])]).first?["result"]
        }
        _ = exec("echo kept > /tmp/state")
        let second = exec("cat /tmp/state /etc/motd")
        let out = second?["stdout"]?.stringValue.flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) }
        #expect(out == "kept\nfrom layer two\n", "\(String(describing: second?.text))")
        _ = W.asCaller(W.alice, d, [CowWorkspaceTests.request("session.close", [("id", .int(session))])])
    }

    /// Capabilities a policy keeps do not make the image writable: with CAP_DAC_OVERRIDE,
    /// CAP_FOWNER and CAP_CHOWN the workload still cannot write, create, remove, chmod or chown
    /// the image's files — read-only mounts of files whose owner, host root, has no uid inside
    /// (they read as nobody's).
    @Test(.enabled(if: TestDaemon.isRoot, "cordond needs root"))
    func keptCapabilitiesDoNotMakeTheImageWritable() throws {
        let images = try Images()
        let image = try images.make("img", "oci-dir", ["--tools"])
        let caps = "[capabilities]\nkeep = [\"CAP_DAC_OVERRIDE\", \"CAP_FOWNER\", \"CAP_CHOWN\"]\n"
        let d = try Self.daemon(["caps": Self.policy("caps", image: image, extra: caps)])
        let script = """
            stat -c '%u:%g %a %n' /etc/motd /bin/sh /etc
            while read k v; do [ "$k" = CapEff: ] && echo "effective $v"; done < /proc/self/status
            (echo x > /etc/motd) 2>&1; (echo x > /etc/new) 2>&1; rm -f /etc/motd 2>&1; touch /bin/new 2>&1
            chmod 777 /etc/motd 2>&1; chown 1000 /etc/motd 2>&1; cat /etc/motd; true
            """
        let answer = W.asCaller(W.alice, d, [Self.submit(script, policy: "caps")]).first?["result"]
        #expect(answer?["exitCode"] == .int(0), "\(String(describing: answer?.text)) \(d.log().suffix(1500))")
        let out = Self.logs(d, answer?["id"]?.intValue)
        let lines = out.split(separator: "\n").map(String.init)
        #expect(lines.prefix(3) == ["65534:65534 644 /etc/motd", "65534:65534 755 /bin/sh", "65534:65534 755 /etc"], "\(out)")
        #expect(lines.contains { $0.hasPrefix("effective ") && $0 != "effective 0000000000000000" }, "the capabilities were not kept: \(out)")
        #expect(out.components(separatedBy: "Read-only file system").count - 1 >= 6, "\(out)")
        #expect(lines.last == "from layer two", "\(out)")
    }

    /// Refused, with the reason, and nothing left behind: an image whose scan reaches the gate
    /// (a private key, at the default "high"), unless the policy's gate is above it; one with a
    /// device node; one that writes through a symlink; one someone other than root could change;
    /// one that is not there.
    @Test(.enabled(if: TestDaemon.isRoot, "cordond needs root"))
    func imagesThatMustNotRunAreRefused() throws {
        let images = try Images()
        let key = try images.make("key.tar", "oci-tar", ["--key"])
        let device = try images.make("device.tar", "oci-tar", ["--device"])
        let escape = try images.make("escape", "oci-dir", ["--escape"])
        let loose = try images.make("loose.tar", "docker")
        chmod(loose, 0o666)
        // Root's image in a directory alice owns: she could rename another in its place.
        let hers = "\(images.dir)/alice"
        try FileManager.default.createDirectory(atPath: hers, withIntermediateDirectories: true)
        let inHers = try images.make("alice/img.tar", "docker")
        chown(hers, W.alice, W.alice)
        chmod(hers, 0o755)
        let d = try Self.daemon([
            "key": Self.policy("key", image: key), "keyok": Self.policy("keyok", image: key, extra: "image_fail_on = \"critical\"\n"),
            "device": Self.policy("device", image: device), "escape": Self.policy("escape", image: escape),
            "loose": Self.policy("loose", image: loose), "gone": Self.policy("gone", image: "\(images.dir)/gone.tar"),
            "hers": Self.policy("hers", image: inHers),
        ])
        func refusal(_ policy: String) -> String {
            let answer = W.asCaller(W.alice, d, [Self.submit("echo ran", policy: policy)]).first
            #expect(answer?["error"]?["code"] == .int(RPCCode.policyError), "\(policy): \(String(describing: answer?.text))")
            return answer?["error"]?["message"]?.stringValue ?? ""
        }
        let keyRefusal = refusal("key")
        #expect(keyRefusal.contains("found high problems") && keyRefusal.contains("private-key") && keyRefusal.contains("image_fail_on"), "\(keyRefusal)")
        // The same image, under a gate above what it has: it runs (prepared once for both).
        let allowed = W.asCaller(W.alice, d, [Self.submit("cat /root/id_rsa >/dev/null 2>&1 || echo unreadable; echo ran", policy: "keyok")]).first?["result"]
        #expect(allowed?["exitCode"] == .int(0) && Self.logs(d, allowed?["id"]?.intValue) == "unreadable\nran\n", "\(String(describing: allowed?.text))")
        #expect(refusal("device").contains("character device"))
        let escaped = refusal("escape")
        #expect(escaped.contains("evil is a symlink or a file in the image"), "\(escaped)")
        #expect(!FileManager.default.fileExists(atPath: "/etc/cordon-escape"))
        #expect(refusal("loose").contains("writable only by root"))
        #expect(refusal("gone").contains("No such file"))
        let inAlices = refusal("hers")
        #expect(inAlices.contains("a directory on the way to the image, must be root's") && inAlices.contains("uid \(W.alice)'s"), "\(inAlices)")
        // Nothing half-made stays: the key image's entry only.
        #expect(Self.entries(d).count == 1, "\(Self.entries(d))")
        #expect(d.log().contains("\"level\":\"error\"") == false || !d.log().contains("crash"))
    }

    /// An image changed in place is prepared again at its next use; the entry of the old one is
    /// removed at the next start, when no sandbox can be using it.
    @Test(.enabled(if: TestDaemon.isRoot, "cordond needs root"))
    func aChangedImageIsPreparedAgainAndTheOldOneRemovedAtStart() throws {
        let images = try Images()
        let image = try images.make("img.tar", "oci-tar")
        let d = try Self.daemon(["img": Self.policy("img", image: image)])
        let first = W.asCaller(W.alice, d, [Self.submit("cat /etc/os-release", policy: "img")]).first?["result"]
        #expect(Self.logs(d, first?["id"]?.intValue) == "NAME=cordon-test-image\n", "\(String(describing: first?.text))")
        try images.make("img.tar", "oci-tar", ["--tag", "cordon/test:2"])
        let second = W.asCaller(W.alice, d, [Self.submit("cat /etc/os-release", policy: "img", id: 2)]).first?["result"]
        #expect(second?["exitCode"] == .int(0), "\(String(describing: second?.text))")
        #expect(Self.entries(d).count == 2, "\(Self.entries(d))")
        d.signal(SIGTERM)
        #expect(d.waitExit(20) != nil)
        try d.start()
        #expect(Self.entries(d).count == 1, "\(Self.entries(d))")
        let third = W.asCaller(W.alice, d, [Self.submit("cat /etc/os-release", policy: "img", id: 3)]).first?["result"]
        #expect(Self.logs(d, third?["id"]?.intValue) == "NAME=cordon-test-image\n", "\(String(describing: third?.text))")
        #expect(Self.entries(d).count == 1, "\(Self.entries(d))")
    }
}
