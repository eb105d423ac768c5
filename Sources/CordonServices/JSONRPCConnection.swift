import CordonJSON
import CordonRPC
import CordonSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The client side of JSON-RPC 2.0 over one `SandboxedProcess`'s stdio, multiplexed: many calls
/// in flight, each answered by id, none holding a thread while it waits (`start` takes a
/// completion; `call` is the blocking form). One reader thread takes every line the process
/// writes and keeps the deadlines: an answer completes its call; a notification goes to
/// `onNotification`; a request from the process (MCP servers may ask for sampling, roots,
/// elicitation) is refused with "method not found", as the spec allows a client that did not
/// offer the capability. Whatever is not JSON-RPC, or answers no call in flight, is counted
/// (`protocolErrors`) and dropped: a server cannot make the gateway misattribute an answer, and
/// garbage ends nothing by itself — the owner decides what a count means.
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

    public typealias Completion = @Sendable (Result<JSON, CallError>) -> Void

    private struct Pending {
        var deadline: Double
        var completion: Completion
        /// Raw: completed with the whole answer message, for a protocol engine that reads it.
        var raw: (@Sendable (Result<[UInt8], CallError>) -> Void)?
    }

    public let process: SandboxedProcess
    public let maxInFlight: Int
    /// Lines a second that answer no call before the process is stopped (see `giveUp`).
    public let maxUnsolicitedPerSecond: Int
    private let budgetExceeded = Atomic<Bool>(false)
    /// Whether the connection ended because the process wrote too much that answered nothing.
    public var endedOverBudget: Bool { budgetExceeded.load(ordering: .relaxed) }
    private let state = Mutex(State())
    private let errors = Atomic<Int>(0)
    private let onNotification: @Sendable (_ method: String, _ params: JSON?) -> Void
    private let onUnmatched: (@Sendable (_ message: JSON) -> Void)?
    /// Written to when a call with an earlier deadline than the reader's arrives.
    private let wake: Pipe
    /// How long the reader sleeps with no call in flight before it looks at deadlines again.
    public static let idleTurnSeconds = 5.0

    private struct State {
        var pending: [Int64: Pending] = [:]
        var nextID: Int64 = 1
        var closed = false
        /// The deadline the reader sleeps until (nil: none).
        var readerDeadline: Double?
    }

    /// Lines that were not JSON-RPC, or answered nothing in flight.
    public var protocolErrors: Int { errors.load(ordering: .relaxed) }
    public var isOpen: Bool { state.withLock { !$0.closed } }
    public var inFlight: Int { state.withLock { $0.pending.count } }

    /// `onUnmatched`: an error without an id, or an answer to no call in flight, goes here
    /// instead of being counted (a protocol engine may want it: an MCP server that cannot read
    /// the opening probe answers without an id).
    public init(process: SandboxedProcess, maxInFlight: Int = 256, maxUnsolicitedPerSecond: Int = 2000,
                onNotification: @escaping @Sendable (_ method: String, _ params: JSON?) -> Void = { _, _ in },
                onUnmatched: (@Sendable (_ message: JSON) -> Void)? = nil) throws(SystemError) {
        self.process = process
        self.maxInFlight = maxInFlight
        self.maxUnsolicitedPerSecond = maxUnsolicitedPerSecond
        self.onNotification = onNotification
        self.onUnmatched = onUnmatched
        wake = try Descriptor.pipe(flags: O_CLOEXEC | O_NONBLOCK)
        try Threads.detach("service-reader", signals: .noSIGPIPE) { [self] in readAnswers() }
    }

    /// Sends a notification (no answer expected).
    @discardableResult
    public func notify(_ method: String, _ params: JSON? = nil, deadline: Double) -> Bool {
        var members: [(String, JSON)] = [("jsonrpc", .string("2.0")), ("method", .string(method))]
        if let params { members.append(("params", params)) }
        return process.send(Array(JSON.object(members).text.utf8), deadline: deadline)
    }

    /// Sends the call and returns its id; `completion` runs once, on the reader's thread (or on
    /// this one when the call fails at once: then the id is nil).
    @discardableResult
    public func start(_ method: String, _ params: JSON? = nil, deadline: Double, completion: @escaping Completion) -> Int64? {
        enum Admission { case id(Int64, wakeReader: Bool), closed, busy }
        let admission: Admission = state.withLock { s in
            if s.closed { return .closed }
            if s.pending.count >= maxInFlight { return .busy }
            let id = s.nextID
            s.nextID += 1
            s.pending[id] = Pending(deadline: deadline, completion: completion)
            let earlier = s.readerDeadline.map { deadline < $0 } ?? true
            return .id(id, wakeReader: earlier)
        }
        let id: Int64, wakeReader: Bool
        switch admission {
        case .id(let admitted, let earlier): (id, wakeReader) = (admitted, earlier)
        case .closed: completion(.failure(.closed)); return nil
        case .busy: completion(.failure(.busy)); return nil
        }
        if wakeReader {
            var one: UInt8 = 1
            _ = write(wake.write.raw, &one, 1)
        }
        var members: [(String, JSON)] = [("jsonrpc", .string("2.0")), ("id", .int(id)), ("method", .string(method))]
        if let params { members.append(("params", params)) }
        guard process.send(Array(JSON.object(members).text.utf8), deadline: deadline) else {
            if let p = state.withLock({ $0.pending.removeValue(forKey: id) }) { Self.complete(p, .sendFailed) }
            return nil
        }
        return id
    }

    /// Sends `message`, a request a protocol engine built with its own id `id` (an engine uses
    /// its ids or this connection's, never both), and completes with the answer's line as it
    /// came (the engine reads it itself: one parse, not two).
    /// `.busy` when that id is in flight already.
    @discardableResult
    public func startRaw(id: Int64, message: JSON, deadline: Double, completion: @escaping @Sendable (Result<[UInt8], CallError>) -> Void) -> Bool {
        enum Admission { case admitted(wakeReader: Bool), closed, busy }
        let admission: Admission = state.withLock { s in
            if s.closed { return .closed }
            if s.pending.count >= maxInFlight || s.pending[id] != nil { return .busy }
            s.pending[id] = Pending(deadline: deadline, completion: { _ in }, raw: completion)
            return .admitted(wakeReader: s.readerDeadline.map { deadline < $0 } ?? true)
        }
        switch admission {
        case .closed: completion(.failure(.closed)); return false
        case .busy: completion(.failure(.busy)); return false
        case .admitted(let wakeReader):
            if wakeReader {
                var one: UInt8 = 1
                _ = write(wake.write.raw, &one, 1)
            }
        }
        guard process.send(Array(message.text.utf8), deadline: deadline) else {
            if let p = state.withLock({ $0.pending.removeValue(forKey: id) }) { p.raw?(.failure(.sendFailed)) }
            return false
        }
        return true
    }

    /// Sends a message as it is (a notification a protocol engine built).
    @discardableResult
    public func sendRaw(_ message: JSON, deadline: Double) -> Bool {
        process.send(Array(message.text.utf8), deadline: deadline)
    }

    /// Calls `method` and waits for its answer until `deadline` (CLOCK_MONOTONIC seconds).
    public func call(_ method: String, _ params: JSON? = nil, deadline: Double) -> Result<JSON, CallError> {
        let answer = Awaited<Result<JSON, CallError>>()
        start(method, params, deadline: deadline) { answer.set($0) }
        // The reader completes every call by its deadline (or at the stream's end).
        return answer.wait()!
    }

    /// Lines that answered nothing, counted per second.
    private struct Window { var start = MonotonicClock.now; var count = 0 }

    /// Whether one more unsolicited line passes `maxUnsolicitedPerSecond`.
    private func overBudget(_ w: inout Window) -> Bool {
        let now = MonotonicClock.now
        if now - w.start >= 1 { w = Window(start: now, count: 0) }
        w.count += 1
        return w.count > maxUnsolicitedPerSecond
    }

    /// The process wrote more than its budget of lines that answer nothing (notifications,
    /// requests, garbage): each costs this thread's CPU outside the sandbox's cgroup. The
    /// connection ends as if the stream had, and the process is stopped.
    private func giveUp() {
        let all = state.withLock { s -> [Pending] in
            s.closed = true
            defer { s.pending = [:] }
            return Array(s.pending.values)
        }
        budgetExceeded.store(true, ordering: .relaxed)
        process.stop()
        for p in all { Self.complete(p, .closed) }
    }

    private func readAnswers() {
        var window = Window()
        var drain = [UInt8](repeating: 0, count: 64)
        while true {
            // With nothing in flight, a turn every `idleTurnSeconds` rather than no deadline:
            // a call whose deadline is later than the turn then need not wake the reader (a
            // wake-up on each call's path costs more than the call's own work here).
            let deadline: Double? = state.withLock { s in
                s.readerDeadline = s.pending.values.map(\.deadline).min() ?? MonotonicClock.now + Self.idleTurnSeconds
                return s.readerDeadline
            }
            switch process.readLine(until: deadline, wake: wake.read.raw) {
            case nil:
                _ = drain.withUnsafeMutableBytes { read(wake.read.raw, $0.baseAddress, $0.count) }
                process.flushPosted()
                expire()
            case .eof?:
                let all = state.withLock { s -> [Pending] in
                    s.closed = true
                    defer { s.pending = [:] }
                    return Array(s.pending.values)
                }
                for p in all { Self.complete(p, .closed) }
                return
            case .tooLong?:
                errors.add(1, ordering: .relaxed)
                if overBudget(&window) { return giveUp() }
            case .message(let bytes)?:
                if !handle(bytes) && overBudget(&window) { return giveUp() }
                process.flushPosted()
                expire()
            }
        }
    }

    /// Completes every call whose deadline has passed with `.timeout`.
    private func expire() {
        let now = MonotonicClock.now
        let overdue = state.withLock { s -> [Pending] in
            let ids = s.pending.filter { $0.value.deadline <= now }.map(\.key)
            return ids.compactMap { s.pending.removeValue(forKey: $0) }
        }
        for p in overdue { Self.complete(p, .timeout) }
    }

    /// Whether the line answered a call in flight.
    @discardableResult
    private func handle(_ bytes: [UInt8]) -> Bool {
        guard let message = try? JSON.parse(bytes), case .object = message, message["jsonrpc"]?.stringValue == "2.0" else {
            errors.add(1, ordering: .relaxed)
            return false
        }
        if let method = message["method"]?.stringValue {
            if let id = message["id"], id != .null {
                // A request from the server: nothing is offered to it.
                let refusal = JSON.object([("jsonrpc", .string("2.0")), ("id", id),
                                           ("error", .object([("code", .int(-32601)), ("message", .string("method not found: \(method.prefix(100))"))]))])
                // Never waiting on a caller's send: posted, and sent when the writer is free.
                process.post(Array(refusal.text.utf8))
            } else {
                onNotification(method, message["params"])
            }
            return false
        }
        guard let id = message["id"]?.intValue else {
            if let onUnmatched { onUnmatched(message) } else { errors.add(1, ordering: .relaxed) }
            return false
        }
        if let p = state.withLock({ s -> Pending? in
            guard s.pending[id]?.raw != nil else { return nil }
            return s.pending.removeValue(forKey: id)
        }) {
            p.raw?(.success(bytes))
            return true
        }
        let outcome: Result<JSON, CallError>
        if let result = message["result"], message["error"] == nil {
            outcome = .success(result)
        } else if let error = message["error"], case .object = error, let code = error["code"]?.intValue {
            outcome = .failure(.error(code: code, message: String((error["message"]?.stringValue ?? "").prefix(4096)), data: error["data"]))
        } else {
            errors.add(1, ordering: .relaxed)
            return false
        }
        guard let p = state.withLock({ $0.pending.removeValue(forKey: id) }) else {
            // Not in flight: answered already, timed out, or never asked.
            if let onUnmatched { onUnmatched(message) } else { errors.add(1, ordering: .relaxed) }
            return false
        }
        p.completion(outcome)
        return true
    }

    private static func complete(_ p: Pending, _ failure: CallError) {
        if let raw = p.raw { raw(.failure(failure)) } else { p.completion(.failure(failure)) }
    }
}
