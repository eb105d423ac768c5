/// The protocol's framing on its own, for any reader — `LineChannel` over a blocking descriptor,
/// cordond's connections on the event loop: messages are lines of at most `maxLine` bytes (a
/// CR before the LF is dropped). A longer line is reported once (`.tooLong`) as soon as the
/// limit is passed and then skipped up to its newline, so memory stays bounded and the next
/// message is read normally.
public struct LineFramer: Sendable {
    public enum Line: Equatable, Sendable {
        case message([UInt8])
        case tooLong
        case eof
    }

    public let maxLine: Int
    /// Bytes received and not yet returned are `buffer[start...]`; `scanned` is how far past
    /// `start` a newline has already been looked for. The consumed prefix is dropped once per
    /// append, not once per line, so many short lines cost linear time.
    private var buffer: [UInt8] = []
    private var start = 0
    private var scanned = 0
    private var discarding = false

    /// Room kept for the next message once one is done; a larger buffer is given back.
    public static let keptCapacity = 1 << 16

    public init(maxLine: Int) {
        self.maxLine = maxLine
    }

    /// True when no byte is waiting (no partial line held).
    public var isEmpty: Bool { start == buffer.count }

    /// The room held, for tests: an idle connection must not keep a large message's buffer.
    public var capacity: Int { buffer.capacity }

    /// Adds received bytes.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if start == buffer.count {
            // Everything was consumed: start over, and let a large message's room go.
            if buffer.capacity > Self.keptCapacity { buffer = [] } else { buffer.removeAll(keepingCapacity: true) }
            start = 0
        } else if start > 0 {
            buffer.removeSubrange(..<start)
            start = 0
        }
        if discarding {
            // Inside an over-long line: keep nothing before its newline.
            guard let newline = bytes.firstIndex(of: 0x0A) else { return }
            discarding = false
            buffer.append(contentsOf: bytes[(newline + 1)...])
            scanned = 0
            return
        }
        buffer.append(contentsOf: bytes)
    }

    public mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    /// The next whole line (its CR LF or LF removed), `.tooLong` once for an over-long one, or nil
    /// when more bytes are needed. Never `.eof`: the end of the stream is the reader's to report.
    public mutating func next() -> Line? {
        if let newline = buffer[(start + scanned)...].firstIndex(of: 0x0A) {
            let line = buffer[start..<newline]
            start = newline + 1
            scanned = 0
            if line.count > maxLine { return .tooLong }
            let message = Array(line.last == 0x0D ? line.dropLast() : line)
            if isEmpty && buffer.capacity > Self.keptCapacity {
                // A large message is done with: an idle connection does not keep its room.
                buffer = []
                start = 0
            }
            return .message(message)
        }
        scanned = buffer.count - start
        if scanned > maxLine {
            // Over the limit before its end: reported now, the rest skipped as it arrives.
            buffer.removeAll(keepingCapacity: buffer.capacity <= Self.keptCapacity)
            start = 0
            scanned = 0
            discarding = true
            return .tooLong
        }
        return nil
    }
}
