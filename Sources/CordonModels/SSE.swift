import CordonJSON

/// One server-sent event (WHATWG HTML, "Server-sent events", §9.2.6 event stream
/// interpretation).
public struct SSEEvent: Sendable, Equatable {
    /// The `event:` field; nil for the default type ("message"). Anthropic names every event
    /// (`message_start`, `content_block_delta`…); OpenAI-compatible servers name none.
    public var event: String?
    /// The `data:` lines joined with "\n".
    public var data: String
    /// The last event id the stream set (it carries over from event to event).
    public var id: String?
    /// A `retry:` given with this event, in milliseconds.
    public var retry: Int?

    public init(event: String? = nil, data: String, id: String? = nil, retry: Int? = nil) {
        self.event = event
        self.data = data
        self.id = id
        self.retry = retry
    }

    /// The OpenAI stream's end: data starting with `[DONE]` (as openai-python tests it).
    public var isDone: Bool { data.hasPrefix("[DONE]") }
}

/// An incremental event-stream decoder: bytes go in as they arrive, in pieces of any size, split
/// anywhere (inside a line ending, a UTF-8 sequence or the byte order mark), and whole events
/// come out — the same events whatever the split.
///
/// Per the specification: lines end with "\n", "\r\n" or "\r"; a leading byte order mark is
/// skipped; lines starting with ":" are comments (keep-alives) and are skipped; `data` lines are
/// joined with "\n"; a blank line ends an event, and an event without data is no event; an `id`
/// holding NUL is ignored, a `retry` that is not all digits too; unknown fields are ignored; text
/// is decoded as UTF-8 with U+FFFD for ill-formed bytes. One leniency: `finish()` treats the end
/// of the stream as a blank line, so a server that closes after its last event without the final
/// blank line still has it read (a cut event fails later, where its JSON is parsed).
///
/// Bounded: a line longer than `maxLineBytes`, or an event whose data and name pass
/// `maxEventBytes`, throws a `ProviderError` (kind `malformedReply`); the decoder holds at most
/// about those two numbers of bytes. After an error the stream is over.
public struct SSEDecoder: Sendable {
    public let maxLineBytes: Int
    public let maxEventBytes: Int

    private var line: [UInt8] = []
    private var afterCR = false
    private var firstLine = true
    private var data: [UInt8] = []
    private var sawData = false
    private var eventType: String?
    private var lastEventID: String?
    private var retry: Int?

    public init(maxLineBytes: Int = 1 << 20, maxEventBytes: Int = 1 << 20) {
        self.maxLineBytes = maxLineBytes
        self.maxEventBytes = maxEventBytes
    }

    /// Whether bytes of an event not yet ended are held (at the end of a stream: it was cut).
    public var isMidEvent: Bool { !line.isEmpty || sawData || eventType != nil }

    /// The events the bytes complete, in order.
    public mutating func feed(_ bytes: some Collection<UInt8>) throws(ProviderError) -> [SSEEvent] {
        var events: [SSEEvent] = []
        var i = bytes.startIndex
        if afterCR, i < bytes.endIndex {
            afterCR = false
            if bytes[i] == UInt8(ascii: "\n") { i = bytes.index(after: i) }
        }
        while i < bytes.endIndex {
            // The run up to the next line end goes into the line at once.
            var end = i
            while end < bytes.endIndex, bytes[end] != UInt8(ascii: "\n"), bytes[end] != UInt8(ascii: "\r") { end = bytes.index(after: end) }
            if end > i {
                guard line.count + bytes.distance(from: i, to: end) <= maxLineBytes else {
                    throw .malformed(.limit(nil, "a stream line is longer than \(maxLineBytes) bytes"))
                }
                line.append(contentsOf: bytes[i..<end])
            }
            guard end < bytes.endIndex else { break }
            let cr = bytes[end] == UInt8(ascii: "\r")
            i = bytes.index(after: end)
            if cr {
                if i == bytes.endIndex { afterCR = true } else if bytes[i] == UInt8(ascii: "\n") { i = bytes.index(after: i) }
            }
            if let event = try endLine() { events.append(event) }
        }
        return events
    }

