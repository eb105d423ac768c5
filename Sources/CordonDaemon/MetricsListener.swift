import CLinux
import CordonSystem
#if canImport(Glibc)
import Glibc
#endif

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
