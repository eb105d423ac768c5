import CordonJSON
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The lines a child writes to a pipe, read on a thread of their own.
final class PipeLines: @unchecked Sendable {
    private let condition = NSCondition()
    private var lines: [String] = []
    private var text = ""
    private(set) var ended = false

    init(_ handle: FileHandle) {
        let fd = handle.fileDescriptor
        Thread.detachNewThread { [self] in
            var partial: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                partial.append(contentsOf: buffer[0..<n])
                var complete: [String] = []
                while let newline = partial.firstIndex(of: 0x0A) {
                    complete.append(String(decoding: partial[..<newline], as: UTF8.self))
                    partial.removeSubrange(...newline)
                }
                if !complete.isEmpty {
                    condition.lock()
                    lines += complete
                    text += complete.joined(separator: "\n") + "\n"
                    condition.broadcast()
                    condition.unlock()
                }
            }
            condition.lock()
            ended = true
            condition.broadcast()
            condition.unlock()
        }
    }

    /// The next line, or nil when none came within `timeout` seconds or the pipe ended.
    func next(timeout: Double) -> String? {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        defer { condition.unlock() }
        while lines.isEmpty && !ended {
            if !condition.wait(until: deadline) { break }
        }
        return lines.isEmpty ? nil : lines.removeFirst()
    }

    /// Everything read so far (for stderr).
    var all: String { condition.lock(); defer { condition.unlock() }; return text }

    func waitForEnd(timeout: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        defer { condition.unlock() }
        while !ended { if !condition.wait(until: deadline) { break } }
        return ended
    }
}

enum Paths {
    static let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path
    /// Where SwiftPM put this test bundle, and `cordon-model-worker` beside it.
    static let productsDir: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent
    }()
    static let worker = "\(productsDir)/cordon-model-worker"
}

/// `provider_standin.py`: a real HTTP/1.1 server on 127.0.0.1 speaking the providers' wire
/// formats (see its docstring). Stopped when this object goes.
final class StandIn {
    let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private let lines: PipeLines
    let port: Int

    init() throws {
        signal(SIGPIPE, SIG_IGN)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-I", "\(Paths.here)/provider_standin.py"]
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        lines = PipeLines(output.fileHandleForReading)
        guard let line = lines.next(timeout: 10), let port = Int(line) else {
            process.terminate()
            throw CocoaError(.fileReadUnknown)
        }
        self.port = port
    }

    var baseURL: String { "http://127.0.0.1:\(port)/v1" }

    /// `{"connections","requests","last":{"path","headers","body"}}`.
    func stats() throws -> JSON {
        try input.fileHandleForWriting.write(contentsOf: Data("stats\n".utf8))
        guard let line = lines.next(timeout: 10) else { throw CocoaError(.fileReadUnknown) }
        return try JSON.parse(line)
    }

    deinit {
        try? input.fileHandleForWriting.close()
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }
}

/// The built `cordon-model-worker`, run as a plain child (no sandbox), driven over its stdio.
final class WorkerProcess {
    static let key = "test-key-Zq81mW0pLxV7"

    let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private let errors = Pipe()
    private let lines: PipeLines
    let stderr: PipeLines
    /// Messages read but not yet asked for.
    private var buffered: [JSON] = []
    private var nextID: Int64 = 100

    init() throws {
        signal(SIGPIPE, SIG_IGN)
        process.executableURL = URL(fileURLWithPath: Paths.worker)
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        lines = PipeLines(output.fileHandleForReading)
        stderr = PipeLines(errors.fileHandleForReading)
    }

    /// Started and initialized for `kind` at `baseURL`; fails the test's setup if refused.
    convenience init(kind: String, baseURL: String, key: String? = WorkerProcess.key, maxConcurrency: Int = 4,
                     timeout: Double = 10, idleTimeout: Double = 1) throws {
        try self.init()
        let answer = try call("initialize", initializeParams(kind: kind, baseURL: baseURL, key: key, maxConcurrency: maxConcurrency,
                                                              timeout: timeout, idleTimeout: idleTimeout))
        guard answer["result"] != nil else { throw CocoaError(.featureUnsupported, userInfo: ["answer": answer.text]) }
    }

