import CordonJSON

/// Why a call to a provider failed, classified for what the gateway does next. Both wires
/// (OpenAI-compatible and Anthropic) and the transport report failures as this type, so the
/// breaker, the retry loop and the fallbacks read one classification.
///
/// Three outcomes, from two flags:
/// - `isRetryable`: the same call may succeed later (429, 5xx, 529, a connection that failed or
///   timed out, a reply Cordon could not read), after `retryAfter` when the provider said how long;
/// - `blamesRequest`: the provider refused the request as written (400, 413, 422): the client gets
///   the refusal; no fallback, and the model is not blamed;
/// - neither: this provider cannot serve now (401, 403, 404, an exhausted quota): fall back, count
///   it against the model, do not retry it.
///
/// A provider's message is kept short and stripped of control characters; for a refused key it is
/// never kept at all (OpenAI's 401 echoes part of the key).
public struct ProviderError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        /// 429: this key's or organization's rate limit (not a sign the model is down).
        case rateLimited = "rate limited"
        /// 503, 529, Anthropic's `overloaded_error`: the provider is shedding load.
        case overloaded
        /// Another 5xx, or an in-stream error of no known type.
        case serverError = "server error"
        /// The connection could not be made, or broke before the reply was complete.
        case connection = "connection failed"
        /// The call's deadline or the stream's idle limit passed; also 408 and 504.
        case timeout = "timed out"
        /// 400, 413, 422: the request was refused as written.
        case badRequest = "bad request"
        /// 401: the provider refused Cordon's key.
        case authentication = "key refused"
        /// 403.
        case permission = "permission denied"
        /// 404: no such model or endpoint at the provider.
        case notFound = "not found"
        /// 402, OpenAI's `insufficient_quota`, Anthropic's `billing_error`: will not clear by
        /// retrying.
        case quotaExhausted = "quota exhausted"
        /// A reply (status 2xx) Cordon could not read under its limits: not JSON, a wrong type, a
        /// missing member, too large.
        case malformedReply = "malformed reply"
        /// Any other status.
        case unexpectedStatus = "unexpected status"
    }

    public var kind: Kind
    /// The HTTP status, when the provider answered with one.
    public var status: Int?
    /// What went wrong, in the provider's words (short) or Cordon's.
    public var message: String
    /// For a malformed reply: where in it (`choices[0].message.tool_calls[1].function`).
    public var field: String?
    /// How long the provider asked to be left alone (`retry-after-ms`, `retry-after`).
    public var retryAfter: Duration?
    /// The provider's `error.type` and `error.code`, when given (`overloaded_error`,
    /// `insufficient_quota`).
    public var providerType: String?
    public var providerCode: String?
    /// The provider's `x-should-retry` header, which overrides the status rule (both official
    /// SDKs obey it).
    public var shouldRetryHint: Bool?

    public init(_ kind: Kind, _ message: String, status: Int? = nil, field: String? = nil, retryAfter: Duration? = nil,
                providerType: String? = nil, providerCode: String? = nil) {
        self.kind = kind
        self.message = message
        self.status = status
        self.field = field
        self.retryAfter = retryAfter
        self.providerType = providerType
        self.providerCode = providerCode
    }

    public var isRetryable: Bool {
        if let shouldRetryHint, status != nil { return shouldRetryHint }
        switch kind {
        case .rateLimited, .overloaded, .serverError, .connection, .timeout, .malformedReply: return true
        case .badRequest, .authentication, .permission, .notFound, .quotaExhausted, .unexpectedStatus: return false
        }
    }

    public var blamesRequest: Bool { kind == .badRequest }

    public var description: String {
        var s = status.map { "\(kind.rawValue) (HTTP \($0))" } ?? kind.rawValue
        if let field { s += ": \(field)" }
        if !message.isEmpty { s += ": \(message)" }
        return s
    }

    // MARK: As JSON

    /// The failure as the model worker sends it to cordond (its JSON-RPC error's `data`):
    /// `{"kind","status","message","field","retryAfterMs","providerType","providerCode","shouldRetry"}`,
    /// `kind` being `Kind`'s raw value, `shouldRetry` the provider's `x-should-retry` hint, and
    /// every value absent here null.
    public var json: JSON {
        func string(_ s: String?) -> JSON { s.map(JSON.string) ?? .null }
        return .object([
            ("kind", .string(kind.rawValue)), ("status", status.map { .int(Int64($0)) } ?? .null), ("message", .string(message)),
            ("field", string(field)),
            ("retryAfterMs", retryAfter.map { .int($0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000) } ?? .null),
            ("providerType", string(providerType)), ("providerCode", string(providerCode)),
            ("shouldRetry", shouldRetryHint.map(JSON.bool) ?? .null),
        ])
    }

    /// Reads `json`'s form back (cordond reading its worker's answer). The worker is sandboxed
    /// but parses untrusted replies, so what it says is read under limits too: a member of the
    /// wrong type or out of range is a failure of kind `malformedReply` naming it; members not
    /// listed are let by; the texts are cleaned and cut as a provider's are.
    public init(json: JSON) throws(ProviderError) {
        guard case .object = json else { throw ProviderError(.malformedReply, "a provider error must be an object") }
        func bad(_ key: String, _ why: String) -> ProviderError { ProviderError(.malformedReply, why, field: "data.\(key)") }
        func text(_ key: String, maxBytes: Int) throws(ProviderError) -> String? {
            switch json[key] {
            case nil, .null?: return nil
            case .string(let s)?: return Self.clean(s, maxBytes: maxBytes)
            case let other?: throw bad(key, "expected a string, got \(other.typeName)")
            }
        }
        func integer(_ key: String, max: Int64) throws(ProviderError) -> Int64? {
            switch json[key] {
            case nil, .null?: return nil
            case .int(let n)? where n >= 0 && n <= max: return n
            default: throw bad(key, "expected an integer in 0…\(max)")
            }
        }
        guard let name = try text("kind", maxBytes: 64), let kind = Kind(rawValue: name) else { throw bad("kind", "not a kind of provider error") }
        self.init(kind, try text("message", maxBytes: 4 * Self.maxMessageBytes) ?? "")
        status = try integer("status", max: 999).map { Int($0) }
        field = try text("field", maxBytes: 1_024)
        retryAfter = try integer("retryAfterMs", max: 7 * 86_400_000).map { .milliseconds($0) }
        providerType = try text("providerType", maxBytes: 64)
        providerCode = try text("providerCode", maxBytes: 64)
        switch json["shouldRetry"] {
        case nil, .null?: shouldRetryHint = nil
        case .bool(let b)?: shouldRetryHint = b
        default: throw bad("shouldRetry", "expected true, false or null")
        }
    }

    // MARK: Cordon's constructors

    public static func connection(_ message: String) -> ProviderError { ProviderError(.connection, clean(message)) }
    public static func timeout(_ message: String) -> ProviderError { ProviderError(.timeout, clean(message)) }
    static func malformed(_ fault: WireFault) -> ProviderError {
        if let body = fault.providerBody { return fromStream(body) }
        return ProviderError(.malformedReply, fault.message, field: fault.field)
    }

    // MARK: Reading a provider's failure

    /// Longest error body read; a longer one is classified by its status alone.
    static let maxErrorBodyBytes = 64 << 10
    /// Longest provider message kept.
    public static let maxMessageBytes = 512

    /// A reply whose status is not 2xx. `headers` are the response's (names in any case); `now`
    /// (Unix seconds) lets a `retry-after` given as a date count, and without it only seconds do.
    /// The body may be any of the shapes providers send: OpenAI's `{"error":{message,type,code}}`,
    /// Anthropic's `{"type":"error","error":{type,message}}`, Ollama's `{"error":"…"}`, or not
    /// JSON at all (a proxy's HTML page).
    public static func fromHTTP(status: Int, headers: [(name: String, value: String)], body: some Collection<UInt8>,
                                now: Int64? = nil) -> ProviderError {
        var error = ProviderError(kind(status: status), "", status: status)
        if body.count <= maxErrorBodyBytes,
           let value = try? JSON.parse(body, options: JSON.ParseOptions(maxDepth: 16, maxValues: 4_096, maxBytes: maxErrorBodyBytes)) {
            error.read(body: value)
        }
        // A type can say more than a status: Anthropic's overload under a 5xx other than 529,
        // OpenAI's exhausted quota under 429.
        if let refined = kind(type: error.providerType ?? error.providerCode), refined == .overloaded || refined == .quotaExhausted {
            error.kind = refined
        }
        if error.providerCode == "insufficient_quota" { error.kind = .quotaExhausted }
        if error.kind == .authentication { error.message = "the provider refused the key" }
        if error.message.isEmpty { error.message = "HTTP \(status)" }
        var afterMs: Duration?, afterSeconds: Duration?
        for (name, value) in headers {
            switch name.lowercased() {
            case "retry-after-ms":
                if let ms = Double(value.trimmingSpaces), ms.isFinite, ms >= 0, ms < 7 * 86_400_000 {
                    afterMs = .milliseconds(Int64(ms.rounded(.up)))
                }
            case "retry-after":
                afterSeconds = retryAfterSeconds(value, now: now).map { .seconds($0) }
            case "x-should-retry":
                switch value.trimmingSpaces.lowercased() {
                case "true": error.shouldRetryHint = true
                case "false": error.shouldRetryHint = false
                default: break
                }
            default: break
            }
        }
        // The finer header wins, as in both SDKs.
        error.retryAfter = afterMs ?? afterSeconds
        return error
    }

    /// An error a provider sent inside a stream after a 200: OpenAI-style `data: {"error":{…}}`,
    /// Anthropic's `event: error`. Classified by its type; an unknown one is a server error.
    static func fromStream(_ value: JSON) -> ProviderError {
        var error = ProviderError(.serverError, "")
        error.read(body: value)
        // A code is the finer word (OpenAI: type invalid_request_error, code invalid_api_key).
        if let kind = kind(type: error.providerCode) ?? kind(type: error.providerType) { error.kind = kind }
        if error.kind == .authentication { error.message = "the provider refused the key" }
        if error.message.isEmpty { error.message = "error in the stream" }
        return error
    }

    private mutating func read(body: JSON) {
        switch body["error"] {
        case .string(let text)?: message = Self.clean(text)
        case .object?:
            let inner = body["error"]!
            if let m = inner["message"]?.stringValue { message = Self.clean(m) }
            providerType = inner["type"]?.stringValue.map { Self.clean($0, maxBytes: 64) }
            // OpenAI's code is a string or null; some servers write a number.
            switch inner["code"] {
            case .string(let c)?: providerCode = Self.clean(c, maxBytes: 64)
            case .int(let n)?: providerCode = String(n)
            default: break
            }
        default:
            if let m = body["message"]?.stringValue { message = Self.clean(m) }
        }
    }

    static func kind(status: Int) -> Kind {
        switch status {
        case 400, 413, 422: return .badRequest
        case 401: return .authentication
        case 402: return .quotaExhausted
        case 403: return .permission
        case 404: return .notFound
        case 408, 504: return .timeout
        case 429: return .rateLimited
        case 503, 529: return .overloaded
        case 500...599: return .serverError
        default: return .unexpectedStatus
        }
    }

    /// The kind an error type names, in either provider's vocabulary.
    static func kind(type: String?) -> Kind? {
        switch type {
        case "overloaded_error": return .overloaded
        case "rate_limit_error", "rate_limit_exceeded", "requests", "tokens": return .rateLimited
        case "api_error", "server_error": return .serverError
        case "timeout_error": return .timeout
        case "invalid_request_error", "request_too_large": return .badRequest
        case "authentication_error", "invalid_api_key": return .authentication
        case "permission_error": return .permission
        case "not_found_error", "model_not_found": return .notFound
        case "billing_error", "insufficient_quota": return .quotaExhausted
        default: return nil
        }
    }

    /// `retry-after` as delta-seconds, or as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT",
    /// RFC 9110 §5.6.7) when `now` is known. A date in the past is 0.
    static func retryAfterSeconds(_ value: String, now: Int64?) -> Int64? {
        let v = value.trimmingSpaces
        if let n = Int64(v) { return n >= 0 && n < 86_400 * 7 ? n : nil }
        guard let now, let date = imfFixdate(v) else { return nil }
        return max(0, min(date - now, 86_400 * 7))
    }

    static func imfFixdate(_ text: String) -> Int64? {
        let parts = text.split(separator: " ")
        guard parts.count == 6, parts[0].hasSuffix(","), parts[5] == "GMT",
              let day = Int64(parts[1]), let year = Int64(parts[3]), (1...31).contains(day), (1970...9999).contains(year) else { return nil }
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        guard let monthIndex = months.firstIndex(of: String(parts[2])) else { return nil }
        let time = parts[4].split(separator: ":")
        guard time.count == 3, let h = Int64(time[0]), let m = Int64(time[1]), let s = Int64(time[2]),
              (0...23).contains(h), (0...59).contains(m), (0...60).contains(s) else { return nil }
        // Days from the civil date (Howard Hinnant's algorithm).
        let month = Int64(monthIndex + 1)
        let y = month <= 2 ? year - 1 : year
        let era = y / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return days * 86_400 + h * 3_600 + m * 60 + s
    }

    /// A provider's words made safe to log and to show: control characters become spaces, and
    /// the text is cut short.
    public static func clean(_ text: String, maxBytes: Int = maxMessageBytes) -> String {
        // The usual case (an upstream id, a finish reason): short printable ASCII, nothing to do.
        if text.utf8.count <= maxBytes, text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }), !hasKeyPrefix(text.utf8) { return text }
        let scalars = text.unicodeScalars.lazy.map { $0.value < 0x20 || $0.value == 0x7F || $0 == "\u{2028}" || $0 == "\u{2029}" ? " " : $0 }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: scalars)
        return WireText.prefix(redactingKeys(String(out)), maxBytes: maxBytes)
    }

    /// `sk-…` tokens (OpenAI's and Anthropic's key shapes) of 16 characters or more, cut to
    /// `sk-…`: a provider that echoes a refused key does so under other statuses too. (The
    /// worker also strips its own key, whatever its shape.)
    /// Whether `sk-` occurs in the bytes (a byte scan: String.contains goes through the
    /// generic string-processing search, a measurable part of a model call's path).
    static func hasKeyPrefix(_ bytes: String.UTF8View) -> Bool {
        var a: UInt8 = 0, b: UInt8 = 0
        for c in bytes {
            if a == 115 && b == 107 && c == 45 { return true }
            a = b
            b = c
        }
        return false
    }

    static func redactingKeys(_ text: String) -> String {
        guard text.utf8.count >= 19, hasKeyPrefix(text.utf8) else { return text }
        let bytes = Array(text.utf8)
        func keyByte(_ b: UInt8) -> Bool {
            (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b == 45 || b == 95
        }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if i + 3 <= bytes.count, bytes[i] == 115, bytes[i + 1] == 107, bytes[i + 2] == 45, i == 0 || !keyByte(bytes[i - 1]) {
                var j = i + 3
                while j < bytes.count, keyByte(bytes[j]) { j += 1 }
                if j - i - 3 >= 16 {
                    out += Array("sk-…".utf8)
                    i = j
                    continue
                }
            }
            out.append(bytes[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
