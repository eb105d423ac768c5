import CordonJSON
@testable import CordonStore
import CordonSystem
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The package store as the install gate uses it (root: the store is root's): blobs copied and
/// hashed at once, sets kept only after their tree is checked and sealed, gc that lists before
/// it removes and never empties a set in place, one holder of the store at a time.
@Suite(.enabled(if: geteuid() == 0, "needs root: the store and what workers write are root's"))
final class PackageStoreTests {
    let dir: String
    let store: PackageStore

    init() throws {
        dir = "/tmp/cordon-store-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        store = try PackageStore(root: "\(dir)/store")
    }

    deinit {
        _ = try? FileSystem.removeTree(dir)
    }

    func file(_ name: String, _ text: String) throws -> Int32 {
        let path = "\(dir)/\(name)"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        try #require(fd >= 0)
        return fd
    }

    func sha256(_ text: String) -> String {
        var h = SHA256()
        h.update(Array(text.utf8))
        return h.hexDigest()
    }

    /// A worker's tree: `site/pkg/__init__.py` and whatever `extra` adds.
    func tree(_ extra: (String) throws -> Void = { _ in }) throws -> String {
        let work = try store.workDirectory()
        try FileManager.default.createDirectory(atPath: "\(work)/site/pkg", withIntermediateDirectories: true)
        try "x = 1\n".write(toFile: "\(work)/site/pkg/__init__.py", atomically: true, encoding: .utf8)
        try extra(work)
        return work
    }

    func lock(_ blobs: [String]) -> JSON {
        .object([("files", .array(blobs.map { .object([("name", .string("p")), ("sha256", .string($0))]) }))])
    }

    @Test func aBlobIsItsBytesHashedAsTheyAreCopied() throws {
        let fd = try file("a.whl", "wheel bytes")
        defer { close(fd) }
        let blob = try store.addBlob(copying: fd, maxBytes: 1 << 20)
        #expect(blob.sha256 == sha256("wheel bytes") && blob.size == 11 && blob.path == "\(store.blobs)/\(blob.sha256)")
        var st = stat()
        #expect(lstat(blob.path, &st) == 0 && st.st_mode & 0o7777 == 0o444 && st.st_uid == 0)
        #expect(try store.addBlob(copying: fd, maxBytes: 1 << 20) == blob, "the same bytes, the same blob")
        #expect(store.blob(blob.sha256) == blob)
        // A blob whose bytes changed on disk is not that blob any more, and adding it again repairs it.
        chmod(blob.path, 0o644)
        try "tampered".write(toFile: blob.path, atomically: false, encoding: .utf8)
        #expect(store.blob(blob.sha256) == nil)
        #expect(try store.addBlob(copying: fd, maxBytes: 1 << 20) == blob && store.blob(blob.sha256) == blob)
        #expect(throws: PackageStore.Problem.self) { try self.store.addBlob(copying: fd, maxBytes: 4) }
        #expect(FileSystem.listDirectory("\(store.root)/blobs").filter { $0.hasPrefix(".tmp-") }.isEmpty, "nothing half-written left")
    }

    @Test func aSetIsKeptCheckedAndSealed() throws {
        let fd = try file("a.whl", "wheel")
        defer { close(fd) }
        let blob = try store.addBlob(copying: fd, maxBytes: 1 << 20)
        let hash = sha256("lock text")
        let kept = try store.keepSet(try tree(), hash: hash, lock: lock([blob.sha256]), record: .object([("ok", .bool(true))]))
        #expect(kept.path == "\(store.sets)/\(hash)" && kept.blobs == [blob.sha256])
        var st = stat()
        #expect(lstat("\(kept.site)/pkg", &st) == 0 && st.st_mode & 0o7777 == 0o555)
        #expect(lstat("\(kept.site)/pkg/__init__.py", &st) == 0 && st.st_mode & 0o7777 == 0o444)
        #expect(lstat("\(kept.path)/lock.json", &st) == 0 && st.st_mode & 0o7777 == 0o444)
        #expect(store.installedSets().map(\.hash) == [hash])
        // The same hash again: the kept set stays, the new work goes.
        let again = try store.keepSet(try tree { try "y".write(toFile: "\($0)/site/other.py", atomically: true, encoding: .utf8) },
                                      hash: hash, lock: lock([blob.sha256]), record: .null)
        #expect(again.path == kept.path && !FileManager.default.fileExists(atPath: "\(kept.site)/other.py"))
        #expect(FileSystem.listDirectory(store.root).filter { $0.hasPrefix(".tmp-") }.isEmpty)
    }

    /// What a subverted worker could leave in its tree is refused, and nothing is kept.
    @Test(arguments: ["setuid", "foreign owner", "fifo", "symlink", "no site"])
    func aTreeWithWhatAWorkerMustNotWriteIsRefused(_ what: String) throws {
        let work = try tree { work in
            let path = "\(work)/site/pkg/bad"
            switch what {
            case "setuid":
                try "x".write(toFile: path, atomically: true, encoding: .utf8)
                chmod(path, 0o4755)
            case "foreign owner":
                try "x".write(toFile: path, atomically: true, encoding: .utf8)
                chown(path, 1000, 1000)
            case "fifo": mkfifo(path, 0o644)
            case "symlink": symlink("/etc/shadow", path)
            default: try FileManager.default.removeItem(atPath: "\(work)/site")
            }
        }
        let says = ["setuid": "set-user-ID", "foreign owner": "belongs to 1000:1000", "fifo": "is not a directory or regular file",
                    "symlink": "is not a directory or regular file", "no site": "no site directory"][what]!
        do {
            _ = try store.keepSet(work, hash: sha256(what), lock: lock([]), record: .null)
            Issue.record("kept a tree with \(what)")
        } catch {
            #expect(error.description.contains(says), "\(error)")
        }
        #expect(store.installedSets().isEmpty && !FileManager.default.fileExists(atPath: work))
    }

    /// gc lists before it removes; keeps what it is told to and the blobs those sets hold; moves
    /// a set aside instead of emptying it, so a sandbox that has it mounted keeps seeing it.
    @Test func gcListsThenRemovesAndNeverEmptiesASetInPlace() throws {
        let a = try file("a.whl", "a"), b = try file("b.whl", "b"), c = try file("c.whl", "c")
        defer { for fd in [a, b, c] { close(fd) } }
        let blobA = try store.addBlob(copying: a, maxBytes: 10), blobB = try store.addBlob(copying: b, maxBytes: 10)
        let loose = try store.addBlob(copying: c, maxBytes: 10)
        let keep = try store.keepSet(try tree(), hash: sha256("keep"), lock: lock([blobA.sha256]), record: .null)
        let drop = try store.keepSet(try tree(), hash: sha256("drop"), lock: lock([blobB.sha256]), record: .null)

        // A blob no set holds yet is kept while young: an install may be about to keep its set;
        // and so is a set just kept (or used): an install may be on its way to binding it.
        let young = try store.collect(keeping: [keep.hash], dryRun: true)
        #expect(young.blobs.isEmpty && young.sets.isEmpty)
        let listed = try store.collect(keeping: [keep.hash], dryRun: true, blobGraceSeconds: 0, setGraceSeconds: 0)
        #expect(listed.sets == [drop.hash] && Set(listed.blobs) == [blobB.sha256, loose.sha256] && listed.bytes == 2)
        #expect(store.installedSets().count == 2 && store.blob(blobB.sha256) != nil, "a dry run changes nothing")

        // The dropped set is mounted somewhere, as a sandbox would have it.
        let mountPoint = "\(dir)/mounted"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        try #require(mount(drop.site, mountPoint, nil, UInt(MS_BIND), nil) == 0, "bind mount: \(SystemError.text(errno))")
        defer { umount2(mountPoint, Int32(MNT_DETACH)) }

        let removed = try store.collect(keeping: [keep.hash], dryRun: false, blobGraceSeconds: 0, setGraceSeconds: 0)
        #expect(removed == listed)
        #expect(store.installedSets().map(\.hash) == [keep.hash] && store.blob(blobA.sha256) != nil)
        #expect(store.blob(blobB.sha256) == nil && store.blob(loose.sha256) == nil)
        #expect(FileManager.default.fileExists(atPath: "\(mountPoint)/pkg/__init__.py"), "the mounted set was emptied")
        #expect(FileSystem.listDirectory(store.root).contains { $0.hasPrefix(".stale-\(drop.hash)") })
        umount2(mountPoint, Int32(MNT_DETACH))
        // The next start removes what was moved aside.
        #expect(store.removeStale().isEmpty)
        #expect(!FileSystem.listDirectory(store.root).contains { $0.hasPrefix(".stale-") || $0.hasPrefix(".tmp-") })
    }

    /// Work in progress is private (0700) while a worker writes it, and left alone while the
    /// process doing it lives; an interrupted install's work goes at the next start.
    @Test func workIsPrivateAndOnlyTheDeadsIsStale() throws {
        let work = try store.workDirectory()
        var st = stat()
        #expect(stat(work, &st) == 0 && st.st_mode & 0o7777 == 0o700)
        // A pid that was in use and is gone: a child that has exited and been waited for.
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try child.run()
        child.waitUntilExit()
        let dead = "\(store.root)/.tmp-\(child.processIdentifier)-1", live = "\(store.root)/.tmp-1-1"
        for path in [dead, live] { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false) }
        #expect(store.removeStale(setsAside: false).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: dead), "an exited process's work is stale")
        #expect(FileManager.default.fileExists(atPath: live) && FileManager.default.fileExists(atPath: work), "a live process's work is not")
    }

    @Test func oneHolderAtATime() throws {
        let work = try store.workDirectory()
        let fd = open("\(store.root)/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        try #require(fd >= 0 && flock(fd, LOCK_EX) == 0)
        defer { close(fd) }
        do {
            _ = try store.collect(keeping: [], dryRun: false)
            Issue.record("gc ran while another held the store")
        } catch {
            #expect(error.description.contains("is busy: another install or gc holds it"), "\(error)")
        }
        // Another process's start-up leaves this one's work in progress alone.
        #expect(store.removeStale().isEmpty && FileManager.default.fileExists(atPath: work))
    }
}
