import CordonSystem
import Foundation
import Glibc
import Testing

/// `FileSystem.realPath` answers as realpath(3) does, whether it takes its one-call path (a
/// normal absolute path through no symlink) or realpath's own.
@Suite struct RealPathTests {
    static func reference(_ path: String) -> String? {
        guard let r = realpath(path, nil) else { return nil }
        defer { free(r) }
        return String(cString: r)
    }

    @Test func agreesWithRealpathOnEveryShape() throws {
        let base = "\(NSTemporaryDirectory())cordon-realpath-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: base) }
        let fm = FileManager.default
        try fm.createDirectory(atPath: "\(base)/real/inner", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: "\(base)/real/inner/file"))
        // Components that only look like "." and "..".
        for odd in ["...", ".d", "..e", "f."] { try fm.createDirectory(atPath: "\(base)/real/\(odd)", withIntermediateDirectories: true) }
        try fm.createSymbolicLink(atPath: "\(base)/link", withDestinationPath: "real")
        try fm.createSymbolicLink(atPath: "\(base)/real/inner/last", withDestinationPath: "file")
        try fm.createSymbolicLink(atPath: "\(base)/dangling", withDestinationPath: "nowhere")
        let paths = [
            "/", "\(base)", "\(base)/real/inner/file", "\(base)/link/inner/file", "\(base)/real/inner/last",
            "\(base)/dangling", "\(base)/missing", "\(base)/missing/deeper", "\(base)/real/inner/file/under",
            "\(base)/real/../real/inner", "\(base)/real/./inner", "\(base)/real/inner/", "\(base)//real", "\(base)/real/.",
            "\(base)/link", "/proc/self/exe", "/proc/self", "real/inner", "", "/bin", "/usr/bin",
            "\(base)/real/...", "\(base)/real/.d", "\(base)/real/..e", "\(base)/real/f.", "\(base)/real/...//inner",
            "\(base)/real/inner/..", "\(base)/real/inner/.", "/..", "/.", "//", "/./", "\(base)/real/.d/..",
        ]
        for path in paths {
            #expect(FileSystem.realPath(path) == Self.reference(path), "\(path)")
        }
    }
}
