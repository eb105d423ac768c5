import CordonJSON
import CordonRPC
import CordonSystem
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where one connection's messages go. `send` may be called from any thread; it blocks the
/// caller while the connection's unsent output is over its bound (so a task.logs stream cannot
/// outrun a slow reader), and returns false once the connection is gone or a message could not
/// be sent within its time.
protocol MessageSink: AnyObject, Sendable {
    @discardableResult
    func send(_ text: String) -> Bool
    /// As `send`, but never waits: false (nothing queued) when the client has not read what
    /// was sent before. For a stream fed from a thread other calls share (a model worker's
    /// reader): one client that stops reading must not hold it.
    func sendWithoutWaiting(_ text: String) -> Bool
    /// False once the connection is gone (a stream with nothing to send asks, rather than
    /// outliving its client).
    var isOpen: Bool { get }
}

/// A connection as the request layer sees it: a peer, a sink, one request in flight at a time.
protocol RequestConnection: MessageSink {
    var peer: Peer { get }
    /// The request in flight has been answered: read the next one.
    func requestDone()
    /// Runs `body` (on any thread) once `seconds` have passed, unless the request in flight was
    /// answered first or the connection closed.
    func after(_ seconds: Double, _ body: @escaping @Sendable () -> Void)
    /// Runs `body` if the connection closes while the request in flight is parked (nil: the
    /// request is no longer parked). At once if it is already closed.
    func onClose(_ body: (@Sendable () -> Void)?)
}

/// What a method answers: a result now, or once a task is no longer queued or running.
enum Answer: Sendable {
    case result(JSON)
    /// `then(ended)` gives the result once task `id` has ended (`ended` true) or `timeout`
    /// seconds have passed with it still live (`ended` false). Nothing waits meanwhile: no
    /// thread is held by a parked request.
    case afterTask(Int64, timeout: Double?, then: @Sendable (_ ended: Bool) throws -> JSON)
    /// `start(reply)` begins the work; `reply` sends its answer, once, from any thread (a tool
    /// call answered by a sandboxed server). No thread is held meanwhile.
    case later(start: @Sendable (_ reply: @escaping @Sendable (Result<JSON, RPCError>) -> Void) -> Void)
    /// As `later`, and `start` returns what to do if the connection closes before the answer
    /// (a long poll lets go of its wait): nothing waits for a client that is gone.
    case laterUnlessClosed(start: @Sendable (_ reply: @escaping @Sendable (Result<JSON, RPCError>) -> Void) -> (@Sendable () -> Void))
}

/// A fixed set of threads taking jobs in order. Request handlers run here, off the event loop:
/// they read SQLite, load policies and compile plans, none of which may stall the loop.
final class WorkerPool: @unchecked Sendable {
    private let monitor = Monitor()
    // Guarded by `monitor`: jobs[head...] are waiting.
    private var jobs: [@Sendable () -> Void] = []
    private var head = 0

    init(threads: Int, name: String) throws(SystemError) {
        for _ in 0..<threads {
            try Threads.detach(name, signals: .noSIGPIPE) { [self] in
                while true { take()() }
            }
        }
    }

    private func take() -> @Sendable () -> Void {
        monitor.locked {
            _ = monitor.wait(until: nil) { head < jobs.count }
            // The slot lets go of the job at once: a job holds its request's bytes.
            let job = jobs[head]
            jobs[head] = {}
            head += 1
            if head == jobs.count {
                jobs.removeAll(keepingCapacity: jobs.count <= 1024)
                head = 0
            } else if head > 1024 && head * 2 > jobs.count {
                jobs.removeFirst(head)
                head = 0
            }
            return job
        }
    }

    func submit(_ job: @escaping @Sendable () -> Void) {
        monitor.locked {
            jobs.append(job)
            monitor.signal()
        }
    }
}

/// The request layer: parse one line, check it is a JSON-RPC request, call the method through
/// the daemon's dispatcher on a worker, and send the answer — at once, or when the task it
/// waits for ends (parked: no thread waits). task.logs streams for as long as its task runs and
/// gets a thread of its own.
final class RequestProcessor: Sendable {
    let daemon: Daemon
    let maxMessage: Int
    private let pool: WorkerPool
    /// After a request at least this large, the worker gives free heap back to the system (the
    /// request's bytes and its parse tree were the largest allocations a worker makes).
    static let trimAfterBytes = 256 << 10

