import CordonJSON
import CordonRPC
import CordonSystem
import Synchronization

/// The client side of JSON-RPC 2.0 over one `SandboxedProcess`'s stdio, multiplexed: many calls
/// in flight, each answered by id. A reader thread takes every line the process writes: an
/// answer wakes its caller; a notification goes to `onNotification`; a request from the process
/// (MCP servers may ask for sampling, roots, elicitation) is refused with "method not found",
/// which the spec allows a client that did not offer the capability. Whatever is not JSON-RPC,
/// or answers no call in flight, is counted (`protocolErrors`) and dropped: a server cannot
/// make the gateway misattribute an answer, and garbage ends nothing by itself — the caller
/// decides (a call that never gets its answer times out).
public final class JSONRPCConnection: @unchecked Sendable {
    public enum CallError: Error, Equatable, Sendable {
        /// The process answered with a JSON-RPC error.
        case error(code: Int64, message: String, data: JSON?)
        /// No answer by the deadline (the call is forgotten; a late answer is dropped).
        case timeout
        /// The process's stdout ended (it exited or closed it) before the answer.
        case closed
        /// The request could not be written whole by the deadline.
        case sendFailed
        /// Too many calls in flight on this connection.
        case busy
    }

    public let process: SandboxedProcess
    private let monitor = Monitor()
    private var pending: [Int64: Result<JSON, CallError>?] = [:]
    private var nextID: Int64 = 1
    private var isClosed = false
    private let onNotification: @Sendable (_ method: String, _ params: JSON?) -> Void
    private let errors = Atomic<Int>(0)
    public let maxInFlight: Int

    /// Lines that were not JSON-RPC, or answered nothing in flight.
    public var protocolErrors: Int { errors.load(ordering: .relaxed) }
    public var isOpen: Bool { monitor.locked { !isClosed } }

    public init(process: SandboxedProcess, maxInFlight: Int = 256,
                onNotification: @escaping @Sendable (_ method: String, _ params: JSON?) -> Void = { _, _ in }) throws(SystemError) {
        self.process = process
        self.maxInFlight = maxInFlight
        self.onNotification = onNotification
        try Threads.detach("service-reader", signals: .noSIGPIPE) { [self] in readAnswers() }
    }

    /// Sends a notification (no answer expected).
    @discardableResult
    public func notify(_ method: String, _ params: JSON? = nil, deadline: Double) -> Bool {
        var members: [(String, JSON)] = [("jsonrpc", .string("2.0")), ("method", .string(method))]
        if let params { members.append(("params", params)) }
        return process.send(Array(JSON.object(members).text.utf8), deadline: deadline)
    }

    /// Calls `method` and waits for its answer until `deadline` (CLOCK_MONOTONIC seconds).
    /// `sent` runs with the id once the request is written (for a cancellation to name it).
    public func call(_ method: String, _ params: JSON? = nil, deadline: Double,
                     sent: (Int64) -> Void = { _ in }) -> Result<JSON, CallError> {
        let id: Int64? = monitor.locked {
            guard !isClosed else { return nil }
            guard pending.count < maxInFlight else { return -1 }
            let id = nextID
            nextID += 1
            pending[id] = .some(nil)
            return id
        }
        guard let id else { return .failure(.closed) }
        guard id > 0 else { return .failure(.busy) }
        var members: [(String, JSON)] = [("jsonrpc", .string("2.0")), ("id", .int(id)), ("method", .string(method))]
        if let params { members.append(("params", params)) }
        guard process.send(Array(JSON.object(members).text.utf8), deadline: deadline) else {
            _ = monitor.locked { pending.removeValue(forKey: id) }
            return .failure(.sendFailed)
        }
        sent(id)
        return monitor.locked {
            _ = monitor.wait(until: deadline) { isClosed || isAnswered(id) }
            if case .some(.some(let result)) = pending.removeValue(forKey: id) { return result }
            return .failure(isClosed ? .closed : .timeout)
        }
    }

    /// (With the monitor held.)
    private func isAnswered(_ id: Int64) -> Bool {
        if case .some(.some) = pending[id] { return true }
        return false
    }

    private func readAnswers() {
        while true {
            switch process.readLine() {
            case .eof:
                monitor.locked {
                    isClosed = true
                    monitor.broadcast()
                }
                return
            case .tooLong:
                errors.add(1, ordering: .relaxed)
            case .message(let bytes):
                handle(bytes)
            }
        }
    }

    private func handle(_ bytes: [UInt8]) {
        guard let message = try? JSON.parse(bytes), case .object = message, message["jsonrpc"]?.stringValue == "2.0" else {
            errors.add(1, ordering: .relaxed)
            return
        }
        if let method = message["method"]?.stringValue {
            if let id = message["id"], id != .null {
                // A request from the server: nothing is offered to it.
                let refusal = JSON.object([("jsonrpc", .string("2.0")), ("id", id),
                                           ("error", .object([("code", .int(-32601)), ("message", .string("method not found: \(method.prefix(100))"))]))])
                _ = process.send(Array(refusal.text.utf8), deadline: MonotonicClock.now + 5)
            } else {
                onNotification(method, message["params"])
            }
            return
        }
        guard let id = message["id"]?.intValue else {
            errors.add(1, ordering: .relaxed)
            return
        }
        let outcome: Result<JSON, CallError>
        if let result = message["result"], message["error"] == nil {
            outcome = .success(result)
        } else if let error = message["error"], case .object = error, let code = error["code"]?.intValue {
            outcome = .failure(.error(code: code, message: String((error["message"]?.stringValue ?? "").prefix(4096)), data: error["data"]))
        } else {
            errors.add(1, ordering: .relaxed)
            return
        }
        let known = monitor.locked { () -> Bool in
            guard case .some(.none) = pending[id] else { return false }  // not in flight, or answered already
            pending[id] = .some(outcome)
            monitor.broadcast()
            return true
        }
        if !known { errors.add(1, ordering: .relaxed) }
    }
}
