import ArgumentParser
import CordonCommandLine
import CordonConfig
import CordonJSON
import CordonMCP
import CordonRPC
import CordonSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

struct MCPCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp", abstract: "Cordon's tools for MCP clients.", subcommands: [MCPServeCommand.self]
    )
}

/// `cordon mcp serve`: an MCP server over stdio that an MCP client launches. It serves both
/// revisions (MCPServerSession, CordonMCP) and forwards tools/list and tools/call to cordond
/// as the user who launched it: the tools offered are those cordond lets that user call, and
/// each call runs in its tool's sandbox there and is recorded. A call cordond refuses (bad
/// arguments, no access, the tool unavailable) is a tool error naming why, never a crash.
struct MCPServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Serve cordond's tools to an MCP client over stdio.",
        discussion: "Reads JSON-RPC lines on stdin and writes them on stdout (MCP's stdio transport); logs to stderr. Protocol revisions 2025-11-25 and 2026-07-28."
    )

    @Option(name: .customLong("socket"), help: "cordond's socket (default: $CORDON_SOCKET or /run/cordon/cordon.sock).")
    var socket: String?

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let server = MCPStdioServer(socket: Locations.socketPath(socket))
        server.serve()
    }
}

final class MCPStdioServer: @unchecked Sendable {
    private let socket: String
    private let session = Mutex(MCPServerSession(MCPServerSession.Configuration(
        serverInfo: MCPImplementation(name: "cordon", version: cordonVersion),
        instructions: "Every tool here runs in a sandbox of its own policy, supervised and audited by cordond.",
        toolsListChanged: true)))
    private let out = Mutex(())
    /// Connections to cordond not in use: a forwarded request takes one (or opens one) and
    /// gives it back, so a call does not pay for a connect and cordond's peer check each time.
    private let idle = IdleClients()
    /// Threads for reading stdin and forwarding requests (reused when one is idle).
    private let forwarders = ElasticThreads(name: "mcp-forward")

    init(socket: String) { self.socket = socket }

    /// Until stdin ends. The thread that reads a request forwards it itself and, once the
    /// request is on its way to cordond, hands reading to another thread (leader and
    /// followers): no request waits for a thread to wake up, and a slow tool does not hold the
    /// requests after it.
    /// The main thread only waits for stdin's end (it returns then, whatever is in flight): it
    /// never forwards, so a call cordond does not answer cannot keep the process past EOF.
    func serve() {
        _ = try? Threads.detach("mcp-watch", signals: .noSIGPIPE) { [self] in watch() }
        let reader = Reader(LineChannel(fd: 0, maxLine: 8 << 20))
        // No thread for it: this one reads (and may forward) until it hands reading on.
        do { try forwarders.run { [self] in read(reader) } } catch { read(reader) }
        ended.locked { _ = ended.wait { stdinEnded } }
    }

    /// A request this large is handed on before it is sent (its send may wait on cordond), so
    /// reading goes on meanwhile: pings, cancellations and stdin's end are seen.
    static let handOffFirstBytes = 64 << 10

    /// stdin's reader, held by one thread at a time (the one in `read`).
    private final class Reader: @unchecked Sendable {
        let channel: LineChannel
        init(_ channel: LineChannel) { self.channel = channel }
    }

    private let ended = Monitor()
    /// Guarded by `ended`.
    private var stdinEnded = false

    /// Reads lines until one is to be forwarded, or stdin ends.
    private func read(_ reader: Reader) {
        while true {
            switch reader.channel.readLine() {
            case .message(let bytes):
                let requests = receive(bytes)
                guard let first = requests.first else { continue }
                for request in requests.dropFirst() {
                    do { try forwarders.run { [self] in forward(request) } } catch {
                        answer(request.id, .error(MCPErrorObject(code: MCPErrorCode.internalError, message: "no thread: \(error)")))
                    }
                }
                // Without a thread to read on, this one reads on once it has its answer.
                var moved = false
                if bytes.count >= Self.handOffFirstBytes {
                    moved = (try? forwarders.run { [self] in read(reader) }) != nil
                    forward(first)
                } else {
                    forward(first) { [self] in moved = (try? forwarders.run { [self] in read(reader) }) != nil }
                }
                if moved { return }
            case .tooLong: FileDescriptorIO.writeAll(2, "cordon mcp serve: a message longer than 8 MiB was dropped\n")
            case .eof:
                ended.locked {
                    stdinEnded = true
                    ended.broadcast()
                }
                return
            }
        }
    }

    /// Waits on cordond's `tool.watch` for as long as the client is served, and tells the
    /// client `notifications/tools/list_changed` (each 2026-07-28 subscription, or the
    /// 2025-11-25 session once initialized) whenever cordond's tools change. cordond away: it
    /// tries again, less often each time (1 s up to 10 s); a restarted cordond counts as a
    /// change. One that does not know `tool.watch` is not asked again.
    private func watch() {
        var seen: Int64?
        var pause = 1.0
        var client: RPCClient?
        while true {
            if client == nil { client = try? RPCClient(socketPath: socket) }
            guard let c = client else {
                Self.sleep(pause)
                pause = min(10, pause * 2)
                continue
            }
            let asked = MonotonicClock.now
            var params: [(String, JSON)] = [("timeout", .double(25))]
            if let seen { params.append(("after", .int(seen))) }
            do {
                let answer = try c.call("tool.watch", .object(params))
                pause = 1
                guard let generation = answer["generation"]?.intValue else { continue }
                if let seen, generation != seen {
                    write(session.withLock { $0.toolsListChanged() })
                }
                // Answered at once with nothing new (cordond at its limit of waits): not a
                // loop that spins.
                if generation == seen && MonotonicClock.now - asked < 1 { Self.sleep(1) }
                seen = generation
            } catch let error as RPCError where error.code == RPCCode.methodNotFound {
                return
            } catch {
                client = nil
                Self.sleep(pause)
                pause = min(10, pause * 2)
            }
        }
    }

