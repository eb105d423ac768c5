#if canImport(Glibc)
import CordonPolicy
import Glibc
#endif
import CLinux
import CordonSystem

/// The socket calls the engine makes, each in one place. Sockets are non-blocking; waiting is
/// poll(2) on the socket and the engine's stop pipe, so `stop()` wakes every wait.
enum Sockets {
    enum Wait { case ready, timeout, stopped }

    /// Waits until `fd` has any of `events` or `stopFd` is readable/hung up, for at most
    /// `seconds` (negative: forever).
    static func wait(_ fd: Int32, _ events: Int16, stopFd: Int32, seconds: Double) -> Wait {
        let deadline = seconds < 0 ? Double.infinity : MonotonicClock.now + seconds
        while true {
            var fds = [pollfd(fd: fd, events: events, revents: 0), pollfd(fd: stopFd, events: Int16(POLLIN), revents: 0)]
            let left = deadline == .infinity ? -1 : Int32(max(0, min(Double(Int32.max), (deadline - MonotonicClock.now) * 1000).rounded(.up)))
            let n = poll(&fds, 2, left)
            if n < 0 {
                if errno == EINTR { continue }
                return .stopped
            }
            if fds[1].revents != 0 { return .stopped }
            if n == 0 { return MonotonicClock.now >= deadline ? .timeout : .ready }
            return .ready
        }
    }

