import CordonJSON
import CordonRPC
import CordonSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The worker's two outputs: JSON-RPC lines on stdout (one writer at a time, each line whole),
/// free text on stderr. Every line passes through `KeyRedactor` first: whatever a provider
/// echoed, the key never leaves the process.
final class WorkerOutput: Sendable {
    private let redactor = Mutex(KeyRedactor(key: nil))
    private let stdoutLock = Mutex(())
    private let stderrLock = Mutex(())

    func setKey(_ key: String?) { redactor.withLock { $0 = KeyRedactor(key: key) } }

    private func redacted(_ text: String) -> String { redactor.withLock { $0 }.redact(text) }

    func send(_ message: JSON) {
        let line = redacted(message.text) + "\n"
        stdoutLock.withLock { _ in Self.writeAll(1, line) }
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

    /// Writes the whole line; a reader that is gone (EPIPE) loses it: stdin's end follows.
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