    static func sleep(_ seconds: Double) { usleep(UInt32(seconds * 1_000_000)) }

    private func write(_ messages: [MCPMessage]) {
        guard !messages.isEmpty else { return }
        let text = messages.map { $0.line + "\n" }.joined()
        out.withLock { _ in FileDescriptorIO.writeAll(1, text) }
    }

    /// Takes one line; sends what the session answers at once and returns what is for cordond.
    private func receive(_ line: [UInt8]) -> [MCPServerSession.ForwardedRequest] {
        let step = session.withLock { $0.receive(line) }
        write(step.send)
        return step.events.compactMap { event in
            guard case .forward(let request) = event else { return nil }
            return request
        }
    }

    private func answer(_ id: MCPRequestID, _ answer: MCPServerSession.Answer) {
        write(session.withLock { $0.answer(id, with: answer) })
    }

    /// Forwards `request` to cordond and answers it; `sent` runs once (when the request is on
    /// its way, or when it cannot be sent).
    private func forward(_ request: MCPServerSession.ForwardedRequest, sent: @escaping () -> Void = {}) {
        var told = false
        let tell = { if !told { told = true; sent() } }
        defer { tell() }
        let client: RPCClient
        if let kept = idle.take() { client = kept } else {
            do { client = try RPCClient(socketPath: socket) } catch {
                return answer(request.id, .error(MCPErrorObject(code: MCPErrorCode.internalError, message: "cordond is not reachable at \(socket): \(error)")))
            }
        }
        // Back to the idle ones when the exchange went through (one that failed is dropped).
        var reusable = true
        defer {
            if reusable { idle.give(client) }
        }
        switch request.call {
        case .listTools:
            do {
                let answer = try client.call("tool.list", .object([]), sent: tell)
                var tools: [MCPTool] = []
                for (i, t) in (answer["tools"]?.arrayValue ?? []).enumerated() {
                    if let tool = try? MCPTool.parse(t, path: "tools[\(i)]", limits: .default) { tools.append(tool) }
                }
                self.answer(request.id, .tools(MCPListToolsResult(tools: tools)))
            } catch let error as RPCError {
                reusable = error.code != RPCCode.messageTooLarge
                // No tools configured is an empty list, not an error.
                if error.code == RPCCode.notFound { return self.answer(request.id, .tools(MCPListToolsResult(tools: []))) }
                self.answer(request.id, .error(MCPErrorObject(code: MCPErrorCode.internalError, message: "cordond: \(error.message)")))
            } catch {
                reusable = false
                self.answer(request.id, .error(MCPErrorObject(code: MCPErrorCode.internalError, message: "cordond: \(error)")))
            }
        case .callTool(let params):
            let answer: JSON
            do {
                answer = try client.call("tool.call", .object([("name", .string(params.name)), ("arguments", params.arguments ?? .object([]))]), sent: tell)
            } catch let error as RPCError {
                return self.answer(request.id, .toolResult(MCPCallToolResult(content: [.text("cordond refused the call: \(error.message)", extra: nil)], isError: true)))
            } catch {
                reusable = false
                return self.answer(request.id, .error(MCPErrorObject(code: MCPErrorCode.internalError, message: "cordond: \(error)")))
            }
            if let result = answer["result"], case .object = result, case .complete(let r)? = try? MCPCallToolOutcome.parse(result, limits: .default) {
                return self.answer(request.id, .toolResult(r))
            }
            let why = "\(answer["outcome"]?.stringValue ?? "failed"): \(answer["message"]?.stringValue ?? "no answer")"
            self.answer(request.id, .toolResult(MCPCallToolResult(content: [.text(why, extra: nil)], isError: true)))
        }
    }
}

/// cordond connections not in use (RPCClient is one thread's at a time: taken, used, given back).
/// One idle longer than `maxIdleSeconds` is not used again: cordond closes connections that stay
/// quiet (`server.idle_timeout`), and a call is never retried on another (it may have run).
final class IdleClients: @unchecked Sendable {
    private let lock = Mutex(())
    private var clients: [(client: RPCClient, since: Double)] = []
    static let max = 8
    static let maxIdleSeconds = 20.0

    func take() -> RPCClient? {
        lock.withLock { _ in
            let now = MonotonicClock.now
            clients.removeAll { now - $0.since > Self.maxIdleSeconds }
            return clients.popLast()?.client
        }
    }

    /// Kept for the next request, or closed (released) when enough are kept.
    func give(_ client: RPCClient) {
        lock.withLock { _ in if clients.count < Self.max { clients.append((client, MonotonicClock.now)) } }
    }
}
