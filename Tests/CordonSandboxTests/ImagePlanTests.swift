import CordonConfig
import CordonPolicy
@testable import CordonSandbox
import Foundation
import Testing

/// The mount plan of a policy with `filesystem.image`, on an unpacked root in a scratch
/// directory: the image's top-level entries read-only (attach steps cordond clones), its
/// symlinks recreated, the policy's mounts over them — and never a mount through a symlink of the
/// image, which before pivot_root would land on the host.
@Suite struct ImagePlanTests {
    static func rootfs() throws -> String {
        let root = "\(FileManager.default.temporaryDirectory.path)/cordon-imageplan-\(getpid())-\(UUID().uuidString.prefix(6))"
        let fm = FileManager.default
        for dir in ["usr/bin", "usr/lib", "tmp", "dev", "proc", "var"] { try fm.createDirectory(atPath: "\(root)/\(dir)", withIntermediateDirectories: true) }
        try fm.createSymbolicLink(atPath: "\(root)/etc", withDestinationPath: "/tmp")
        try fm.createSymbolicLink(atPath: "\(root)/bin", withDestinationPath: "usr/bin")
        try fm.createSymbolicLink(atPath: "\(root)/var/run", withDestinationPath: "/run")
        try Data().write(to: URL(fileURLWithPath: "\(root)/usr/lib/os-release"))
        return root
    }

    static func plan(_ toml: String, root: String?) throws(MountPlanner.PlanError) -> [MountStep] {
        let policy = try! PolicyParser.parse(text: "[policy]\nname = \"p\"\n[filesystem]\nimage = \"/srv/i.tar\"\n" + toml, source: "p.toml", defaultName: "p")
        var planner = MountPlanner()
        planner.imageRoot = root
        return try planner.plan(policy).mounts
    }

    @Test func theImageIsTheRootAndThePolicyMountsGoOverIt() throws {
        let root = try Self.rootfs()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let steps = try Self.plan("tmpfs = [\"/tmp\"]\n", root: root)
        let images = steps.filter { $0.flags.contains(.image) }
        #expect(images.map(\.target).sorted() == ["/tmp", "/usr", "/var"])
        #expect(images.allSatisfy { $0.kind == .attach && $0.flags.contains(.readOnly) })
        #expect(steps.contains { $0.kind == .symlink && $0.target == "/bin" && $0.data == Array("usr/bin".utf8) })
        #expect(steps.contains { $0.kind == .symlink && $0.target == "/etc" })
        // dev, proc: the sandbox's own; no passwd written over the image's /etc.
        #expect(!images.contains { $0.target == "/dev" || $0.target == "/proc" })
        #expect(!steps.contains { $0.kind == .file && $0.target.hasPrefix("/etc/") })
        // The tmpfs goes over the image's /tmp, after it.
        let tmpImage = steps.firstIndex { $0.flags.contains(.image) && $0.target == "/tmp" }!
        let tmpfs = steps.firstIndex { $0.kind == .tmpfs && $0.target == "/tmp" }!
        #expect(tmpImage < tmpfs)
    }

    @Test(arguments: [
        ("hide = [\"/etc/shadow\"]\n", "filesystem.hide", "lies under the symlink /etc"),
        ("tmpfs = [\"/etc\"]\n", "filesystem.tmpfs", "lies under the symlink /etc"),
        ("read_only = [{ path = \"/etc/ssl\", source = \"/usr\" }]\n", "filesystem.read_only", "lies under the symlink /etc"),
        ("tmpfs = [\"/var/run/x\"]\n", "filesystem.tmpfs", "the image's /var/run is a symlink"),
        ("workdir = \"/var/run\"\n", "filesystem.workdir", "the image's /var/run is a symlink"),
        ("tmpfs = [\"/usr/share\"]\n", "filesystem.tmpfs", "which has no directory /usr/share to mount on"),
    ])
    func noMountGoesThroughASymlinkOfTheImage(_ c: (String, String, String)) throws {
        let root = try Self.rootfs()
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect { try Self.plan(c.0, root: root) } throws: { error in
            let e = error as! MountPlanner.PlanError
            return e.key == c.1 && e.message.contains(c.2)
        }
    }

