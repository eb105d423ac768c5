/// The bounds a server reads requests under.
public struct HTTPRequestLimits: Equatable, Sendable {
    /// Bytes of a head, request line to the empty line (over it: 431).
    public var maxHead: Int
    /// Header lines in a head (over it: 431).
    public var maxHeaders: Int
    /// Bytes of a body, as declared by Content-Length or as decoded from chunks (over it: 413).
    public var maxBody: Int

    public init(maxHead: Int = 16 * 1024, maxHeaders: Int = 100, maxBody: Int = 8 << 20) {
        self.maxHead = maxHead
        self.maxHeaders = maxHeaders
        self.maxBody = maxBody
    }
}

/// One whole request: its head and its body, de-chunked.
public struct HTTPRequest: Equatable, Sendable {
    public enum Version: Equatable, Sendable {
        case http10, http11
    }

    public let method: String
    /// The target as sent in origin form ("/v1/models?x=1"); an absolute-form target
    /// ("http://host/v1/models") is given as its path, "*" as "*".
    public let target: String
    public let version: Version
    /// In the order sent; look one up with `headers.first("content-type")`.
    public let headers: [HTTPHeader]
    public let body: [UInt8]
    /// Whether the connection may carry another request after this one's response: HTTP/1.1
    /// unless `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
    public let keepAlive: Bool

    /// The target up to "?".
    public var path: String { target.firstIndex(of: "?").map { String(target[..<$0]) } ?? target }
    /// What follows "?" in the target, if anything does.
    public var query: String? { target.firstIndex(of: "?").map { String(target[target.index(after: $0)...]) } }

    /// The first value of header `name` (any case).
    public func header(_ name: String) -> String? { headers.first(name) }

    public init(method: String, target: String, version: Version, headers: [HTTPHeader], body: [UInt8], keepAlive: Bool) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body
        self.keepAlive = keepAlive
    }
}

/// A request refused while it was read: the status to answer with, and why. The connection
/// cannot be read any further (where the next request would start is unknown), so it closes.
public struct HTTPRequestError: Error, Equatable, Sendable, CustomStringConvertible {
    /// 400, 413, 431 or 505.
    public let status: Int
    public let message: String

    public init(status: Int, _ message: String) {
        self.status = status
        self.message = message
    }

    public var description: String { "\(status): \(message)" }
}

/// Reads requests from a connection's bytes, as they arrive in pieces of any size: the head
/// with `HTTPHeadParser` (ASCII only, at most `maxHeaders` lines), then the body by
/// Content-Length or `Transfer-Encoding: chunked`, each bounded by `maxBody`. Requests that
/// arrive together (pipelining) are queued and taken in order with `next()`.
///
/// Refused (and nothing read after): both Content-Length and Transfer-Encoding; a
/// Transfer-Encoding other than exactly `chunked`, or any in HTTP/1.0; Content-Length values
/// that disagree or are not decimal digits; chunk lines that are not hex, too long, or not
/// ended by CRLF; a chunk's data not followed by CRLF; CONNECT (this is no proxy).
public struct HTTPRequestReader: Sendable {
    public enum Next: Equatable, Sendable {
        case request(HTTPRequest)
        case failed(HTTPRequestError)
        case needMore
    }

    public let limits: HTTPRequestLimits
    /// Longest chunk-size line (size, extensions) and trailer line.
    static let maxChunkLine = 1024

    private enum State {
        case head(HTTPHeadParser, fed: Int)
        /// Content-Length: bytes still to come.
        case body(Pending, remaining: Int)
        case chunked(Pending, ChunkState)
        case failed
    }

    private enum ChunkState {
        /// Reading a chunk-size line.
        case sizeLine
        case data(remaining: Int)
        /// The CRLF after a chunk's data.
        case dataEnd
        /// Trailer lines after the last chunk, until an empty one.
        case trailers(lines: Int)
    }