    static func localEndpoint(_ fd: Int32) -> Endpoint? {
        var s = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &s) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return rc == 0 ? Endpoint(storage: s) : nil
    }

    static func peerEndpoint(_ fd: Int32) -> Endpoint? {
        var s = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &s) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &len) } }
        return rc == 0 ? Endpoint(storage: s) : nil
    }

    static func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 { _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
    }

    static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// How the calling thread's network namespace would route a TCP connection to an endpoint.
    enum Route: Equatable {
        /// Out through an interface (RTN_UNICAST).
        case away
        /// Delivered inside the namespace: one of its own addresses or a local route
        /// (RTN_LOCAL), a broadcast, anycast or multicast address. Says which.
        case own(String)
        /// The kernel has no route (or a blackhole, unreachable or prohibit one): a dial fails.
        case none(String)
        /// The kernel could not be asked.
        case unknown(String)
    }

    /// Asks the kernel (RTM_GETROUTE, the lookup connect(2) makes) how `to` is routed from the
    /// calling thread's namespace — the namespace the engine dials from. Read at each call, so it
    /// follows addresses and local routes as they are added and removed.
    static func route(_ to: Endpoint) -> Route {
        let family: Int32, bytes: [UInt8]
        switch to.address {
        case .v4(let a): (family, bytes) = (AF_INET, a.bytes)
        case .v6(let a): (family, bytes) = (AF_INET6, a.bytes)
        }
        let type = bytes.withUnsafeBytes { cl_route_type(family, $0.baseAddress, to.port) }
        switch type {
        case -2: return .none(SystemError.text(errno))
        case ..<0: return .unknown("route lookup: \(SystemError.text(errno))")
        // RTN_UNICAST, RTN_LOCAL ... (linux/rtnetlink.h; kernel ABI, so their values are fixed).
        case 1: return .away
        case 2: return .own("an address of the supervisor's own network namespace (local route)")
        case 3: return .own("a broadcast address of the supervisor's network")
        case 4: return .own("an anycast address of the supervisor's own network namespace")
        case 5: return .own("a multicast address")
        case 6, 7, 8: return .none("route type \(type) (blackhole, unreachable or prohibit)")
        default: return .unknown("route lookup: unexpected route type \(type)")
        }
    }

    /// A non-blocking TCP connection to `to`, or why not.
    static func dial(_ to: Endpoint, timeout: Double, stopFd: Int32, in namespace: NetworkNamespace? = nil) throws(EgressError) -> Descriptor {
        let owner: Descriptor
        if let namespace {
            do { owner = try namespace.tcpSocket(family: to.family) }
            catch { throw EgressError(.system, "socket in the upstream's namespace: \(error)") }
        } else {
            let raw = socket(to.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard raw >= 0 else { throw EgressError(.system, "socket", errno: errno) }
            owner = Descriptor(adopting: raw)
        }
        let fd = owner.raw
        var (addr, len) = to.storage
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, len) } }
        if rc != 0 {
            let e = errno
            guard e == EINPROGRESS || e == EINTR else { throw EgressError(.system, "connect \(to)", errno: e) }
            switch wait(fd, Int16(POLLOUT), stopFd: stopFd, seconds: timeout) {
            case .stopped: throw EgressError(.system, "connect \(to): engine stopping")
            case .timeout: throw EgressError(.system, "connect \(to)", errno: ETIMEDOUT)
            case .ready:
                var soError: Int32 = 0
                var l = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &l)
                if soError != 0 { throw EgressError(.system, "connect \(to)", errno: soError) }
            }
        }
        setNoDelay(fd)
        return owner
    }

    /// Writes all of `bytes`, waiting for POLLOUT as needed. False on error, stop or timeout.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8], stopFd: Int32, timeout: Double) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n > 0 { sent += n; continue }
            if n < 0 && (errno == EAGAIN || errno == EINTR) {
                if wait(fd, Int16(POLLOUT), stopFd: stopFd, seconds: timeout) != .ready { return false }
                continue
            }
            return false
        }
        return true
    }

    /// How a relay ended and how many bytes went each way.
    struct RelayResult {
        var up: UInt64 = 0
        var down: UInt64 = 0
        var end = "closed by both sides"
    }

    /// A relay's two non-blocking pipes of 1 MiB, one per direction.
    private struct RelayPipes: ~Copyable {
        let upward: Pipe
        let downward: Pipe
        static func open() throws(SystemError) -> RelayPipes {
            let upward = try Descriptor.pipe(flags: O_CLOEXEC | O_NONBLOCK)
            let downward = try Descriptor.pipe(flags: O_CLOEXEC | O_NONBLOCK)
            _ = cl_pipe_set_size(upward.write.raw, 1 << 20)
            _ = cl_pipe_set_size(downward.write.raw, 1 << 20)
            return RelayPipes(upward: upward, downward: downward)
        }
    }

    /// Moves bytes both ways between two connected non-blocking sockets with splice(2) through a
    /// pipe per direction, so the payload never enters user space. An EOF in one direction is
    /// passed on as shutdown(SHUT_WR) once the pipe is drained; the relay ends when both
    /// directions are done, on a reset or error, after `idle` seconds without traffic, or at
    /// stop.
    static func relay(client: Int32, upstream: Int32, stopFd: Int32, idle: Double) -> RelayResult {
        var result = RelayResult()
        struct Direction {
            let from: Int32, to: Int32
            var pipe: (read: Int32, write: Int32) = (-1, -1)
            var pending = 0
            var eof = false
            var shut = false
            var moved: UInt64 = 0
        }
        var dirs = [Direction(from: client, to: upstream), Direction(from: upstream, to: client)]
        // The pipes' owners; their numbers go into `dirs` and stay valid until we return.
        let pipes: RelayPipes
        do { pipes = try RelayPipes.open() } catch {
            result.end = "pipe: \(SystemError.text(error.errno))"
            return result
        }
        dirs[0].pipe = (pipes.upward.read.raw, pipes.upward.write.raw)
        dirs[1].pipe = (pipes.downward.read.raw, pipes.downward.write.raw)
        let chunk = 1 << 20

        /// Moves what it can in direction `i` without blocking. False on a fatal error.
        func pump(_ i: Int) -> Bool {
            var d = dirs[i]
            defer { dirs[i] = d }
            while true {
                var progressed = false
                if !d.eof && d.pending < chunk {
                    let n = cl_splice(d.from, d.pipe.write, chunk - d.pending)
                    if n > 0 { d.pending += n; progressed = true }
                    else if n == 0 { d.eof = true; progressed = true }
                    else if errno != EAGAIN && errno != EINTR {
                        result.end = "\(i == 0 ? "client" : "upstream") read: \(SystemError.text(errno))"
                        return false
                    }
                }
                if d.pending > 0 {
                    let n = cl_splice(d.pipe.read, d.to, d.pending)
                    if n > 0 { d.pending -= n; d.moved += UInt64(n); progressed = true }
                    else if n < 0 && errno != EAGAIN && errno != EINTR {
                        result.end = "\(i == 0 ? "upstream" : "client") write: \(SystemError.text(errno))"
                        return false
                    }
                }
                if d.eof && d.pending == 0 && !d.shut {
                    shutdown(d.to, Int32(SHUT_WR))
                    d.shut = true
                }
                if !progressed || d.shut { return true }
            }
        }

        var ok = pump(0) && pump(1)
        while ok && !(dirs[0].shut && dirs[1].shut) {
            var fds = [pollfd](repeating: pollfd(fd: -1, events: 0, revents: 0), count: 3)
            fds[2] = pollfd(fd: stopFd, events: Int16(POLLIN), revents: 0)
            // fds[0] is the client, fds[1] the upstream; each wants POLLIN as a source whose pipe
            // is empty and POLLOUT as a destination with bytes pending. A pipe with bytes in it
            // waits for its destination only: the pipe fills by slots (one per page or fragment),
            // not bytes, so a readable source can stay unspliceable with the pipe well under
            // `chunk` bytes, and polling for it then spins. What the source holds meanwhile
            // stays in its socket buffer, to be moved in one large splice once the pipe drains.
            for (i, d) in dirs.enumerated() {
                let src = i, dst = 1 - i
                fds[src].fd = d.from
                fds[dst].fd = d.to
                if !d.eof && d.pending == 0 { fds[src].events |= Int16(POLLIN) }
                if d.pending > 0 { fds[dst].events |= Int16(POLLOUT) }
            }
            // POLLHUP/POLLERR are reported even for no events: leave out a socket we are not
            // waiting on (a peer that hung up while its pipe is full), or poll would spin. A
            // socket we do wait on shows its error or EOF to splice.
            for k in 0..<2 where fds[k].events == 0 { fds[k].fd = -1 }
            let n = poll(&fds, 3, Int32(min(idle * 1000, Double(Int32.max))))
            if n < 0 {
                if errno == EINTR { continue }
                result.end = "poll: \(SystemError.text(errno))"
                break
            }
            if n == 0 { result.end = "idle timeout"; break }
            if fds[2].revents != 0 { result.end = "engine stopped"; break }
            ok = pump(0) && pump(1)
        }
        result.up = dirs[0].moved
        result.down = dirs[1].moved
        return result
    }
}
