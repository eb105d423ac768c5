import CLinux
import CordonSystem
#if canImport(Glibc)
import Glibc
#endif

/// One connection's framing over a blocking descriptor (the rules are `LineFramer`'s).
public final class LineChannel {
    public typealias Line = LineFramer.Line

    public let fd: Int32
    public var maxLine: Int { framer.maxLine }
    private var framer: LineFramer

    /// How long one message may take to send in all.
    public var sendSeconds = 60.0

    public init(fd: Int32, maxLine: Int) {
        self.fd = fd
        framer = LineFramer(maxLine: maxLine)
    }

    /// Blocks until a whole line, an over-long one, or the end of the stream (or a read or poll
    /// error; a socket's receive timeout does not apply: use `deadline`). With a `deadline` (CLOCK_MONOTONIC seconds), a line that
    /// has not arrived whole by then ends the stream too: the limit is per line, not per read,
    /// so a peer sending a byte now and then cannot hold the connection.
    public func readLine(deadline: Double? = nil) -> Line {
        // Not zeroed first: only what read() wrote is ever looked at.
        var chunk = [UInt8](unsafeUninitializedCapacity: 65536) { _, count in count = 65536 }
        while true {
            if let line = framer.next() { return line }
            // Waits in poll() for input, not in read(): a blocked read() sleeps on the socket's
            // queue unkeyed, so the peer reading what this side sent (freeing send space) wakes
            // it for nothing — a wake-up on the peer's path for every message.
            var wait: Int32 = -1
            if let deadline {
                let left = deadline - MonotonicClock.now
                guard left > 0 else { return .eof }
                wait = Int32(min(left * 1000 + 1, Double(Int32.max)))
            }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, wait)
            if ready < 0 && errno == EINTR { continue }
            if ready == 0 { continue }  // the deadline check above ends it
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return .eof }
            chunk.withUnsafeBytes { framer.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
    }

    /// Writes `text` and a newline; false when the peer is gone, a send timeout passed, or the
    /// whole message took longer than `sendSeconds` (a peer reading a byte now and then must
    /// not hold the writer: each send() is bounded by the socket's timeout, the message by this).
    @discardableResult
    public func send(_ text: String) -> Bool {
        var bytes = Array(text.utf8)
        bytes.append(0x0A)
        var offset = 0
        let deadline = MonotonicClock.now + sendSeconds
        while offset < bytes.count {
            if offset > 0 && MonotonicClock.now > deadline { return false }
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }
}