    /// A request whose head is read and whose body is on its way.
    private struct Pending {
        var request: HTTPRequest
        var body: [UInt8]
        var expectsContinue: Bool
        var wireBytes = 0
    }

    private var state: State
    private var queue: [Next] = []
    private var queuedBytes = 0
    /// The bytes of a chunk line or trailer line read so far.
    private var line: [UInt8] = []
    private var continueSent = false
    private var failure: HTTPRequestError?

    public init(limits: HTTPRequestLimits = HTTPRequestLimits()) {
        self.limits = limits
        state = .head(Self.headParser(limits), fed: 0)
    }

    private static func headParser(_ limits: HTTPRequestLimits) -> HTTPHeadParser {
        HTTPHeadParser(limit: limits.maxHead, maxHeaders: limits.maxHeaders, asciiOnly: true)
    }

    // MARK: Reading

    /// Reads `bytes` as far as they go. After a failure nothing more is read.
    public mutating func append(_ bytes: some Collection<UInt8>) {
        var rest = Array(bytes)[...]
        while !rest.isEmpty {
            switch state {
            case .failed:
                return
            case .head(var parser, let fed):
                let outcome = parser.feed(rest)
                switch outcome {
                case .needMore:
                    state = .head(parser, fed: fed + rest.count)
                    return
                case .invalid(let message):
                    let status: Int
                    switch parser.rejection ?? .malformed {
                    case .tooLarge, .tooManyHeaders: status = 431
                    case .unsupportedVersion: status = 505
                    case .malformed: status = 400
                    }
                    fail(HTTPRequestError(status: status, message))
                    return
                case .head(let head):
                    rest = rest.suffix(head.bytesAfterHead)
                    begin(head)
                }
            case .body(var pending, let remaining):
                let n = min(remaining, rest.count)
                pending.body += rest.prefix(n)
                rest = rest.dropFirst(n)
                if remaining == n { complete(pending) } else { state = .body(pending, remaining: remaining - n) }
            case .chunked(var pending, let chunk):
                state = .failed  // while `pending` is out of the enum (no copy of the body)
                let before = rest.count
                let next = readChunked(&pending, chunk, &rest)
                pending.wireBytes += before - rest.count
                if case .failure(let error) = next {
                    fail(error)
                    return
                }
                if pending.wireBytes > 4 * limits.maxBody + 65536 {
                    fail(HTTPRequestError(status: 413, "chunked body encoding longer than \(4 * limits.maxBody + 65536) bytes"))
                    return
                }
                if case .success(let chunkState?) = next { state = .chunked(pending, chunkState) } else { complete(pending) }
            }
        }
    }

    /// The next request read in full, in the order they came; `.failed` is the last thing
    /// ever returned once it is.
    public mutating func next() -> Next {
        guard !queue.isEmpty else { return failure.map { .failed($0) } ?? .needMore }
        let first = queue.removeFirst()
        if case .request(let r) = first { queuedBytes -= r.body.count }
        return first
    }

    /// True when bytes of a request that is not yet whole have been read (the server's
    /// request deadline runs from the first of them), or whole requests wait in the queue.
    public var hasRequestBytes: Bool {
        if !queue.isEmpty { return true }
        switch state {
        case .head(_, let fed): return fed > 0
        case .body, .chunked: return true
        case .failed: return false
        }
    }

    /// True once a request was refused: nothing more is read (a server stops reading).
    public var hasFailed: Bool { failure != nil }

    /// Bytes held: queued requests' bodies and the body being read (the server stops reading
    /// ahead while a request is in flight and this is large).
    public var bufferedBytes: Int {
        switch state {
        case .head(_, let fed): return queuedBytes + fed
        case .body(let p, _), .chunked(let p, _): return queuedBytes + p.body.count
        case .failed: return queuedBytes
        }
    }