    @Test func anImageNeedsCordondAndRefusesCapSysAdmin() throws {
        let root = try Self.rootfs()
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect { try Self.plan("", root: nil) } throws: { ($0 as! MountPlanner.PlanError).message.contains("prepared by cordond") }
        #expect { try Self.plan("[capabilities]\nkeep = [\"CAP_SYS_ADMIN\"]\n", root: root) } throws: {
            let e = $0 as! MountPlanner.PlanError
            return e.key == "capabilities.keep" && e.message.contains("remount the image's read-only mounts")
        }
    }
}

extension ImagePlanTests {
    /// A host symlink a policy recreates (merged /usr: /lib -> usr/lib) points into the image
    /// once there is one: nothing is mounted through it either.
    @Test(.enabled(if: FileManager.default.destinationOfSymbolicLinkOrNil("/lib") != nil, "the host's /lib is a symlink (merged /usr)"))
    func noMountGoesThroughALinkThePolicyRecreates() throws {
        let root = try Self.rootfs()
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect { try Self.plan("read_only = [\"/lib\", { path = \"/lib/firmware\", source = \"/usr\" }]\n", root: root) } throws: {
            let e = $0 as! MountPlanner.PlanError
            return e.key == "filesystem.read_only" && e.message.contains("lies under the symlink /lib")
        }
    }
}

extension FileManager {
    func destinationOfSymbolicLinkOrNil(_ path: String) -> String? { try? destinationOfSymbolicLink(atPath: path) }
}

/// A read-only bind of root's behind a directory private to root (the state dir, the package
/// store: 0700) is cloned by the parent at spawn — the child, nobody to the host's files, could
/// not walk to it — and a bind anyone may reach stays a bind the child makes. Decided at each
/// spawn, so a cached plan made while the path was open does not fail once it is closed.
@Suite(.enabled(if: geteuid() == 0, "needs root (root-owned files)"))
struct PrivateBindPlanTests {
    @Test func behindAPrivateDirectoryTheParentClones() throws {
        let top = "\(FileManager.default.temporaryDirectory.path)/cordon-privatebind-\(getpid())"
        let fm = FileManager.default
        defer { try? fm.removeItem(atPath: top) }
        try fm.createDirectory(atPath: "\(top)/private/site", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: "\(top)/open/site", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: "\(top)/private/db"))
        chmod(top, 0o755)
        chmod("\(top)/private", 0o755)
        chmod("\(top)/open", 0o755)
        let policy = try PolicyParser.parse(text: """
            [policy]
            name = "p"
            [filesystem]
            read_only = [{ path = "/a", source = "\(top)/private/site" }, { path = "/b", source = "\(top)/private/db" },
                         { path = "/c", source = "\(top)/open/site" }]
            read_write = [{ path = "/d", source = "\(top)/private/site" }]
            """, source: "p.toml", defaultName: "p")
        let planned = try PolicyStore(configDir: nil).spawnPlan(for: policy, cacheDir: nil, callerEnvironment: [:])
        // Planned while everything is open: binds, as ever.
        #expect(planned.mounts.first { $0.target == "/a" }?.kind == .bind)
        chmod("\(top)/private", 0o700)
        let plan = planned.withPrivateBindsCloned()
        func step(_ target: String) -> MountStep? { plan.mounts.first { $0.target == target } }
        #expect(step("/a")?.kind == .attach && step("/a")?.flags.isSuperset(of: [.image, .readOnly, .isDirectory]) == true)
        #expect(step("/b")?.kind == .attach && step("/b")?.flags.isSuperset(of: [.image, .readOnly]) == true)
        #expect(step("/c")?.kind == .bind)
        #expect(step("/d")?.kind == .attach && step("/d")?.flags.contains(.image) == false, "a writable bind stays idmapped")
        #expect(SpawnPlan.isRootsBehindPrivateDirectory("\(top)/private/db"))
        #expect(!SpawnPlan.isRootsBehindPrivateDirectory("\(top)/open/site"))
    }
}
