import CordonTestNetwork
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Runs the real `cordon` binary (built next to this test bundle) and reads its result record.
enum Harness {
    static let isRoot = geteuid() == 0

    /// .build/<triple>/debug, where SwiftPM put the test bundle, `cordon` and `cordon-probe`.
    static let productsDir: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent
    }()
    static let cordon = "\(productsDir)/cordon"
    /// Tests/Probe/main.c, compiled statically (so it runs inside any sandbox) into the scratch
    /// directory, which the test policies bind read-only at /opt/cordon-test.
    static let probe: String = {
        let dir = "\(scratch)/bin"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let out = "\(dir)/cordon-probe"
        let r = exec("/usr/bin/cc", ["-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o", out, "\(repo)/Tests/Probe/main.c"])
        precondition(r.status == 0, "compiling the probe failed: \(r.stderr)")
        return out
    }()
    static var probeDir: String { (probe as NSString).deletingLastPathComponent }
    /// Compiles the C program `source` as `probeDir/name` (-O2, warnings are errors; `linkStatic`
    /// for one that runs inside a sandbox, which binds that directory), through a temporary file
    /// so that a test running meanwhile never executes half of it.
    static func compileC(_ source: String, named name: String, linkStatic: Bool) -> String {
        let path = "\(probeDir)/\(name)"
        let file = "\(scratch)/\(name).c"
        try? source.write(toFile: file, atomically: true, encoding: .utf8)
        let partial = "\(path).\(getpid()).tmp"
        let r = exec("/usr/bin/cc", (linkStatic ? ["-static"] : []) + ["-O2", "-Wall", "-Werror", "-o", partial, file])
        precondition(r.status == 0, "compiling \(name) failed: \(r.stderr)")
        rename(partial, path)
        return path
    }
    /// The repository root (for policies/ and profiles/).
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// Shared by every test, so that concurrently running sandboxes compete for uid ranges.
    static let scratch: String = {
        let dir = "/tmp/cordon-tests-\(getpid())"
        try? FileManager.default.createDirectory(atPath: "\(dir)/policies", withIntermediateDirectories: true)
        return dir
    }()
    static var runtimeDir: String { "\(scratch)/run" }
    static var stateDir: String { "\(scratch)/state" }

    /// The shipped default policy with the probe's directory bound read-only at /opt/cordon-test,
    /// plus `extra` TOML lines substituted into tables by simple text edits.
    static func policy(_ name: String, edits: [(String, String)] = []) -> String {
        var text = (try? String(contentsOfFile: "\(repo)/policies/default.toml", encoding: .utf8)) ?? ""
        text = text.replacingOccurrences(of: "read_only = [\n", with: "read_only = [\n  { path = \"/opt/cordon-test\", source = \"\(probeDir)\" },\n")
        for (from, to) in edits {
            precondition(text.contains(from), "policy edit target not found: \(from)")
            text = text.replacingOccurrences(of: from, with: to)
        }
        let path = "\(scratch)/policies/\(name).toml"
        try? text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static let defaultPolicy = policy("test-default")

    struct Outcome: @unchecked Sendable {
        var status: Int32
        var stdout: String
        var stderr: String
        /// The --json record (last stdout line), if any.
        var record: [String: Any]
        /// stdout without the record line.
        var output: String
        var reason: String { record["reason"] as? String ?? "" }
        var denied: [String] { (record["denied"] as? [[String: Any]] ?? []).compactMap { $0["syscall"] as? String } }
        var hostUIDRange: ClosedRange<UInt32>? {
            guard let layers = record["layers"] as? [String: Any], let text = layers["hostUIDRange"] as? String else { return nil }
            let parts = text.split(separator: "-").compactMap { UInt32($0) }
            return parts.count == 2 ? parts[0]...parts[1] : nil
        }
    }

    /// `cordon run --json --policy P -- argv`, in the supervisor's namespace of `network` if given.
    static func run(_ argv: [String], policy: String? = nil, options: [String] = [], environment: [String: String] = [:],
                    stdin: String? = nil, json: Bool = true, cwd: String? = nil, in network: EgressNetwork? = nil) -> Outcome {
        var args = ["run", "--policy", policy ?? defaultPolicy, "--state-dir", stateDir, "--runtime-dir", runtimeDir]
        if json { args.append("--json") }
        args += options + ["--"] + argv
        guard let network else { return exec(cordon, args, environment: environment, stdin: stdin, cwd: cwd) }
        let (path, arguments) = network.inSupervisor([cordon] + args)
        return exec(path, arguments, environment: environment, stdin: stdin, cwd: cwd)
    }

    /// Starts `cordon run -- argv` without waiting (a blocking call inside a Task could wait for
    /// a free thread of the test pool). Output goes to `stdout`, or /dev/null.
    static func start(_ argv: [String], options: [String] = [], stdout: Pipe? = nil) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: cordon)
        process.arguments = ["run", "--policy", defaultPolicy, "--state-dir", stateDir, "--runtime-dir", runtimeDir] + options + ["--"] + argv
        process.standardOutput = stdout ?? FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Host pid of the sandboxed process whose command line starts with `argv`, waiting up to 5 s.
    static func findSandboxed(_ argv: [String]) -> Int32? {
        let prefix = argv.joined(separator: "\u{0}")
        for _ in 0..<250 {
            let found = processes(inUIDRange: 0x4000_0000...0xFFFF_FFF0).first { pid in
                ((try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? "").hasPrefix(prefix)
            }
            if let found { return found }
            usleep(20_000)
        }
        return nil
    }

    static func exec(_ path: String, _ args: [String], environment: [String: String] = [:], stdin: String? = nil, cwd: String? = nil) -> Outcome {
        let process = Process()
        if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = args
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        do { try process.run() } catch { return Outcome(status: -1, stdout: "", stderr: "\(error)", record: [:], output: "") }
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try? input.fileHandleForWriting.close()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let stdout = String(decoding: o, as: UTF8.self)
        var lines = stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        var record: [String: Any] = [:]
        if let last = lines.last, last.hasPrefix("{"), let obj = try? JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any] {
            record = obj
            lines.removeLast()
        }
        return Outcome(status: process.terminationStatus, stdout: stdout, stderr: String(decoding: e, as: UTF8.self),
                       record: record, output: lines.joined(separator: "\n"))
    }

    /// Host pids of live (not zombie) processes whose real uid lies in `range`.
    static func processes(inUIDRange range: ClosedRange<UInt32>) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let status = liveStatus(pid), let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }) else { return false }
            let uid = line.split(separator: "\t").dropFirst().first.flatMap { UInt32($0) } ?? 0
            return range.contains(uid)
        }
    }

    /// `/proc/PID/status` of a live process; nil for a zombie (it runs nothing; init stays one
    /// until the supervisor reaps it) or one that is gone.
    static func liveStatus(_ pid: Int32) -> String? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              !status.split(separator: "\n").contains(where: { $0.hasPrefix("State:") && $0.contains("Z (zombie)") }) else { return nil }
        return status
    }

    /// A process as (pid, start time in clock ticks since boot): a pid can be reused, the pair not.
    struct ProcessIdentity: Hashable { let pid: Int32; let start: UInt64 }

    static func identity(_ pid: Int32) -> ProcessIdentity? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // After "pid (comm)" come the fields from the 3rd on; the start time is the 22nd.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let start = UInt64(fields[19]) else { return nil }
        return ProcessIdentity(pid: pid, start: start)
    }

    /// The live processes in the uid slot of `pid` (the sandbox's whole range of 65,536 uids).
    static func processesInTheSandboxOf(_ pid: Int32) -> Set<ProcessIdentity> {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }),
              let uid = line.split(separator: "\t").dropFirst().first.flatMap({ UInt32($0) }), uid >= 0x4000_0000 else { return [] }
        let low = uid - (uid - 0x4000_0000) % 65536
        return Set(processes(inUIDRange: low...(low + 65535)).compactMap(identity))
    }

    /// Those of `processes` still alive: the same pid with the same start time, not a zombie.
    static func survivors(_ processes: Set<ProcessIdentity>) -> [Int32] {
        processes.filter { identity($0.pid) == $0 && liveStatus($0.pid) != nil }.map(\.pid)
    }

    /// Cordon's cgroup directories on the host for the sandbox that had `range`.
    static func cgroupDirs(forRange range: ClosedRange<UInt32>) -> [String] {
        let slot = (range.lowerBound - 0x4000_0000) / 65536
        let candidates = ["memory", "pids", "cpu", "cpuacct"].map { "/sys/fs/cgroup/\($0)/cordon/s\(slot)" } + ["/sys/fs/cgroup/cordon/s\(slot)"]
        return candidates.filter { FileManager.default.fileExists(atPath: $0) }
    }

    static func mountsMentioning(_ text: String) -> [String] {
        let info = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        return info.split(separator: "\n").map(String.init).filter { $0.contains(text) }
    }
}
