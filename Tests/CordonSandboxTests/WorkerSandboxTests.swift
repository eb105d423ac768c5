import CordonJSON
import CordonSandbox
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Cordon's workers in their sandbox (`WorkerSandbox`): `cordon-scan check` reads the install
/// gate's crafted packages from a read-only bind as an unprivileged uid with no network, and
/// says what it says on the host; an archive handed over as a descriptor passes straight in;
/// a member that climbs out and a bomb stop inside the worker.
@Suite(.enabled(if: Harness.isRoot, "needs root (namespaces, cgroups)"))
struct WorkerSandboxTests {
    static let scanner = "\(Harness.productsDir)/cordon-scan"

    /// The crafted packages in a root-owned 0755 directory, files 0644, as the store keeps blobs.
    static let packages: String = {
        let dir = "\(Harness.scratch)/packages"
        let r = Harness.exec("/usr/bin/python3", ["\(Harness.repo)/Tests/CordonScannerTests/make_packages.py", dir])
        precondition(r.status == 0, "make_packages.py: \(r.stderr)")
        chmod(dir, 0o755)
        return dir
    }()

    func run(_ argv: [String], stdin: Int32? = nil, stdoutLimit: Int = 1 << 20) throws -> WorkerSandbox.Outcome {
        try FileManager.default.createDirectory(atPath: Harness.runtimeDir, withIntermediateDirectories: true)
        let scratch = "\(Harness.scratch)/worker-out"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        return try WorkerSandbox.run(argv: argv, binds: [WorkerSandbox.Bind(Self.scanner, at: "/cordon/cordon-scan"), WorkerSandbox.Bind(Self.packages, at: "/in")],
                                     limits: WorkerSandbox.Limits(memoryBytes: 512 << 20, wallSeconds: 60), stdin: stdin, scratch: scratch,
                                     environment: SandboxEnvironment(runtimeDir: Harness.runtimeDir), seccompCache: nil, stdoutLimit: stdoutLimit)
    }

    func lines(_ outcome: WorkerSandbox.Outcome) -> [String: JSON] {
        var out: [String: JSON] = [:]
        for line in String(decoding: outcome.stdout ?? [], as: UTF8.self).split(separator: "\n") {
            if let j = try? JSON.parse(Array(line.utf8)), let f = j["filename"]?.stringValue { out[f] = j }
        }
        return out
    }

    @Test func theScanWorkerSaysInItsSandboxWhatItSaysOnTheHost() throws {
        let files = ["cordon_clean-1.0-py3-none-any.whl", "cordon_pth-1.0-py3-none-any.whl", "cordon_escape-1.0-py3-none-any.whl",
                     "cordon_bomb-1.0-py3-none-any.whl", "cordon_twice-1.0-py3-none-any.whl", "reqeusts-1.0-py3-none-any.whl"]
        func manifest(_ root: String) -> String {
            files.map { f in
                let parts = f.split(separator: "-")
                return JSON.object([("file", .string("\(root)/\(f)")), ("name", .string(parts[0].replacingOccurrences(of: "_", with: "-"))),
                                    ("version", .string(String(parts[1]))), ("filename", .string(f))]).text
            }.joined(separator: "\n")
        }
        let inside = "\(Self.packages)/inside.jsonl", host = "\(Self.packages)/host.jsonl"
        try manifest("/in").write(toFile: inside, atomically: true, encoding: .utf8)
        try manifest(Self.packages).write(toFile: host, atomically: true, encoding: .utf8)
        chmod(inside, 0o644)
        let outcome = try run(["/cordon/cordon-scan", "check", "--db", "/cordon/none.db", "/in/inside.jsonl"])
        #expect(outcome.succeeded, "\(outcome.how): \(outcome.lastError)")
        let sandboxed = lines(outcome)
        let onHost = Harness.exec(Self.scanner, ["check", "--db", "/nonexistent.db", host])
        var hosted: [String: JSON] = [:]
        for line in onHost.stdout.split(separator: "\n") { if let j = try? JSON.parse(Array(line.utf8)), let f = j["filename"]?.stringValue { hosted[f] = j } }
        #expect(sandboxed.count == files.count, "\(outcome.stdout.map { String(decoding: $0, as: UTF8.self) } ?? "nil")")
        for f in files {
            // The same verdicts; an error names the path it was read at.
            let a = sandboxed[f]?.text.replacingOccurrences(of: "/in/", with: "DIR/"), b = hosted[f]?.text.replacingOccurrences(of: "\(Self.packages)/", with: "DIR/")
            #expect(a == b, "\(f): sandboxed \(a ?? "nil"), host \(b ?? "nil")")
        }
        #expect(sandboxed["cordon_escape-1.0-py3-none-any.whl"]?["error"]?.stringValue?.contains("unsafe entry \"../../escape.py\"") == true)
        #expect(sandboxed["cordon_bomb-1.0-py3-none-any.whl"]?["error"]?.stringValue?.contains("exceeds the entry size limit") == true)
        #expect(!FileManager.default.fileExists(atPath: "\(Self.packages)/../escape.py") && !FileManager.default.fileExists(atPath: "/escape.py"))
        // The worker ran as a uid range of its own, in a network namespace of its own, with no capabilities.
        let layers = try #require(outcome.result.layers)
        #expect(layers.namespaces.contains("network") && layers.capabilitiesKept.isEmpty && !layers.hostUIDRange.hasPrefix("0-"), "\(layers)")
    }

    /// A read-only regular file as stdin goes straight in: `cordon-scan check --archive -`.
    @Test func anArchiveGoesInAsADescriptor() throws {
        let fd = open("\(Self.packages)/cordon_pth-1.0-py3-none-any.whl", O_RDONLY | O_CLOEXEC)
        try #require(fd >= 0)
        defer { close(fd) }
        let outcome = try run(["/cordon/cordon-scan", "check", "--db", "/cordon/none.db", "--archive", "-", "--name", "cordon-pth", "--version", "1.0",
                               "--filename", "cordon_pth-1.0-py3-none-any.whl"], stdin: fd)
        #expect(outcome.succeeded, "\(outcome.how): \(outcome.lastError)")
        let line = try JSON.parse(outcome.stdout ?? [])
        #expect(line["findings"]?.arrayValue?.contains { $0["rule"] == .string("pth-code") && $0["severity"] == .string("high") } == true, "\(line.text)")
    }

    /// A worker's output past the cap is not read at all (nil), and a failing worker's reason is
    /// its last line on stderr.
    @Test func outputPastTheCapAndAFailureAreSaid() throws {
        let fd = open("\(Self.packages)/cordon_clean-1.0-py3-none-any.whl", O_RDONLY | O_CLOEXEC)
        try #require(fd >= 0)
        defer { close(fd) }
        let argv = ["/cordon/cordon-scan", "check", "--db", "/cordon/none.db", "--archive", "-", "--name", "cordon-clean", "--version", "1.0", "--filename", "cordon_clean-1.0-py3-none-any.whl"]
        let capped = try run(argv, stdin: fd, stdoutLimit: 64)
        #expect(capped.succeeded && capped.stdout == nil)
        let outcome = try run(["/cordon/cordon-scan", "check", "/in/no-such-manifest"])
        #expect(!outcome.succeeded && outcome.result.exitCode == 2 && outcome.lastError.contains("the manifest /in/no-such-manifest"), "\(outcome.lastError)")
    }
}