    /// True when the request being read asked for `Expect: 100-continue`, its body has not
    /// all come, nothing is queued before it, and `continueSent()` was not called for it: the
    /// server should send "HTTP/1.1 100 Continue" now.
    public var awaitsContinue: Bool {
        guard queue.isEmpty, !continueSent else { return false }
        switch state {
        case .body(let p, _), .chunked(let p, _): return p.expectsContinue
        default: return false
        }
    }

    /// The server sent 100 Continue for the request being read.
    public mutating func sentContinue() { continueSent = true }

    // MARK: Steps

    private mutating func fail(_ error: HTTPRequestError) {
        state = .failed
        failure = error
        queue.append(.failed(error))
    }

    private mutating func complete(_ pending: Pending) {
        let r = pending.request
        let request = HTTPRequest(method: r.method, target: r.target, version: r.version, headers: r.headers, body: pending.body,
                                  keepAlive: r.keepAlive)
        queue.append(.request(request))
        queuedBytes += request.body.count
        state = .head(Self.headParser(limits), fed: 0)
        continueSent = false
    }

    /// Decides how the body is framed, from a head just read.
    private mutating func begin(_ head: HTTPRequestHead) {
        let version: HTTPRequest.Version = head.version == "HTTP/1.0" ? .http10 : .http11
        let target: String
        switch head.target {
        case .origin(let t): target = t
        case .absolute(_, let path): target = path
        case .asterisk: target = "*"
        case .authority: fail(HTTPRequestError(status: 400, "CONNECT is not served here")); return
        }
        let connection = Self.tokens(head.headers.all("connection"))
        let keepAlive = version == .http11 ? !connection.contains("close") : connection.contains("keep-alive")
        let expects = version == .http11 && head.headers.all("expect").contains { $0.lowercased() == "100-continue" }
        let request = HTTPRequest(method: head.method, target: target, version: version, headers: head.headers, body: [], keepAlive: keepAlive)
        let pending = Pending(request: request, body: [], expectsContinue: expects)

        let encodings = head.headers.all("transfer-encoding")
        let lengths = head.headers.all("content-length")
        if !encodings.isEmpty {
            guard lengths.isEmpty else { return fail(HTTPRequestError(status: 400, "both Content-Length and Transfer-Encoding")) }
            guard version == .http11 else { return fail(HTTPRequestError(status: 400, "Transfer-Encoding in an HTTP/1.0 request")) }
            guard Self.tokens(encodings) == ["chunked"] else {
                return fail(HTTPRequestError(status: 400, "Transfer-Encoding other than chunked: \(encodings.joined(separator: ", "))"))
            }
            state = .chunked(pending, .sizeLine)
            return
        }
        var length = 0
        if !lengths.isEmpty {
            // Repeated values (in lines or a list) must all be the same number.
            var values = Set<String>()
            for value in lengths {
                for part in value.split(separator: ",", omittingEmptySubsequences: false) {
                    values.insert(part.trimmingSpaces)
                }
            }
            guard values.count == 1, let text = values.first, (1...19).contains(text.utf8.count),
                  text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let n = Int(text) else {
                return fail(HTTPRequestError(status: 400, "bad Content-Length: \(lengths.joined(separator: ", "))"))
            }
            length = n
        }
        if length > limits.maxBody {
            return fail(HTTPRequestError(status: 413, "body of \(length) bytes is over the limit of \(limits.maxBody)"))
        }
        if length == 0 { complete(pending) } else { state = .body(pending, remaining: length) }
    }