    func initializeParams(kind: String, baseURL: String, key: String?, maxConcurrency: Int = 4, timeout: Double = 10,
                          idleTimeout: Double = 1) -> JSON {
        .object([
            ("protocol", .int(1)),
            ("provider", .object([("name", .string("standin")), ("kind", .string(kind)), ("baseURL", .string(baseURL)),
                                  ("timeout", .double(timeout)), ("idleTimeout", .double(idleTimeout)),
                                  ("maxConcurrency", .int(Int64(maxConcurrency)))])),
            ("apiKey", key.map(JSON.string) ?? .null),
        ])
    }

    func sendLine(_ text: String) throws {
        try input.fileHandleForWriting.write(contentsOf: Data((text + "\n").utf8))
    }

    func closeInput() throws { try input.fileHandleForWriting.close() }

    /// Sends a request and returns its id.
    @discardableResult
    func start(_ method: String, _ params: JSON? = nil) throws -> Int64 {
        nextID += 1
        var members: [(String, JSON)] = [("jsonrpc", .string("2.0")), ("id", .int(nextID)), ("method", .string(method))]
        if let params { members.append(("params", params)) }
        try sendLine(JSON.object(members).text)
        return nextID
    }

    func notify(_ method: String, _ params: JSON) throws {
        try sendLine(JSON.object([("jsonrpc", .string("2.0")), ("method", .string(method)), ("params", params)]).text)
    }

    /// The first message (buffered or new) `matching`, waiting at most `timeout` seconds.
    func message(timeout: Double = 15, where matching: (JSON) -> Bool) throws -> JSON {
        if let i = buffered.firstIndex(where: matching) { return buffered.remove(at: i) }
        let deadline = Date(timeIntervalSinceNow: timeout)
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0, let line = lines.next(timeout: left) else {
                throw CocoaError(.fileReadUnknown, userInfo: ["waiting": "no matching message in \(timeout) s"])
            }
            let message = try JSON.parse(line, options: JSON.ParseOptions(maxBytes: 64 << 20))
            if matching(message) { return message }
            buffered.append(message)
        }
    }

    func answer(_ id: JSON, timeout: Double = 15) throws -> JSON {
        try message(timeout: timeout) { $0["id"] == id && $0["method"] == nil }
    }

    func call(_ method: String, _ params: JSON? = nil, timeout: Double = 15) throws -> JSON {
        try answer(.int(try start(method, params)), timeout: timeout)
    }

    /// The `chat.delta` chunks of `call` read so far, in order (taken out of the buffer).
    func chunks(of callID: String) -> [JSON] {
        let mine = buffered.filter { $0["method"] == .string("chat.delta") && $0["params"]?["call"] == .string(callID) }
        buffered.removeAll { $0["method"] == .string("chat.delta") && $0["params"]?["call"] == .string(callID) }
        return mine.compactMap { $0["params"]?["chunk"] }
    }

    static func chatParams(call: String, model: String, stream: Bool, timeout: Double = 10, extra: [(String, JSON)] = []) -> JSON {
        .object([
            ("call", .string(call)),
            ("body", .object([("model", .string(model)), ("messages", .array([.object([("role", .string("user")), ("content", .string("hi"))])])),
                              ("max_tokens", .int(64))] + extra)),
            ("stream", .bool(stream)), ("timeout", .double(timeout)),
        ])
    }

    func chat(_ callID: String, model: String, stream: Bool = false, timeout: Double = 10, extra: [(String, JSON)] = []) throws -> JSON {
        try call("chat", Self.chatParams(call: callID, model: model, stream: stream, timeout: timeout, extra: extra), timeout: timeout + 10)
    }

    /// Waits for the process to end; its status, or nil if it did not end in time.
    func exitStatus(within seconds: Double) -> Int32? {
        let deadline = Date(timeIntervalSinceNow: seconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        return process.isRunning ? nil : process.terminationStatus
    }

    deinit {
        try? input.fileHandleForWriting.close()
        if process.isRunning {
            if exitStatus(within: 2) == nil { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
    }
}
