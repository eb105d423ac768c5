import CLinux
import CordonRPC
import CordonSystem
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The socket side: accepts connections, reads the peer's credentials once, and serves one
/// request at a time per connection on that connection's own thread. A client's mistake is
/// answered with an error on its own connection; nothing it sends can stop the daemon.
final class Server: @unchecked Sendable {
    let daemon: Daemon
    let listener: Int32
    let maxMessage: Int
    /// Open connections: all, and per uid.
    private let open = Mutex<(total: Int, byUser: [UInt32: Int])>((0, [:]))

    init(daemon: Daemon, listener: Int32, maxMessage: Int) {
        self.daemon = daemon
        self.listener = listener
        self.maxMessage = maxMessage
    }

    /// Takes a connection slot for `peer`, or says why not. Non-admins are held to the global
    /// cap and their own share; admins get a reserve above the cap, so users in the socket's
    /// group cannot lock the admins out.
    private func admit(_ peer: Peer) -> String? {
        let config = daemon.config
        let admin = daemon.authorizer.isAdmin(peer)
        return open.withLock { o in
            if admin {
                if o.total >= config.maxConnections + DaemonConfig.adminReserve { return "cordond has \(o.total) connections open: retry later" }
            } else {
                if o.total >= config.maxConnections {
                    return "cordond has \(config.maxConnections) connections open (server.max_connections): retry later"
                }
                if o.byUser[peer.uid, default: 0] >= config.maxConnectionsPerUser {
                    return "uid \(peer.uid) has \(config.maxConnectionsPerUser) connections open (server.max_connections_per_user): close some"
                }
            }
            o.total += 1
            o.byUser[peer.uid, default: 0] += 1
            return nil
        }
    }

    private func release(_ peer: Peer) {
        open.withLock { o in
            o.total -= 1
            o.byUser[peer.uid, default: 1] -= 1
            if o.byUser[peer.uid] == 0 { o.byUser[peer.uid] = nil }
        }
    }

    func acceptLoop() {
        while true {
            let fd = cl_unix_accept(listener)
            if fd < 0 {
                if errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS {
                    daemon.log.error("accept: out of descriptors or memory; pausing", metadata: ["errno": "\(errno)"])
                    usleep(100_000)
                    continue
                }
                if errno == ECONNABORTED || errno == EINTR || errno == EPROTO { continue }
                return  // the listener was shut down: draining
            }
            // A hard bound on threads before the peer is known; admit() applies the real caps.
            if daemon.metrics.connections >= daemon.config.maxConnections + DaemonConfig.adminReserve {
                refuseConnection(fd, "cordond has \(daemon.metrics.connections) connections open: retry later")
                continue
            }
            daemon.metrics.connection(opened: true)
            if !startThread({ [self] in serve(fd) }) {
                daemon.metrics.connection(opened: false)
                close(fd)
            }
        }
    }

    private func serve(_ fd: Int32) {
        defer {
            close(fd)
            daemon.metrics.connection(opened: false)
        }
        guard let peer = Peer.of(socket: fd) else { return }
        if let refusal = admit(peer) {
            _ = cl_socket_timeouts(fd, 0, 1000)
            LineChannel(fd: fd, maxLine: 0).send(RPCMessage.error(id: .null, RPCError(RPCCode.busy, refusal)))
            daemon.metrics.requestError(code: RPCCode.busy)
            return
        }
        defer { release(peer) }
        // A client that stops reading, or sends nothing, must not hold a thread forever.
        _ = cl_socket_timeouts(fd, Int32(min(daemon.config.idleSeconds * 1000, Double(Int32.max))), 30_000)
        let channel = LineChannel(fd: fd, maxLine: maxMessage)
        while true {
            switch channel.readLine() {
            case .eof: return
            case .tooLong:
                daemon.metrics.requestError(code: RPCCode.messageTooLarge)
                guard channel.send(RPCMessage.error(id: .null, RPCError(RPCCode.messageTooLarge, "message larger than \(maxMessage) bytes (server.max_message_bytes): discarded"))) else { return }
            case .message(let bytes):
                if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
                guard handle(bytes, peer: peer, channel: channel) else { return }
            }
        }
    }

