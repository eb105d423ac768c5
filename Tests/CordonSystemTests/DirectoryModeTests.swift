import CordonSystem
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Directories Cordon makes have the mode it names, whatever the umask (the test process's
/// narrows 0o775 to 0o755 under the usual 022): a runtime directory others must search was
/// made 0700 under a caller's 077 and every sandbox under it failed. The umask itself is not
/// changed here: it is the process's, and other tests run meanwhile.
struct DirectoryModeTests {
    static func mode(_ path: String) -> mode_t {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_mode & 0o7777 : 0
    }

    @Test func theModeIsExactAndAnInheritedSetgidIsKept() throws {
        var template = Array("/tmp/cordon-dirmode-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw SystemError("mkdtemp", errno: errno) }
        let base = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        defer { try? FileManager.default.removeItem(atPath: base) }
        chmod(base, 0o755)
        try FileSystem.makeDirectories("\(base)/a/b", mode: 0o775)
        #expect(Self.mode("\(base)/a/b") == 0o775)
        // Others may search the leaf, so they may search its parents.
        #expect(Self.mode("\(base)/a") == 0o755)
        try FileSystem.ensureDirectory("\(base)/c", mode: 0o771)
        #expect(Self.mode("\(base)/c") == 0o771)
        // An existing directory is left as it is.
        chmod("\(base)/c", 0o700)
        try FileSystem.ensureDirectory("\(base)/c", mode: 0o755)
        #expect(Self.mode("\(base)/c") == 0o700)
        // Under a setgid parent the new directory inherits the bit (group-shared trees).
        chmod("\(base)/a", 0o2775)
        try FileSystem.ensureDirectory("\(base)/a/shared", mode: 0o775)
        #expect(Self.mode("\(base)/a/shared") == 0o2775)
    }
}
