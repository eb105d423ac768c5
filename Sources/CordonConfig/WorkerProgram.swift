import CordonSystem
#if canImport(Glibc)
import Glibc
#endif

/// A helper program Cordon runs inside sandboxes: `cordon-model-worker` (inside every
/// provider's sandbox, holding that provider's key) and `cordon-scan` (unpacking and scanning
/// images; the install gate's fetch, check and install). It must be root's and writable by
/// root only: anyone who could replace it would read keys, or pass any image or package.
public enum WorkerProgram {
    /// Beside cordond, in ../libexec/cordon from it, then the installed places.
    public static func candidates(_ name: String = "cordon-model-worker") -> [String] {
        var paths: [String] = []
        if let dir = FileSystem.executableDirectory {
            paths.append("\(dir)/\(name)")
            if let slash = dir.lastIndex(of: "/"), dir[dir.index(after: slash)...] == "bin" {
                paths.append("\(dir[..<slash])/libexec/cordon/\(name)")
            }
        }
        for path in ["/usr/libexec/cordon/\(name)", "/usr/bin/\(name)", "/usr/local/bin/\(name)"] where !paths.contains(path) { paths.append(path) }
        return paths
    }

    public struct NotFound: Error, CustomStringConvertible, Sendable { public var description: String }

    public static func locate(name: String = "cordon-model-worker") throws(NotFound) -> String {
        let paths = candidates(name)
        for path in paths where FileSystem.exists(path) {
            var st = stat()
            guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_uid == 0, st.st_mode & 0o022 == 0, st.st_mode & 0o111 != 0 else {
                throw NotFound(description: "\(path): \(name) must be a regular executable file owned by root and writable by root only")
            }
            return path
        }
        throw NotFound(description: "find \(name) (build it with `swift build`, or install it as /usr/libexec/cordon/\(name)); looked at \(paths.joined(separator: ", "))")
    }
}
