@testable import CordonDaemon
import CordonSystem
import Foundation
import Logging
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Removal of trees their writer shaped (the image store's of what a worker wrote, tasks' output
/// and changes of what a sandbox wrote): names in no encoding, directories nested past PATH_MAX
/// and past the descriptor limit, symlinks to what must survive. Everything goes, nothing outside.
@Suite struct ImageStoreTests {
    /// A tree shaped to defeat removal under `base`/`name`: a name that is not UTF-8, a symlink
    /// to `base`/outside (whose file must survive), and 3000 nested directories (past PATH_MAX,
    /// built through descriptors).
    static func hostileTree(_ base: String, _ name: String) throws -> String {
        try FileManager.default.createDirectory(atPath: "\(base)/outside", withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: URL(fileURLWithPath: "\(base)/outside/keep"))
        let work = "\(base)/\(name)"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: false)
        let w = open(work, O_RDONLY | O_DIRECTORY)
        let del = openat(w, "\u{7F}", O_CREAT | O_WRONLY, 0o600)
        #expect(del >= 0)
        close(del)
        var odd: [CChar] = [CChar(bitPattern: 0xFF), CChar(bitPattern: 0xFE), 0]
        let fd = openat(w, &odd, O_CREAT | O_WRONLY, 0o600)
        #expect(fd >= 0)
        close(fd)
        #expect(symlinkat("\(base)/outside", w, "out") == 0)
        var dir = dup(w)
        for _ in 0..<3000 {
            #expect(mkdirat(dir, "d", 0o755) == 0)
            let next = openat(dir, "d", O_RDONLY | O_DIRECTORY)
            let file = openat(next, &odd, O_CREAT | O_WRONLY, 0o600)
            #expect(file >= 0)
            close(file)
            close(dir)
            dir = next
        }
        close(dir)
        close(w)
        return work
    }

    @Test func whatAWorkerWroteIsRemovedWhateverItsShape() throws {
        let base = "/tmp/cordon-store-\(getpid())-\(UUID().uuidString.prefix(6))"
        defer { try? FileManager.default.removeItem(atPath: base) }
        let work = try Self.hostileTree(base, ".prepare-x")
        // The removal holds one directory open at a time, whatever the depth.
        let roots = ImageRoots(cacheDir: base, stateDir: base, environment: .init(runtimeDir: base), log: Logger(label: "test"))
        roots.remove(work)
        #expect(!FileManager.default.fileExists(atPath: work))
        #expect((try? String(contentsOfFile: "\(base)/outside/keep", encoding: .utf8)) == "keep")
    }

    /// The same shapes through `FileSystem.removeTree(path)`, which removes tasks' output and
    /// copy-on-write changes (names a sandbox chose); a missing path is fine, a file is removed,
    /// and a path ending in "/" names its directory.
    @Test func theDaemonsOtherRemovalsTakeTheSameShapes() throws {
        let base = "/tmp/cordon-tree-\(getpid())-\(UUID().uuidString.prefix(6))"
        defer { try? FileManager.default.removeItem(atPath: base) }
        let work = try Self.hostileTree(base, "changes")
        try FileSystem.removeTree(work + "/")
        #expect(!FileManager.default.fileExists(atPath: work))
        #expect((try? String(contentsOfFile: "\(base)/outside/keep", encoding: .utf8)) == "keep")
        try FileSystem.removeTree("\(base)/missing/below")
        try FileSystem.removeTree("\(base)/missing")
        try Data("x".utf8).write(to: URL(fileURLWithPath: "\(base)/file"))
        try FileSystem.removeTree("\(base)/file")
        #expect(!FileManager.default.fileExists(atPath: "\(base)/file"))
        #expect(throws: SystemError.self) { try FileSystem.removeTree("\(base)/..") }
    }
}
