import CLinux
import CordonRPC
import CordonSystem
import Logging
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

    init(daemon: Daemon, listener: Int32, maxMessage: Int) {
        self.daemon = daemon
        self.listener = listener
        self.maxMessage = maxMessage
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
            if daemon.metrics.connections >= daemon.config.maxConnections {
                // Answered, not just dropped, so the client can tell why.
                _ = cl_socket_timeouts(fd, 0, 1000)
                LineChannel(fd: fd, maxLine: 0).send(RPCMessage.error(id: .null, RPCError(RPCCode.busy, "cordond has \(daemon.config.maxConnections) connections open (server.max_connections): retry later")))
                close(fd)
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
        // A client that stops reading must not hold a thread forever.
        _ = cl_socket_timeouts(fd, 0, 30_000)
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

    func acceptLoop() {
        while true {
            let client = cl_unix_accept(fd)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            _ = cl_socket_timeouts(client, 2000, 2000)
            var head: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while head.count < 8192 {
                let n = buffer.withUnsafeMutableBytes { read(client, $0.baseAddress, $0.count) }
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
            close(client)
        }
    }
}