    /// The end of the stream: a last line without its line end is read, and an event not yet
    /// ended is ended (see the type's comment).
    public mutating func finish() throws(ProviderError) -> SSEEvent? {
        afterCR = false
        if !line.isEmpty { _ = try endLine() }
        return dispatch()
    }

    private mutating func endLine() throws(ProviderError) -> SSEEvent? {
        defer { line.removeAll(keepingCapacity: true) }
        var start = 0
        if firstLine {
            firstLine = false
            if line.count >= 3, line[0] == 0xEF, line[1] == 0xBB, line[2] == 0xBF { start = 3 }
        }
        if start == line.count { return dispatch() }
        if line[start] == UInt8(ascii: ":") { return nil }
        let colon = line[start...].firstIndex(of: UInt8(ascii: ":"))
        let nameEnd = colon ?? line.count
        var valueStart = colon.map { $0 + 1 } ?? line.count
        if valueStart < line.count, line[valueStart] == UInt8(ascii: " ") { valueStart += 1 }
        let name = line[start..<nameEnd]
        let value = line[valueStart...]
        // Field names compared as bytes: no string is made for a line's name.
        switch name.count {
        case 4 where name.elementsEqual("data".utf8):
            guard data.count + value.count + 1 + (eventType?.utf8.count ?? 0) <= maxEventBytes else {
                throw .malformed(.limit(nil, "a stream event is longer than \(maxEventBytes) bytes"))
            }
            if sawData { data.append(UInt8(ascii: "\n")) }
            data.append(contentsOf: value)
            sawData = true
        case 5 where name.elementsEqual("event".utf8):
            guard data.count + value.count <= maxEventBytes else {
                throw .malformed(.limit(nil, "a stream event is longer than \(maxEventBytes) bytes"))
            }
            eventType = String(decoding: value, as: UTF8.self)
        case 2 where name.elementsEqual("id".utf8):
            if !value.contains(0) { lastEventID = String(decoding: value, as: UTF8.self) }
        case 5 where name.elementsEqual("retry".utf8):
            if !value.isEmpty, value.count <= 9, value.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
                retry = Int(String(decoding: value, as: UTF8.self))
            }
        default:
            break
        }
        return nil
    }

    private mutating func dispatch() -> SSEEvent? {
        defer {
            data.removeAll(keepingCapacity: true)
            sawData = false
            eventType = nil
            retry = nil
        }
        guard sawData else { return nil }
        // An empty type is the default type too.
        return SSEEvent(event: eventType.flatMap { $0.isEmpty ? nil : $0 }, data: String(decoding: data, as: UTF8.self),
                        id: lastEventID, retry: retry)
    }
}

/// Writes events for Cordon's own streaming responses.
public enum SSEEncoder {
    /// `data: <one line of JSON>\n\n`: how every OpenAI chunk goes out. The codec writes JSON on
    /// one line (every control character escaped), so one data line holds it.
    public static func data(_ json: JSON) -> [UInt8] {
        var out: [UInt8] = Array("data: ".utf8)
        out.append(contentsOf: json.text.utf8)
        out.append(contentsOf: [UInt8(ascii: "\n"), UInt8(ascii: "\n")])
        return out
    }

    /// Any event: each line of `data` on a `data:` line of its own; an event name or id loses
    /// the line breaks it must not hold.
    public static func event(data: String, event: String? = nil, id: String? = nil) -> [UInt8] {
        var out: [UInt8] = []
        func oneLine(_ s: String) -> String { String(s.map { $0 == "\n" || $0 == "\r" || $0 == "\r\n" ? " " : $0 }) }
        if let event { out.append(contentsOf: "event: \(oneLine(event))\n".utf8) }
        if let id { out.append(contentsOf: "id: \(oneLine(id).filter { $0 != "\0" })\n".utf8) }
        for line in data.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) {
            out.append(contentsOf: "data: \(line)\n".utf8)
        }
        out.append(UInt8(ascii: "\n"))
        return out
    }

    /// The end of an OpenAI stream.
    public static let done: [UInt8] = Array("data: [DONE]\n\n".utf8)

    /// A comment line, for keep-alives: clients skip it.
    public static func comment(_ text: String = "") -> [UInt8] {
        Array(": \(String(text.map { $0 == "\n" || $0 == "\r" || $0 == "\r\n" ? " " : $0 }))\n\n".utf8)
    }
}