    init(daemon: Daemon, maxMessage: Int, workers: Int) throws(SystemError) {
        self.daemon = daemon
        self.maxMessage = maxMessage
        pool = try WorkerPool(threads: workers, name: "cordond-worker")
    }

    /// An over-long line: answered with an error; the connection reads on.
    func tooLong(_ connection: RequestConnection) {
        daemon.metrics.requestError(code: RPCCode.messageTooLarge)
        connection.send(RPCMessage.error(id: .null, RPCError(RPCCode.messageTooLarge, "message larger than \(maxMessage) bytes (server.max_message_bytes): discarded")))
    }

    /// Handles one request line; `connection.requestDone()` follows its answer.
    func process(_ bytes: [UInt8], on connection: RequestConnection) {
        let large = bytes.count >= Self.trimAfterBytes
        pool.submit { [self] in
            switch handle(bytes, connection) {
            case .answered: connection.requestDone()
            case .parked(let p): park(p, connection)
            case .detached: break
            }
            if large { MallocArenas.trim() }
        }
    }

    /// A request waiting for a task: its reply id (nil for a notification) and what to answer.
    private struct Parked {
        var id: JSON?
        var task: Int64
        var timeout: Double?
        var then: @Sendable (Bool) throws -> JSON
    }

    private enum Outcome {
        case answered
        case parked(Parked)
        /// Handed to a thread of its own, which calls requestDone.
        case detached
    }

    /// Answers when the task ends or the timeout passes, whichever is first; forgets the task
    /// if the connection closes first (a client looping connect, task.wait, disconnect must
    /// not grow the table of waiters).
    private func park(_ parked: Parked, _ connection: RequestConnection) {
        let once = Atomic<Bool>(false)
        let tasks = daemon.tasks
        // The waiter, once kept, and whether the connection closed: whichever comes second
        // forgets the waiter. The hook is set before anything can answer (an answer clears it).
        let hold = Mutex<(waiter: TaskManager.EndWaiter?, closed: Bool)>((nil, false))
        // `inline`: on the thread that ended the task (it is done with its sandbox and about to
        // go), which saves a hand-off; the timeout's call comes from the loop, which must not
        // read the store, so it goes to the pool.
        let finish: @Sendable (Bool, Bool) -> Void = { [self] ended, inline in
            guard !once.exchange(true, ordering: .acquiringAndReleasing) else { return }
            // Answered by the timeout: the task runs on, and its waiter would stay until it ends
            // (a client sending short waits in a loop would grow the table). Not kept yet: the
            // parking below sees `once` and forgets it.
            if !ended, let waiter = hold.withLock({ $0.waiter }) { tasks.forget(waiter) }
            let reply: @Sendable () -> Void = { [self] in
                connection.onClose(nil)
                answer(parked.id, connection) { try parked.then(ended || !tasks.isLive(parked.task)) }
                connection.requestDone()
            }
            if inline { reply() } else { pool.submit(reply) }
        }
        connection.onClose {
            let waiter = hold.withLock { h in
                h.closed = true
                return h.waiter
            }
            if let waiter { tasks.forget(waiter) }
        }
        // The timer before the waiter: requestDone, which cancels it, is then always after it.
        if let timeout = parked.timeout { connection.after(timeout) { finish(false, false) } }
        guard let waiter = tasks.whenEnded(parked.task, { finish(true, true) }) else {
            finish(true, true)
            return
        }
        let closed = hold.withLock { h in
            h.waiter = waiter
            return h.closed
        }
        // Closed meanwhile, or answered by the timeout already: nobody needs it any more.
        if closed || once.load(ordering: .acquiring) { tasks.forget(waiter) }
    }

