@testable import CordonDaemon
import Foundation
import Logging
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The image store's removal of what a worker wrote, which a subverted worker shapes: names in
/// no encoding, directories nested past PATH_MAX and past the descriptor limit, symlinks to
/// what must survive. Everything goes, nothing outside.
@Suite struct ImageStoreTests {
    @Test func whatAWorkerWroteIsRemovedWhateverItsShape() throws {
        let base = "/tmp/cordon-store-\(getpid())-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: "\(base)/outside", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: base) }
        try Data("keep".utf8).write(to: URL(fileURLWithPath: "\(base)/outside/keep"))
        let work = "\(base)/.prepare-x"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: false)
        // A name that is not UTF-8, a symlink out, and 3000 nested directories (past PATH_MAX,
        // built through descriptors).
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
        // The removal holds one directory open at a time, whatever the depth.
        let roots = ImageRoots(cacheDir: base, stateDir: base, environment: .init(runtimeDir: base), log: Logger(label: "test"))
        roots.remove(work)
        #expect(!FileManager.default.fileExists(atPath: work))
        #expect((try? String(contentsOfFile: "\(base)/outside/keep", encoding: .utf8)) == "keep")
    }
}
