import CLinux
import CordonSystem
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Opening a directory as a caller (`CallerFiles.openDirectory`): the kernel decides with the
/// caller's uid, gid and groups, never with root's; symlinks, `..` and unreachable paths are
/// refused; what comes back is the directory that was checked even if its path is swapped after;
/// and no thread of the process keeps the caller's identity.
///
/// Needs root (to be someone else, and to make directories owned by others). Two callers with no
/// account on the machine stand for two unprivileged users: 61001 and 61002 (their numbers are
/// all the kernel needs).
@Suite(.enabled(if: geteuid() == 0, "needs root: takes on other users' identities"), .serialized)
struct CallerFilesTests {
    static let alice = CallerFiles.Caller(uid: 61001, gid: 61001, groups: [61001])
    static let bob = CallerFiles.Caller(uid: 61002, gid: 61002, groups: [61002, 61100])

    /// A root-owned 755 scratch directory holding:
    /// - alice/ (alice's, 700), alice/project/ (alice's, 755), alice/readonly/ (alice's, 555)
    /// - shared/ (root:61100, 770: bob reaches it through his supplementary group, alice not)
    /// - link -> alice/project
    /// - file (root's, 644)
    final class Tree {
        let root: String

        init() throws {
            root = "/tmp/cordon-caller-files-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            func dir(_ path: String, _ mode: mode_t, _ uid: uid_t, _ gid: gid_t) throws {
                guard mkdir(path, mode) == 0, chown(path, uid, gid) == 0, chmod(path, mode) == 0 else {
                    throw SystemError("mkdir", path: path, errno: errno)
                }
            }
            try dir(root, 0o755, 0, 0)
            try dir("\(root)/alice", 0o700, 61001, 61001)
            try dir("\(root)/alice/project", 0o755, 61001, 61001)
            try dir("\(root)/alice/readonly", 0o555, 61001, 61001)
            try dir("\(root)/shared", 0o770, 0, 61100)
            guard symlink("\(root)/alice/project", "\(root)/link") == 0 else { throw SystemError("symlink", errno: errno) }
            guard FileManager.default.createFile(atPath: "\(root)/file", contents: Data("x".utf8)) else { throw SystemError("create", errno: EIO) }
        }

        deinit { try? FileManager.default.removeItem(atPath: root) }
    }

    /// Why `caller` may not open `path`, or nil when they may (the descriptor is closed again).
    func refusal(_ path: String, _ caller: CallerFiles.Caller, writable: Bool = true) -> CallerFiles.Refusal? {
        do throws(CallerFiles.Refusal) {
            _ = try CallerFiles.openDirectory(path, as: caller, writable: writable)
            return nil
        } catch {
            return error
        }
    }

    func opens(_ path: String, _ caller: CallerFiles.Caller, writable: Bool = true) -> Bool {
        refusal(path, caller, writable: writable) == nil
    }

    /// What an fd names now, from /proc.
    func target(_ fd: borrowing Descriptor) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd.raw)")
    }

    @Test func aCallerOpensWhatTheyMayWriteAndNotWhatTheyMayNot() throws {
        let t = try Tree()
        let mine = try CallerFiles.openDirectory("\(t.root)/alice/project", as: Self.alice, writable: true)
        #expect(target(mine) == "\(t.root)/alice/project")
        // bob cannot search alice's 700 home, root could: refused as bob.
        #expect(refusal("\(t.root)/alice/project", Self.bob)?.errno == EACCES)
        // A directory alice may read but not write: fine read-only, refused read-write.
        #expect(opens("\(t.root)/alice/readonly", Self.alice, writable: false))
        #expect(refusal("\(t.root)/alice/readonly", Self.alice)?.errno == EACCES)
        // Through a supplementary group: bob's, not alice's.
        #expect(opens("\(t.root)/shared", Self.bob))
        #expect(refusal("\(t.root)/shared", Self.alice)?.errno == EACCES)
        // Root's 755 directory: readable by anyone, writable by no caller.
        #expect(opens(t.root, Self.alice, writable: false))
        #expect(refusal(t.root, Self.alice)?.message.contains("you may not write") == true)
    }

    @Test func symlinksDotDotAndOtherShapesAreRefused() throws {
        let t = try Tree()
        // The link points at alice's own directory, and is still refused: a path is named as it is.
        #expect(refusal("\(t.root)/link", Self.alice)?.errno == ELOOP)
        #expect(refusal("\(t.root)/alice/project/../project", Self.alice)?.errno == EINVAL)
        #expect(refusal("\(t.root)/alice/./project", Self.alice)?.errno == EINVAL)
        #expect(refusal("\(t.root)//alice/project", Self.alice)?.errno == EINVAL)
        #expect(refusal("\(t.root)/alice/project/", Self.alice)?.errno == EINVAL)
        #expect(refusal("alice/project", Self.alice)?.errno == EINVAL)
        #expect(refusal("\(t.root)/file", Self.alice)?.errno == ENOTDIR)
        #expect(refusal("\(t.root)/nothing", Self.alice)?.errno == ENOENT)
        #expect(refusal("/proc/self/cwd", Self.alice) != nil)
        let message = refusal("\(t.root)/link", Self.alice)?.message ?? ""
        #expect(message.contains("\(t.root)/link") && message.contains("symlink"))
    }

    /// The descriptor is the directory that was checked: swapping another in at its path after
    /// the open changes nothing it names.
    @Test func aDirectorySwappedInAfterTheCheckIsNotWhatWasOpened() throws {
        let t = try Tree()
        let fd = try CallerFiles.openDirectory("\(t.root)/alice/project", as: Self.alice, writable: true)
        var before = stat(), after = stat()
        #expect(fstat(fd.raw, &before) == 0)
        #expect(rename("\(t.root)/alice/project", "\(t.root)/alice/moved") == 0)
        #expect(mkdir("\(t.root)/alice/project", 0o777) == 0)  // root's now, at the same path
        #expect(fstat(fd.raw, &after) == 0)
        #expect(before.st_ino == after.st_ino && after.st_uid == 61001)
        #expect(target(fd) == "\(t.root)/alice/moved")
    }

    /// The thread that became the caller ends; every thread left, this test's included, is still
    /// root in all four ids (real, effective, saved, file-system), with no caller's group, and
    /// can still open alice's 700 directory.
    @Test func noThreadKeepsTheCallersIdentity() throws {
        let t = try Tree()
        for _ in 0..<20 { #expect(!opens("\(t.root)/alice/project", Self.bob)) }
        #expect(opens("\(t.root)/alice/project", Self.alice))
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")
        #expect(!tasks.isEmpty)
        for task in tasks {
            guard let status = try? String(contentsOfFile: "/proc/self/task/\(task)/status", encoding: .utf8) else { continue }
            for line in status.split(separator: "\n") where line.hasPrefix("Uid:") || line.hasPrefix("Gid:") || line.hasPrefix("Groups:") {
                let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst()
                if line.hasPrefix("Groups:") {
                    #expect(!fields.contains("61001") && !fields.contains("61100"), "thread \(task): \(line)")
                } else {
                    #expect(fields.count == 4 && fields.allSatisfy { $0 == "0" }, "thread \(task): \(line)")
                }
            }
        }
        let fd = Glibc.open("\(t.root)/alice", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        #expect(fd >= 0, "root still reads alice's 700 directory: \(errno)")
        if fd >= 0 { close(fd) }
    }
}
