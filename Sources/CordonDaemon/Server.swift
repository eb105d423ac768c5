import CLinux
import CordonJSON
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
    private let open = Mutex<(total: Int, byUser: [UInt32: Int], rate: [UInt32: (tokens: Double, at: Double)])>((0, [:], [:]))

    init(daemon: Daemon, listener: Int32, maxMessage: Int) {
        self.daemon = daemon
        self.listener = listener
        self.maxMessage = maxMessage
    }

    /// Takes a connection slot for `peer`, or says why not. Non-admins are held to the global
    /// cap, their own share and their own connection rate; admins get a reserve above the cap
    /// and no rate, so users in the socket's group cannot lock the admins out.
    private func admit(_ peer: Peer) -> String? {
        let config = daemon.config
        let admin = daemon.authorizer.isAdmin(peer)
        let now = MonotonicClock.now
        return open.withLock { o in
            if admin {
                if o.total >= config.maxConnections + DaemonConfig.adminReserve { return "cordond has \(o.total) connections open: retry later" }
            } else {
                // A token bucket per uid: server.connect_rate_per_user a second, bursts of twice that.
                let rate = Double(config.connectRatePerUser)
                var bucket = o.rate[peer.uid] ?? (tokens: 2 * rate, at: now)
                bucket.tokens = min(2 * rate, bucket.tokens + (now - bucket.at) * rate)
                bucket.at = now
                guard bucket.tokens >= 1 else {
                    o.rate[peer.uid] = bucket
                    return "uid \(peer.uid) opens connections faster than \(config.connectRatePerUser) a second (server.connect_rate_per_user): slow down"
                }
                bucket.tokens -= 1
                o.rate[peer.uid] = bucket
                if o.rate.count > 4096 { o.rate = o.rate.filter { now - $0.value.at < 10 } }
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

    /// Accepts, identifies and admits each connection on this one thread, before any thread is
    /// started for it: a connection whose peer is not known yet never holds a slot, so a flood
    /// from one user is refused at its own caps and rate while admins always get in.
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
            guard let peer = Peer.of(socket: fd) else {
                close(fd)
                continue
            }
            if let refusal = admit(peer) {
                refuseConnection(fd, refusal)
                continue
            }
            daemon.metrics.connection(opened: true)
            if (try? Threads.detach("cordond-conn", signals: .noSIGPIPE, { [self] in serve(fd, peer) })) == nil {
                release(peer)
                daemon.metrics.connection(opened: false)
                close(fd)
            }
        }
    }

    private func serve(_ fd: Int32, _ peer: Peer) {
        defer {
            close(fd)
            release(peer)
            daemon.metrics.connection(opened: false)
        }
        // A client that stops reading must not hold a thread forever; one that sends nothing
        // (or a request one byte at a time) is closed once a whole request has not arrived
        // within the idle timeout.
        _ = cl_socket_timeouts(fd, 0, 30_000)
        let channel = LineChannel(fd: fd, maxLine: maxMessage)
        while true {
            switch channel.readLine(deadline: MonotonicClock.now + daemon.config.idleSeconds) {
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
///
/// One thread serves every scrape from a poll loop over non-blocking sockets: each client gets
/// 2 s in all to send its request head (8 KiB at most) and is read as soon as it is accepted;
/// when `maxClients` are open, one that has sent nothing (else the one that has waited
/// longest) is dropped for the newcomer. Local users holding connections open therefore
/// cannot starve a scrape (loopback TCP tells us no uid to cap them by).
final class MetricsListener: @unchecked Sendable {
    let daemon: Daemon
    let fd: Int32
    static let maxClients = 64

    init(daemon: Daemon, fd: Int32) {
        self.daemon = daemon
        self.fd = fd
    }

    private struct Client {
        var fd: Int32
        var deadline: Double
        var head: [UInt8] = []
    }

    func acceptLoop() {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var clients: [Client] = []
        defer { for c in clients { close(c.fd) } }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            var pfds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
            pfds += clients.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            let soonest = clients.map(\.deadline).min()
            let timeout = soonest.map { Int32(max(0, min(2000, ($0 - MonotonicClock.now) * 1000 + 1))) } ?? -1
            if poll(&pfds, nfds_t(pfds.count), timeout) < 0 && errno != EINTR { return }
            let now = MonotonicClock.now
            // Reads what a client sent; true when it is done with (answered, gone or late).
            func serve(_ client: inout Client) -> Bool {
                if now >= client.deadline { return true }
                let n = buffer.withUnsafeMutableBytes { read(client.fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    client.head += buffer[0..<n]
                    if client.head.count >= 4 && client.head.suffix(4) == [13, 10, 13, 10] || client.head.count >= 8192 {
                        respond(client.fd, client.head)
                        return true
                    }
                    return false
                }
                return n == 0 || (errno != EAGAIN && errno != EINTR)
            }
            var keep: [Client] = []
            for (i, var client) in clients.enumerated() {
                let done = now >= client.deadline || (pfds[i + 1].revents != 0 && serve(&client))
                if done { close(client.fd) } else { keep.append(client) }
            }
            clients = keep
            if pfds[0].revents != 0 {
                // Take every waiting connection; past the cap a silent (else the oldest) client
                // makes room.
                while true {
                    let c = cl_accept_nonblock(fd)
                    if c < 0 {
                        if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED { break }
                        if errno == EMFILE || errno == ENFILE { usleep(10_000); break }
                        return  // shut down: draining
                    }
                    var client = Client(fd: c, deadline: now + 2)
                    if serve(&client) { close(c); continue }
                    if clients.count >= Self.maxClients {
                        let victim = clients.firstIndex { $0.head.isEmpty } ?? 0
                        close(clients.remove(at: victim).fd)
                    }
                    clients.append(client)
                }
            }
        }
    }

    private func respond(_ client: Int32, _ head: [UInt8]) {
        let line = String(decoding: head.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let response: String
        if line.hasPrefix("GET /metrics ") || line == "GET /metrics" {
            let body = daemon.metricsText()
            response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
        } else {
            response = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        }
        // The answer (a few KiB) fits an empty socket buffer: a client that does not read
        // loses the rest rather than blocking the loop.
        var bytes = Array(response.utf8)
        bytes.withUnsafeMutableBytes { _ = send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
    }
}
