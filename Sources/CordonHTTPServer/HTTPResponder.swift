import CordonHTTP
import CordonJSON
import Synchronization

/// The answer to one request, from any thread and at any time: whole with `respond`, or
/// streamed with `start`, `write`… and `finish`. One thread at a time per responder (calls
/// from several are serialised).
///
/// Framing is the engine's: `respond` sends Content-Length; `start` sends
/// `Transfer-Encoding: chunked` (each `write` one chunk, `finish` the last), or the raw bytes
/// when the handler gave a Content-Length, or (HTTP/1.0 clients) the bytes until the
/// connection closes. A handler's Transfer-Encoding, Connection and Keep-Alive headers are
/// dropped, as is any header with a name that is not a token or a value with control
/// characters. For server-sent events pass `Content-Type: text/event-stream` and write each
/// event ("data: …\n\n") as it comes.
///
/// Backpressure: `write` and `respond` return once their bytes are queued; while more than
/// `highWater` bytes are unsent (the client is not reading) they first block the calling
/// thread, for up to `sendSeconds`: then the connection is closed and they return false. They
/// also return false once the client is gone; `onClose` then fires (once), so the caller can
/// cancel the upstream call. On the server's loop thread they never block.
///
/// A responder dropped before `respond` answers 500; one dropped after `start` but before
/// `finish` closes the connection (the client sees a truncated response, not a complete one).
public final class HTTPResponder: @unchecked Sendable {
    private let connection: HTTPConnection
    private let isHead: Bool
    private let version: HTTPRequest.Version
    private let requestKeepAlive: Bool
    private let server: HTTPServer
    /// Decided when the head is written: the request allows it and the server is not stopping.
    private var keepAlive: Bool { requestKeepAlive && !server.stopping }

    private enum Framing {
        case chunked
        case length(remaining: Int)
        case untilClose
        /// HEAD, 1xx, 204, 304: no body is sent.
        case none
    }

    private enum Phase {
        case fresh
        case streaming(Framing)
        case done
    }

    private let phase = Mutex<Phase>(.fresh)

    init(connection: HTTPConnection, request: HTTPRequest, server: HTTPServer) {
        self.connection = connection
        self.server = server
        isHead = request.method == "HEAD"
        version = request.version
        requestKeepAlive = request.keepAlive
    }

    deinit {
        let left = phase.withLock { $0 }
        switch left {
        case .fresh:
            send(status: 500, headers: [], body: HTTPResponse.errorBody("the handler gave no response"))
        case .streaming:
            connection.abort()
        case .done:
            break
        }
    }

    /// False once the client is gone (or the connection was closed for another reason).
    public var isOpen: Bool { connection.isOpen }

    /// Runs `body` (once, on whichever thread closes the connection) if the connection closes
    /// before this response is finished — at once if it already has. A later call replaces an
    /// earlier one.
    public func onClose(_ body: @escaping @Sendable () -> Void) { connection.onClose(body) }

    /// The whole response, with Content-Length. False when the client is gone or not reading.
    @discardableResult
    public func respond(status: Int, headers: [HTTPHeader] = [], body: [UInt8] = []) -> Bool {
        phase.withLock { p in
            guard case .fresh = p else { preconditionFailure("HTTPResponder.respond: a response was already begun") }
            p = .done
            return send(status: status, headers: headers, body: body)
        }
    }

    /// An OpenAI-shaped error (`{"error":{"message":…,"type":"invalid_request_error"}}`, or
    /// `type` as given) as the whole response.
    @discardableResult
    public func respond(status: Int, error message: String, type: String = "invalid_request_error") -> Bool {
        respond(status: status, headers: [HTTPHeader(name: "Content-Type", value: "application/json")],
                body: HTTPResponse.errorBody(message, type: type))
    }

    /// Sends the status and headers of a streamed response. False when the client is gone.
    @discardableResult
    public func start(status: Int, headers: [HTTPHeader] = []) -> Bool {
        phase.withLock { p in
            guard case .fresh = p else { preconditionFailure("HTTPResponder.start: a response was already begun") }
            let declared = headers.first("content-length").flatMap { Int($0) }
            let framing: Framing
            var head: [UInt8]
            if isHead || !HTTPResponse.hasBody(status) {
                framing = .none
                head = HTTPResponse.head(status: status, headers: headers, length: isHead ? declared : nil, chunked: false,
                                         connection: connectionHeader(closing: !keepAlive))
            } else if let declared, declared >= 0 {
                framing = .length(remaining: declared)
                head = HTTPResponse.head(status: status, headers: headers, length: declared, chunked: false,
                                         connection: connectionHeader(closing: !keepAlive))
            } else if version == .http11 {
                framing = .chunked
                head = HTTPResponse.head(status: status, headers: headers, length: nil, chunked: true,
                                         connection: connectionHeader(closing: !keepAlive))
            } else {
                framing = .untilClose
                head = HTTPResponse.head(status: status, headers: headers, length: nil, chunked: false,
                                         connection: connectionHeader(closing: true))
            }
            p = .streaming(framing)
            head.reserveCapacity(head.count)
            return connection.enqueue(head, wait: true)
        }
    }

    /// Sends `bytes` of a streamed response (one chunk when chunked; nothing for an empty
    /// array). False when the client is gone or not reading, or past a declared
    /// Content-Length.
    @discardableResult
    public func write(_ bytes: [UInt8]) -> Bool { write(bytes, waiting: true) }