    /// Answers one message; false when the connection is gone.
    private func handle(_ bytes: [UInt8], peer: Peer, channel: LineChannel) -> Bool {
        let message: JSON
        do { message = try JSON.parse(bytes) } catch {
            return reply(channel, id: .null, error: RPCError(RPCCode.parseError, "malformed JSON \(error)"))
        }
        guard case .object = message else {
            let what = message.arrayValue != nil ? "batches are not supported: send one request per line" : "a request must be a JSON object"
            return reply(channel, id: .null, error: RPCError(RPCCode.invalidRequest, what))
        }
        // The id, when valid, is echoed even in errors about the rest of the request.
        let rawID = message["id"]
        var id = JSON.null
        switch rawID {
        case nil: break
        case .string?, .int?, .null?: id = rawID!
        default: return reply(channel, id: .null, error: RPCError(RPCCode.invalidRequest, "id: expected a string, an integer or null", field: "id"))
        }
        guard message["jsonrpc"] == .string("2.0") else {
            return reply(channel, id: id, error: RPCError(RPCCode.invalidRequest, "jsonrpc: expected \"2.0\"", field: "jsonrpc"))
        }
        guard let method = message["method"]?.stringValue else {
            return reply(channel, id: id, error: RPCError(RPCCode.invalidRequest, "method: required, a string", field: "method"))
        }
        if case .object(let members) = message {
            for (key, _) in members where !["jsonrpc", "id", "method", "params"].contains(key) {
                return reply(channel, id: id, error: RPCError(RPCCode.invalidRequest, "\(key): not a JSON-RPC request member", field: key))
            }
        }
        let isNotification = rawID == nil
        let result: JSON
        do {
            var params = try Params(message["params"])
            result = try daemon.call(method, &params, peer: peer, channel: channel, id: id)
        } catch let error as RPCError {
            return isNotification ? true : reply(channel, id: id, error: error)
        } catch {
            daemon.log.error("request failed", metadata: ["method": "\(method)", "error": "\(error)"])
            return isNotification ? true : reply(channel, id: id, error: RPCError(RPCCode.internalError, "internal error: \(error)"))
        }
        return isNotification ? true : channel.send(RPCMessage.result(id: id, result))
    }

    private func refuseConnection(_ fd: Int32, _ message: String) {
        // Answered, not just dropped, so the client can tell why.
        _ = cl_socket_timeouts(fd, 0, 1000)
        LineChannel(fd: fd, maxLine: 0).send(RPCMessage.error(id: .null, RPCError(RPCCode.busy, message)))
        daemon.metrics.requestError(code: RPCCode.busy)
        close(fd)
    }

    private func reply(_ channel: LineChannel, id: JSON, error: RPCError) -> Bool {
        daemon.metrics.requestError(code: error.code)
        return channel.send(RPCMessage.error(id: id, error))
    }
}

/// Prometheus metrics over HTTP on a loopback port: `GET /metrics` and nothing else.
final class MetricsListener: @unchecked Sendable {
    let daemon: Daemon
    let fd: Int32

    init(daemon: Daemon, fd: Int32) {
        self.daemon = daemon
        self.fd = fd
    }

    /// At most this many scrapes at once; each gets 2 s in all to send its request.
    private let active = Atomic<Int>(0)
    static let maxActive = 4

    func acceptLoop() {
        while true {
            let client = cl_unix_accept(fd)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            guard active.add(1, ordering: .relaxed).newValue <= Self.maxActive, startThread({ [self] in serve(client) }) else {
                active.subtract(1, ordering: .relaxed)
                close(client)
                continue
            }
        }
    }

    private func serve(_ client: Int32) {
        defer {
            close(client)
            active.subtract(1, ordering: .relaxed)
        }
        _ = cl_socket_timeouts(client, 250, 2000)
        let deadline = UTCTime.monotonic() + 2
        var head: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while head.count < 8192 && UTCTime.monotonic() < deadline {
            let n = buffer.withUnsafeMutableBytes { read(client, $0.baseAddress, $0.count) }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { continue }
            if n <= 0 { break }
            head += buffer[0..<n]
            if head.count >= 4, head.suffix(4) == [13, 10, 13, 10] { break }
        }
        let line = String(decoding: head.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let response: String
        if line.hasPrefix("GET /metrics ") || line == "GET /metrics" {
            let body = daemon.metricsText()
            response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
        } else {
            response = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        }
        var bytes = Array(response.utf8)
        bytes.withUnsafeMutableBytes { _ = send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
}
