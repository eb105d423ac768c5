import CLinux
import CordonJSON
import CordonRPC
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A real `cordond` (the binary SwiftPM built next to this test bundle) in a scratch
/// directory of its own: config, state and runtime dirs, socket. Driven through the real socket.
final class TestDaemon: @unchecked Sendable {
    static let isRoot = geteuid() == 0
    static let productsDir: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent
    }()
    static let cordond = "\(productsDir)/cordond"
    static let cordon = "\(productsDir)/cordon"
    nonisolated(unsafe) private static var counter = 0
    private static let counterLock = NSLock()

    let dir: String
    var configDir: String { "\(dir)/config" }
    var stateDir: String { "\(dir)/state" }
    var runtimeDir: String { "\(dir)/run" }
    var socket: String { "\(runtimeDir)/cordon.sock" }
    var logPath: String { "\(dir)/cordond.log" }
    private(set) var process: Process?

    /// `config`: the text of cordond.toml; `policies`: extra policy files by name.
    /// Started by systemd-socket-activate, which owns the socket and passes it (LISTEN_FDS).
    let socketActivated: Bool

    /// The directory cordond is started from (it must not matter: cordond works from /).
    let startDirectory: String?

    /// Started with no signal blocked, as a shell or systemd starts it (this test process
    /// blocks SIGTERM, and a child it starts directly inherits that mask).
    let unblockedSignals: Bool

    /// `files`: more files under the config dir, by relative path (profiles, extended policies).
    /// `netns`: a network namespace (`ip netns` name) cordond runs in, joined with nsenter (which
    /// execs it: the pid is cordond's).
    let netns: String?

    init(config: String = "", policies: [String: String] = [:], files: [String: String] = [:],
         socketActivated: Bool = false, startDirectory: String? = nil, unblockedSignals: Bool = false, netns: String? = nil,
         beforeStart: ((TestDaemon) throws -> Void)? = nil) throws {
        self.netns = netns
        self.socketActivated = socketActivated
        self.startDirectory = startDirectory
        self.unblockedSignals = unblockedSignals
        let n = Self.counterLock.withLock { Self.counter += 1; return Self.counter }
        dir = "/tmp/cordond-test-\(getpid())-\(n)"
        try? FileManager.default.removeItem(atPath: dir)
        for sub in ["config/policies", "state", "run"] {
            try FileManager.default.createDirectory(atPath: "\(dir)/\(sub)", withIntermediateDirectories: true)
        }
        // The sandbox's unprivileged root must reach the runtime dir's mount point.
        chmod(dir, 0o755)
        chmod(runtimeDir, 0o755)
        try config.write(toFile: "\(configDir)/cordond.toml", atomically: true, encoding: .utf8)
        for (name, text) in policies { try text.write(toFile: "\(configDir)/policies/\(name).toml", atomically: true, encoding: .utf8) }
        for (path, text) in files {
            let full = "\(configDir)/\(path)"
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: full, atomically: true, encoding: .utf8)
        }
        try beforeStart?(self)
        try start()
    }

    deinit {
        if let process, process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Starts cordond and waits until it answers on the socket.
    func start() throws {
        let p = Process()
        let args = ["--config-dir", configDir, "--state-dir", stateDir, "--runtime-dir", runtimeDir]
        if socketActivated {
            p.executableURL = URL(fileURLWithPath: "/usr/bin/systemd-socket-activate")
            p.arguments = ["-l", socket, Self.cordond] + args
        } else if unblockedSignals {
            p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            p.arguments = ["-c", "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execv(sys.argv[1], sys.argv[1:])",
                           Self.cordond] + args
        } else if let netns {
            p.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
            p.arguments = ["--net=/run/netns/\(netns)", "--", Self.cordond] + args
        } else {
            p.executableURL = URL(fileURLWithPath: Self.cordond)
            p.arguments = args
        }
        if let startDirectory { p.currentDirectoryURL = URL(fileURLWithPath: startDirectory) }
        try #require(FileManager.default.createFile(atPath: logPath, contents: nil))
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        p.standardError = log
        p.standardOutput = log
        p.standardInput = FileHandle.nullDevice
        try p.run()
        process = p
        for _ in 0..<500 {
            if let client = try? RPCClient(socketPath: socket), (try? client.call("system.version")) != nil { return }
            if !p.isRunning { break }
            usleep(20_000)
        }
        throw TestFailure("cordond did not come up: \(self.log())")
    }

    var processID: Int32? { process?.processIdentifier }

    func log() -> String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func client() throws -> RPCClient { try RPCClient(socketPath: socket) }

    @discardableResult
    func call(_ method: String, _ params: JSON = .object([])) throws -> JSON { try client().call(method, params) }

    /// The error a call gets (fails the test when it succeeds).
    func callError(_ method: String, _ params: JSON = .object([])) throws -> RPCError {
        do {
            let result = try call(method, params)
            throw TestFailure("\(method) succeeded but should have failed: \(result.text)")
        } catch let error as RPCError { return error }
    }

    func submit(_ argv: [String], policy: String? = nil, wait: Bool = false, extra: [(String, JSON)] = []) throws -> JSON {
        var params: [(String, JSON)] = [("argv", .array(argv.map { .string($0) }))]
        if let policy { params.append(("policy", .string(policy))) }
        if wait { params.append(("wait", .bool(true))) }
        return try call("task.submit", .object(params + extra))
    }

    /// Waits until `condition` holds, up to `seconds`.
    func eventually(_ seconds: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            usleep(20_000)
        }
        return try condition()
    }

    func signal(_ sig: Int32) { if let process { kill(process.processIdentifier, sig) } }

    /// Waits for cordond to exit; its status, or nil after `seconds`.
    func waitExit(_ seconds: Double) -> Int32? {
        guard let process else { return nil }
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// Sends raw bytes (a line is not added) on a fresh connection and reads one response line.
    func raw(_ bytes: [UInt8], connection: Int32? = nil) throws -> JSON {
        let fd = try connection ?? connect()
        defer { if connection == nil { close(fd) } }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, 0x4000) }
            guard n > 0 else { throw TestFailure("send failed: errno \(errno)") }
            offset += n
        }
        return try readResponse(fd)
    }

    func connect() throws -> Int32 {
        let fd = cl_unix_connect(socket)
        guard fd >= 0 else { throw TestFailure("connect \(socket): errno \(errno)") }
        return fd
    }

    func readResponse(_ fd: Int32) throws -> JSON {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let n = read(fd, &byte, 1)
            guard n == 1 else { throw TestFailure("connection closed before a response (got \(line.count) bytes)") }
            if byte == 0x0A { break }
            line.append(byte)
        }
        return try JSON.parse(line)
    }

    /// Runs `argv` as another user (setpriv), returning status and output.
    static func runAs(uid: UInt32, gid: UInt32, _ argv: [String], stdin: String? = nil) -> (status: Int32, stdout: String, stderr: String) {
        exec("/usr/bin/setpriv", ["--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", "--"] + argv, stdin: stdin)
    }

    static func exec(_ path: String, _ args: [String], stdin: String? = nil) -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        let out = Pipe(), err = Pipe(), input = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = input
        do { try p.run() } catch { return (-1, "", "\(error)") }
        // Written from another thread: a program that answers as it reads would otherwise fill
        // its output pipe while we are still writing its input.
        let writer = Thread {
            if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
            try? input.fileHandleForWriting.close()
        }
        writer.start()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    /// Host pids of live processes whose command line is exactly `argv` (sandboxed or not).
    static func processes(_ argv: [String]) -> [Int32] {
        let wanted = argv.joined(separator: "\u{0}") + "\u{0}"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let cmd = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")) else { return false }
            guard String(decoding: cmd, as: UTF8.self) == wanted else { return false }
            let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
            return !stat.contains(") Z ")
        }
    }

    /// Sends `requests` (one JSON-RPC line each) as uid/gid over one connection and returns
    /// the parsed answers; each answer must come within `timeout` seconds.
    func asUser(_ uid: UInt32, gid: UInt32 = 65534, _ requests: [String], timeout: Double = 30) -> [JSON] {
        let client = """
            import socket, sys
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(\(timeout))
            s.connect(sys.argv[1])
            f = s.makefile("rwb")
            for line in sys.stdin:
                f.write(line.encode()); f.flush()
                try:
                    print(f.readline().decode().rstrip("\\n"), flush=True)
                except socket.timeout:
                    print('{"timeout": true}', flush=True)
            """
        let r = Self.runAs(uid: uid, gid: gid, ["/usr/bin/python3", "-c", client, socket], stdin: requests.joined(separator: "\n") + "\n")
        return r.stdout.split(separator: "\n").compactMap { try? JSON.parse(String($0)) }
    }

    /// Python's socket module as a JSON-RPC client (for clients running as other users): sends
    /// each request line and prints each response line.
    static let pythonClient = """
    import socket, sys
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    f = s.makefile("rwb")
    for line in sys.stdin:
        f.write(line.encode()); f.flush()
        print(f.readline().decode().rstrip("\\n"), flush=True)
    """
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