    /// As `write`, but never waits: false (nothing queued) while more than `highWater` bytes
    /// are unsent. For a stream fed from a thread others share.
    @discardableResult
    public func writeWithoutWaiting(_ bytes: [UInt8]) -> Bool { write(bytes, waiting: false) }

    private func write(_ bytes: [UInt8], waiting: Bool) -> Bool {
        let mode: HTTPConnection.Wait = waiting ? .wait : .failWhenFull
        return phase.withLock { p in
            guard case .streaming(let framing) = p else { preconditionFailure("HTTPResponder.write: no response started") }
            if bytes.isEmpty { return connection.isOpen }
            switch framing {
            case .none:
                return connection.isOpen
            case .untilClose:
                return connection.enqueue(bytes, mode)
            case .length(let remaining):
                guard bytes.count <= remaining else { return false }
                p = .streaming(.length(remaining: remaining - bytes.count))
                return connection.enqueue(bytes, mode)
            case .chunked:
                var chunk = Array(String(bytes.count, radix: 16).utf8) + [13, 10]
                chunk.reserveCapacity(chunk.count + bytes.count + 2)
                chunk += bytes
                chunk += [13, 10]
                return connection.enqueue(chunk, mode)
            }
        }
    }

    /// Ends a streamed response; the connection then takes the next request (or closes).
    /// False when the client is gone (or a declared Content-Length was not met: the
    /// connection is then closed).
    @discardableResult
    public func finish() -> Bool { finish(waiting: true) }

    /// As `finish`, but never waits: a client that has not read what was sent before has its
    /// connection closed instead (the response cannot be ended properly without waiting).
    @discardableResult
    public func finishWithoutWaiting() -> Bool { finish(waiting: false) }

    private func finish(waiting: Bool) -> Bool {
        phase.withLock { p in
            guard case .streaming(let framing) = p else { preconditionFailure("HTTPResponder.finish: no response started") }
            p = .done
            switch framing {
            case .none:
                connection.responseFinished(closeAfter: !keepAlive)
                return connection.isOpen
            case .untilClose:
                connection.responseFinished(closeAfter: true)
                return connection.isOpen
            case .length(let remaining):
                guard remaining == 0 else {
                    connection.abort()
                    return false
                }
                connection.responseFinished(closeAfter: !keepAlive)
                return connection.isOpen
            case .chunked:
                let ok = connection.enqueue(Array("0\r\n\r\n".utf8), waiting ? .wait : .failWhenFull, completing: keepAlive)
                if !ok && !waiting {
                    connection.abort()
                    return false
                }
                connection.responseFinished(closeAfter: !keepAlive)
                return ok
            }
        }
    }

    // MARK: Internal

    private func connectionHeader(closing: Bool) -> String? {
        if closing { return "close" }
        return version == .http10 ? "keep-alive" : nil
    }

    /// A whole response (the caller has set the phase).
    @discardableResult
    private func send(status: Int, headers: [HTTPHeader], body: [UInt8]) -> Bool {
        let withBody = HTTPResponse.hasBody(status)
        var bytes = HTTPResponse.head(status: status, headers: headers, length: withBody ? body.count : nil, chunked: false,
                                      connection: connectionHeader(closing: !keepAlive))
        if withBody && !isHead { bytes += body }
        let ok = connection.enqueue(bytes, wait: true, completing: keepAlive)
        connection.responseFinished(closeAfter: !keepAlive)
        return ok
    }
}

/// Response heads and the engine's own error responses.
enum HTTPResponse {
    /// Headers the engine writes itself.
    private static let owned: Set<String> = ["content-length", "transfer-encoding", "connection", "keep-alive"]

    static func hasBody(_ status: Int) -> Bool { status >= 200 && status != 204 && status != 304 }

    static func head(status: Int, headers: [HTTPHeader], length: Int?, chunked: Bool, connection: String?) -> [UInt8] {
        var text = "HTTP/1.1 \(status) \(reason(status))\r\n"
        for header in headers where acceptable(header) && !owned.contains(header.name.lowercased()) {
            text += "\(header.name): \(header.value)\r\n"
        }
        if let length { text += "Content-Length: \(length)\r\n" }
        if chunked { text += "Transfer-Encoding: chunked\r\n" }
        if let connection { text += "Connection: \(connection)\r\n" }
        text += "\r\n"
        return Array(text.utf8)
    }

    private static func acceptable(_ header: HTTPHeader) -> Bool {
        !header.name.isEmpty && header.name.utf8.allSatisfy(HTTPHeadParser.isTokenByte)
            && header.value.utf8.allSatisfy { ($0 >= 0x20 && $0 != 0x7f) || $0 == 0x09 }
    }

    /// `{"error":{"message":…,"type":…,"param":null,"code":null}}`, as OpenAI's API answers.
    static func errorBody(_ message: String, type: String = "invalid_request_error") -> [UInt8] {
        let error = JSON.object([("message", .string(message)), ("type", .string(type)), ("param", .null), ("code", .null)])
        return Array(JSON.object([("error", error)]).text.utf8)
    }

    /// A whole error response with a JSON body.
    static func error(status: Int, _ message: String, close: Bool) -> [UInt8] {
        let body = errorBody(message)
        return head(status: status, headers: [HTTPHeader(name: "Content-Type", value: "application/json")], length: body.count,
                    chunked: false, connection: close ? "close" : nil) + body
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 304: return "Not Modified"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 413: return "Content Too Large"
        case 415: return "Unsupported Media Type"
        case 422: return "Unprocessable Content"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        default: return "Status"
        }
    }
}