    /// Answers one message, or says what it waits for.
    private func handle(_ bytes: [UInt8], _ connection: RequestConnection) -> Outcome {
        let message: JSON
        do { message = try JSON.parse(bytes) } catch {
            reply(connection, id: .null, error: RPCError(RPCCode.parseError, "malformed JSON \(error)"))
            return .answered
        }
        guard case .object = message else {
            let what = message.arrayValue != nil ? "batches are not supported: send one request per line" : "a request must be a JSON object"
            reply(connection, id: .null, error: RPCError(RPCCode.invalidRequest, what))
            return .answered
        }
        // The id, when valid, is echoed even in errors about the rest of the request.
        let rawID = message["id"]
        let id: JSON
        switch rawID {
        case nil: id = .null
        case .string?, .int?, .null?: id = rawID!
        default:
            reply(connection, id: .null, error: RPCError(RPCCode.invalidRequest, "id: expected a string, an integer or null", field: "id"))
            return .answered
        }
        guard message["jsonrpc"] == .string("2.0") else {
            reply(connection, id: id, error: RPCError(RPCCode.invalidRequest, "jsonrpc: expected \"2.0\"", field: "jsonrpc"))
            return .answered
        }
        guard let method = message["method"]?.stringValue else {
            reply(connection, id: id, error: RPCError(RPCCode.invalidRequest, "method: required, a string", field: "method"))
            return .answered
        }
        if case .object(let members) = message {
            for (key, _) in members where !["jsonrpc", "id", "method", "params"].contains(key) {
                reply(connection, id: id, error: RPCError(RPCCode.invalidRequest, "\(key): not a JSON-RPC request member", field: key))
                return .answered
            }
        }
        // A notification is answered with nothing, not even an error.
        let replyID: JSON? = rawID == nil ? nil : id
        let call: @Sendable () -> Outcome = { [self] in
            var parked: Parked?
            var later: (@Sendable (@escaping @Sendable (Result<JSON, RPCError>) -> Void) -> (@Sendable () -> Void)?)?
            answer(replyID, connection, method: method) {
                var params = try Params(message["params"])
                switch try daemon.call(method, &params, peer: connection.peer, sink: connection, id: id) {
                case .result(let result): return result
                case .afterTask(let task, let timeout, let then):
                    parked = Parked(id: replyID, task: task, timeout: timeout, then: then)
                    return nil
                case .later(let start):
                    later = { reply in start(reply); return nil }
                    return nil
                case .laterUnlessClosed(let start):
                    later = { reply in start(reply) }
                    return nil
                }
            }
            if let later {
                // Answered when the work ends; until then the connection takes no other request.
                let once = Atomic<Bool>(false)
                let cancel = later { [self] result in
                    guard !once.exchange(true, ordering: .acquiringAndReleasing) else { return }
                    connection.onClose(nil)
                    answer(replyID, connection, method: method) { try result.get() }
                    connection.requestDone()
                }
                if let cancel {
                    // Registered after the answer, if that came first: then it is too late to
                    // matter, and `cancel` finds nothing to let go of.
                    connection.onClose { if !once.exchange(true, ordering: .acquiringAndReleasing) { cancel() } }
                }
                return .detached
            }
            return parked.map { .parked($0) } ?? .answered
        }
        // task.logs streams for as long as its task runs: not on a worker the others share.
        if method == "task.logs" {
            let started = (try? Threads.detach("cordond-logs", signals: .noSIGPIPE) { [self] in
                switch call() {
                case .parked(let parked): park(parked, connection)
                case .answered: connection.requestDone()
                case .detached: break  // its own answer calls requestDone
                }
            }) != nil
            if started { return .detached }
        }
        return call()
    }

    /// Sends what `body` gives (nothing when it gives nil), or the error it throws.
    @discardableResult
    private func answer(_ id: JSON?, _ connection: RequestConnection, method: String? = nil, _ body: () throws -> JSON?) -> Bool {
        do {
            guard let result = try body() else { return true }
            guard let id else { return true }
            return connection.send(RPCMessage.result(id: id, result))
        } catch let error as RPCError {
            guard let id else { return true }
            return reply(connection, id: id, error: error)
        } catch {
            daemon.log.error("request failed", metadata: ["method": "\(method ?? "?")", "error": "\(error)"])
            guard let id else { return true }
            return reply(connection, id: id, error: RPCError(RPCCode.internalError, "internal error: \(error)"))
        }
    }

    @discardableResult
    private func reply(_ connection: RequestConnection, id: JSON, error: RPCError) -> Bool {
        daemon.metrics.requestError(code: error.code)
        return connection.send(RPCMessage.error(id: id, error))
    }
}
