@testable import CordonAudit
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A fresh directory under /tmp, removed with everything in it when released.
final class TempDirectory {
    let path: String

    init() {
        var template = Array("/tmp/cordon-audit-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    var database: String { path + "/audit.db" }

    deinit { Self.removeTree(path) }

    private static func removeTree(_ path: String) {
        if let dir = opendir(path) {
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name == "." || name == ".." { continue }
                let child = path + "/" + name
                if entry.pointee.d_type == UInt8(DT_DIR) { removeTree(child) } else { unlink(child) }
            }
            closedir(dir)
        }
        rmdir(path)
    }
}

/// Runs `body(index)` on `count` new threads at once and joins them.
func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    final class Start {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }
    var threads: [pthread_t] = []
    for index in 0..<count {
        let start = Unmanaged.passRetained(Start { body(index) })
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            Unmanaged<Start>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, start.toOpaque())
        precondition(rc == 0, "pthread_create failed")
        threads.append(thread)
    }
    for thread in threads { pthread_join(thread, nil) }
}

/// The AuditError `body` throws, or nil if it succeeds.
func auditError(_ body: () throws -> Void) -> AuditError? {
    do {
        try body()
        return nil
    } catch let error as AuditError {
        return error
    } catch {
        Issue.record("not an AuditError: \(error)")
        return nil
    }
}

func writeFile(_ path: String, _ bytes: [UInt8]) {
    let fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o644)
    precondition(fd >= 0)
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
}

func readFile(_ path: String) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return [] }
    defer { close(fd) }
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { return out }
        out += buffer[..<n]
    }
}

let alice = Submitter(uid: 1000, gid: 1000, pid: 4242, exe: "/usr/bin/python3")
let bob = Submitter(uid: 1001, gid: 100, pid: 77, exe: "/usr/bin/bash")

func newTask(_ submitter: Submitter = alice, policy: String = "default", at time: Double = 1_700_000_000,
             argv: [String] = ["/bin/true"], label: String? = nil) -> NewTask {
    NewTask(submitter: submitter, label: label, policy: policy, policyHash: "sha256:" + policy, argv: argv, submittedAt: time)
}

func exited(_ code: Int32 = 0, at time: Double, result: String? = nil) -> TaskOutcome {
    TaskOutcome(state: .finished, reason: "exited", exitCode: code, finishedAt: time, stdoutBytes: 10, stderrBytes: 2,
                result: result)
}
