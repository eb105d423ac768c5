import CordonJSON
import CordonRPC
import CordonSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The worker's two outputs: JSON-RPC lines on stdout (each line whole, in order), free text on
/// stderr. Every line passes through `KeyRedactor` first: whatever a provider echoed, the key
/// never leaves the process.
///
/// stdout never blocks the thread that writes it (`nonBlocking`): a line the pipe does not take
/// at once is queued, and a writer thread of its own sends the queue as cordond reads. The HTTP
/// client's thread both reads stdin and writes answers: were it to wait on a full stdout while
/// cordond waits to write a request to a full stdin, neither would move until a deadline.
/// What is queued is bounded by the sandbox's memory limit; cordond reads stdout all along.
final class WorkerOutput: @unchecked Sendable {
    private let redactor = Mutex(KeyRedactor(key: nil))
    private let stderrLock = Mutex(())
    /// Guards the queue, the writer's state, and every write to stdout.
    private let stdout = Monitor()
    private var queued: [UInt8] = []
    private var sent = 0
    private var writerStarted = false
    /// stdout's reader is gone (EPIPE): later lines are dropped; stdin's end follows.
    private var broken = false

    func setKey(_ key: String?) { redactor.withLock { $0 = KeyRedactor(key: key) } }

    private func redacted(_ text: String) -> String { redactor.withLock { $0 }.redact(text) }

    /// Makes stdout non-blocking when it is a pipe or a socket (cordond's: its write end is the
    /// worker's alone; a terminal's flags are shared with the shell), so that `send` queues what
    /// the pipe does not take. False when it is not: every send then waits for the descriptor.
    @discardableResult
    func nonBlocking() -> Bool {
        var st = stat()
        guard fstat(1, &st) == 0, (st.st_mode & S_IFMT) == S_IFIFO || (st.st_mode & S_IFMT) == S_IFSOCK else { return false }
        let flags = fcntl(1, F_GETFL)
        return flags >= 0 && fcntl(1, F_SETFL, flags | O_NONBLOCK) == 0
    }

    func send(_ message: JSON) {
        let line = (redacted(message.text) + "\n").utf8
        stdout.locked {
            if broken { return }
            let idle = sent == queued.count
            queued.append(contentsOf: line)
            // Nothing was queued: straight to the pipe, which takes a line at once as a rule.
            if idle && writeWithoutWaiting() { return }
            if !writerStarted {
                writerStarted = (try? Threads.detach("stdout", signals: .noSIGPIPE) { [self] in writeQueued() }) != nil
                if !writerStarted {
                    // No writer thread: the queue is written here, waiting for the pipe.
                    while !writeWithoutWaiting() {
                        var p = pollfd(fd: 1, events: Int16(POLLOUT), revents: 0)
                        _ = poll(&p, 1, 1000)
                    }
                    return
                }
            }
            stdout.signal()
        }
    }

    /// Writes what is queued until the pipe takes no more (with `stdout` held); true when
    /// nothing is left to write, sent or dropped (the reader is gone: `broken`).
    private func writeWithoutWaiting() -> Bool {
        while sent < queued.count {
            let n = queued.withUnsafeBytes { write(1, $0.baseAddress! + sent, $0.count - sent) }
            if n > 0 { sent += n; continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN { return false }
            broken = true
            break
        }
        queued.removeAll(keepingCapacity: !broken && queued.capacity <= 1 << 20)
        sent = 0
        return true
    }

    /// The writer thread: waits for the pipe to take more, then writes what it takes.
    private func writeQueued() {
        while true {
            stdout.locked { _ = stdout.wait { sent < queued.count && !broken } }
            var p = pollfd(fd: 1, events: Int16(POLLOUT), revents: 0)
            if poll(&p, 1, 1000) < 0 && errno != EINTR { usleep(1000) }
            stdout.locked { _ = writeWithoutWaiting() }
        }
    }

    func result(id: JSON, _ result: JSON) { send(.object([("jsonrpc", .string("2.0")), ("id", id), ("result", result)])) }

    func error(id: JSON, code: Int64, _ message: String, data: JSON? = nil) {
        var error: [(String, JSON)] = [("code", .int(code)), ("message", .string(message))]
        if let data { error.append(("data", data)) }
        send(.object([("jsonrpc", .string("2.0")), ("id", id), ("error", .object(error))]))
    }

    func error(id: JSON, _ error: RPCError) { send(.object([("jsonrpc", .string("2.0")), ("id", id), ("error", error.json)])) }

    func notify(_ method: String, _ params: JSON) {
        send(.object([("jsonrpc", .string("2.0")), ("method", .string(method)), ("params", params)]))
    }

    /// One line of free text on stderr, control characters made spaces.
    func log(_ text: String) {
        let line = "cordon-model-worker: " + redacted(PrintableText.of(text)) + "\n"
        stderrLock.withLock { _ in Self.writeAll(2, line) }
    }

    /// Writes the whole line (stderr); a reader that is gone (EPIPE) loses it.
    private static func writeAll(_ fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                offset += n
            }
        }
    }
}

/// Replaces the provider's key, wherever it appears in a line, with `[redacted]`. The key is
/// printable ASCII without `"` or `\` (`initialize` refuses others), so it reads the same in a
/// JSON string as in plain text and one search finds it in both.
struct KeyRedactor: Sendable {
    let key: [UInt8]

    init(key: String?) { self.key = Array((key ?? "").utf8) }

    static let mark = Array("[redacted]".utf8)

    func redact(_ text: String) -> String {
        guard let first = key.first else { return text }
        let bytes = Array(text.utf8)
        guard bytes.count >= key.count else { return text }
        var out: [UInt8] = []
        var i = 0, copied = 0
        while i + key.count <= bytes.count {
            if bytes[i] == first, bytes[i..<(i + key.count)].elementsEqual(key) {
                out.append(contentsOf: bytes[copied..<i])
                out.append(contentsOf: Self.mark)
                i += key.count
                copied = i
            } else {
                i += 1
            }
        }
        if copied == 0 { return text }
        out.append(contentsOf: bytes[copied...])
        return String(decoding: out, as: UTF8.self)
    }
}