    /// Reads chunked framing from `rest`: the next chunk state, nil once the body ended.
    private mutating func readChunked(_ pending: inout Pending, _ start: ChunkState,
                                      _ rest: inout ArraySlice<UInt8>) -> Result<ChunkState?, HTTPRequestError> {
        var chunk = start
        while !rest.isEmpty {
            switch chunk {
            case .data(let remaining):
                let n = min(remaining, rest.count)
                pending.body += rest.prefix(n)
                rest = rest.dropFirst(n)
                chunk = remaining == n ? .dataEnd : .data(remaining: remaining - n)
            case .dataEnd, .sizeLine, .trailers:
                if case .dataEnd = chunk, line.isEmpty, rest.first != UInt8(ascii: "\r") {
                    return .failure(HTTPRequestError(status: 400, "chunk data not followed by CRLF"))
                }
                switch takeLine(&rest) {
                case .failure(let e): return .failure(e)
                case .success(nil): return .success(chunk)
                case .success(let text?):
                    switch chunk {
                    case .dataEnd:
                        guard text.isEmpty else { return .failure(HTTPRequestError(status: 400, "chunk data not followed by CRLF")) }
                        chunk = .sizeLine
                    case .sizeLine:
                        let sizeEnd = text.firstIndex(of: UInt8(ascii: ";")) ?? text.endIndex
                        var digits = text[..<sizeEnd]
                        while let l = digits.last, l == 0x20 || l == 0x09 { digits = digits.dropLast() }
                        guard (1...16).contains(digits.count), let size = Int(String(decoding: digits, as: UTF8.self), radix: 16),
                              digits.allSatisfy({ Self.isHexDigit($0) }) else {
                            return .failure(HTTPRequestError(status: 400, "bad chunk size line"))
                        }
                        if size > limits.maxBody - pending.body.count {
                            return .failure(HTTPRequestError(status: 413, "chunked body over the limit of \(limits.maxBody) bytes"))
                        }
                        chunk = size == 0 ? .trailers(lines: 0) : .data(remaining: size)
                    case .trailers(let lines):
                        if text.isEmpty { return .success(nil) }
                        guard lines < limits.maxHeaders else { return .failure(HTTPRequestError(status: 431, "more than \(limits.maxHeaders) trailer lines")) }
                        guard let colon = text.firstIndex(of: UInt8(ascii: ":")), colon > text.startIndex,
                              text[..<colon].allSatisfy(HTTPHeadParser.isTokenByte),
                              text.allSatisfy({ ($0 >= 0x20 && $0 < 0x7f) || $0 == 0x09 }) else {
                            return .failure(HTTPRequestError(status: 400, "bad trailer line"))
                        }
                        chunk = .trailers(lines: lines + 1)  // trailers are read and dropped
                    case .data:
                        preconditionFailure("unreachable")
                    }
                }
            }
        }
        return .success(chunk)
    }

    /// A line ended by CRLF, without it; nil when it has not all come (its start is kept).
    private mutating func takeLine(_ rest: inout ArraySlice<UInt8>) -> Result<[UInt8]?, HTTPRequestError> {
        while let b = rest.first {
            rest = rest.dropFirst()
            if line.last == UInt8(ascii: "\r") {
                guard b == UInt8(ascii: "\n") else { return .failure(HTTPRequestError(status: 400, "bare CR in chunked framing")) }
                let text = Array(line.dropLast())
                line = []
                return .success(text)
            }
            if b == UInt8(ascii: "\n") { return .failure(HTTPRequestError(status: 400, "bare LF in chunked framing")) }
            if b == 0 || b >= 0x80 { return .failure(HTTPRequestError(status: 400, "NUL or non-ASCII byte in chunked framing")) }
            line.append(b)
            if line.count > Self.maxChunkLine { return .failure(HTTPRequestError(status: 400, "chunk line longer than \(Self.maxChunkLine) bytes")) }
        }
        return .success(nil)
    }

    private static func isHexDigit(_ b: UInt8) -> Bool {
        (b >= 48 && b <= 57) || (b >= 65 && b <= 70) || (b >= 97 && b <= 102)
    }

    /// Comma-separated tokens of header values, trimmed and lowercased.
    static func tokens(_ values: [String]) -> [String] {
        values.flatMap { $0.split(separator: ",") }.map { $0.trimmingSpaces.lowercased() }.filter { !$0.isEmpty }
    }
}

extension Substring {
    fileprivate var trimmingSpaces: String {
        var s = self[...]
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
