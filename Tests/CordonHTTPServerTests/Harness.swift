import CLinux
import CordonHTTP
@testable import CordonHTTPServer
import CordonSystem
import Foundation
import Synchronization

/// A real `HTTPServer` on a Unix socket in a temporary directory, or on 127.0.0.1:0.
final class ServerHarness: @unchecked Sendable {
    let server: HTTPServer
    let directory: String
    let socketPath: String
    let port: UInt16
    /// Sockets accepted, and the TCP_NODELAY each had once set up (read with getsockopt).
    let accepted = Mutex<[Int32]>([])

    init(tcp: Bool, _ configuration: HTTPServerConfiguration = HTTPServerConfiguration(),
         handler: @escaping HTTPServer.Handler) throws {
        var template = Array("/tmp/cordon-http-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw SystemError("mkdtemp", errno: errno) }
        directory = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        socketPath = directory + "/http.sock"
        if tcp {
            var bound: UInt16 = 0
            let listener = try HTTPListener.loopbackTCP(boundPort: &bound)
            port = bound
            server = try HTTPServer(listener: listener, configuration: configuration, handler: handler)
        } else {
            port = 0
            server = try HTTPServer(listener: try HTTPListener.unix(path: socketPath), configuration: configuration, handler: handler)
        }
        server.acceptedSocket = { [unowned self] fd in
            var value: Int32 = -1
            var length = socklen_t(4)
            if tcp { _ = getsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &value, &length) }
            self.accepted.withLock { $0.append(value) }
        }
        try server.start()
    }

    var acceptedCount: Int { accepted.withLock { $0.count } }

    func close() {
        server.stop(graceSeconds: 2)
        unlink(socketPath)
        rmdir(directory)
    }

    /// A raw client connected to the server.
    func connect() throws -> RawClient {
        port == 0 ? try RawClient(unix: socketPath) : try RawClient(port: port)
    }

    /// The curl arguments that reach this server, before the URL's path.
    var curlTarget: (args: [String], base: String) {
        port == 0 ? (["--unix-socket", socketPath], "http://localhost") : ([], "http://127.0.0.1:\(port)")
    }
}

/// A client socket with bounded reads, for the cases no real client sends.
final class RawClient {
    let fd: Int32

    init(unix path: String) throws {
        fd = cl_unix_connect(path)
        if fd < 0 { throw SystemError("connect", path: path, errno: errno) }
    }

    init(port: UInt16) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 {
            let code = errno
            Glibc.close(fd)
            throw SystemError("connect", path: "127.0.0.1:\(port)", errno: code)
        }
    }

    deinit { Glibc.close(fd) }

    /// Sends all of `bytes`; false when the server closed.
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }

    @discardableResult
    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    /// Reads until `done` holds for everything read, the server closes, or `timeout` passes.
    func read(timeout: Double = 5, until done: ([UInt8]) -> Bool) -> (bytes: [UInt8], closed: Bool) {
        var got: [UInt8] = []
        let deadline = MonotonicClock.now + timeout
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !done(got) {
            let left = deadline - MonotonicClock.now
            if left <= 0 { return (got, false) }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, Int32(left * 1000) + 1) <= 0 { continue }
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return (got, true) }
            got += buffer[0..<n]
        }
        return (got, false)
    }

    /// Reads one whole response (Content-Length or chunked).
    func response(timeout: Double = 5) -> Response? {
        var parsed: Response?
        let (bytes, _) = read(timeout: timeout) { got in
            parsed = Response(got)
            return parsed != nil
        }
        _ = bytes
        return parsed
    }

    /// Reads until the server closes; true if it did within `timeout`.
    func closedByServer(timeout: Double = 5) -> Bool { read(timeout: timeout) { _ in false }.closed }
}

/// A response parsed from the front of a byte stream, if it is all there.
struct Response {
    let status: Int
    let headers: [HTTPHeader]
    let body: [UInt8]
    /// Bytes it took.
    let length: Int

    var text: String { String(decoding: body, as: UTF8.self) }

    init?(_ bytes: [UInt8]) {
        let crlf2: [UInt8] = [13, 10, 13, 10]
        guard let end = (0..<max(0, bytes.count - 3)).first(where: { Array(bytes[$0..<($0 + 4)]) == crlf2 }) else { return nil }
        let lines = String(decoding: bytes[0..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let parts = lines[0].split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { return nil }
        self.status = status
        headers = lines.dropFirst().compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return HTTPHeader(name: String(line[..<colon]), value: line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        var at = end + 4
        if status == 100 {
            body = []
            length = at
            return
        }
        if headers.first("transfer-encoding") == "chunked" {
            var body: [UInt8] = []
            while true {
                guard let lineEnd = (at..<max(at, bytes.count - 1)).first(where: { bytes[$0] == 13 && bytes[$0 + 1] == 10 }) else { return nil }
                guard let size = Int(String(decoding: bytes[at..<lineEnd], as: UTF8.self), radix: 16) else { return nil }
                at = lineEnd + 2
                if size == 0 {
                    guard bytes.count >= at + 2 else { return nil }
                    at += 2
                    break
                }
                guard bytes.count >= at + size + 2 else { return nil }
                body += bytes[at..<(at + size)]
                at += size + 2
            }
            self.body = body
        } else {
            let n = Int(headers.first("content-length") ?? "0") ?? 0
            guard bytes.count >= at + n else { return nil }
            body = Array(bytes[at..<(at + n)])
            at += n
        }
        length = at
    }
}

/// Runs a program to its end; its status and output.
func run(_ path: String, _ args: [String], timeout: Double = 60) -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    do { try p.run() } catch { return (-1, "", "\(error)") }
    let killer = DispatchWorkItem { if p.isRunning { p.terminate() } }
    DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
    let errData = Mutex<Data>(Data())
    let reader = Thread { errData.withLock { $0 = err.fileHandleForReading.readDataToEndOfFile() } }
    reader.start()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    killer.cancel()
    while reader.isExecuting || !reader.isFinished { usleep(1000) }
    return (p.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData.withLock { $0 }, as: UTF8.self))
}

/// The test script beside this file.
let clientsScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("http_clients.py").path

/// A flag a handler waits on, with a deadline.
final class Gate: @unchecked Sendable {
    private let monitor = Monitor()
    private var isOpen = false

    func open() { monitor.locked { isOpen = true; monitor.broadcast() } }

    @discardableResult
    func wait(_ seconds: Double = 5) -> Bool {
        monitor.locked { monitor.wait(until: MonotonicClock.now + seconds) { isOpen } }
    }
}
