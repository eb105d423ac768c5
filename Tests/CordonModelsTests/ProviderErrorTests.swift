import CordonJSON
import CordonModels
import Testing

func httpError(_ status: Int, _ body: String = "", headers: [(name: String, value: String)] = [], now: Int64? = nil) -> ProviderError {
    ProviderError.fromHTTP(status: status, headers: headers, body: utf8(body), now: now)
}

@Suite struct ProviderErrorTests {
    /// Retryable: 429, 5xx, 529, timeouts; the request's fault: 400, 413, 422; neither: the
    /// provider cannot serve (401, 403, 404, quota).
    @Test(arguments: [
        (400, ProviderError.Kind.badRequest, false, true), (401, .authentication, false, false), (402, .quotaExhausted, false, false),
        (403, .permission, false, false), (404, .notFound, false, false), (408, .timeout, true, false), (409, .unexpectedStatus, false, false),
        (413, .badRequest, false, true), (422, .badRequest, false, true), (429, .rateLimited, true, false), (500, .serverError, true, false),
        (502, .serverError, true, false), (503, .overloaded, true, false), (504, .timeout, true, false), (529, .overloaded, true, false),
        (599, .serverError, true, false), (302, .unexpectedStatus, false, false),
    ])
    func classificationByStatus(_ status: Int, _ kind: ProviderError.Kind, _ retryable: Bool, _ blamesRequest: Bool) {
        let error = httpError(status)
        #expect(error.kind == kind && error.status == status)
        #expect(error.isRetryable == retryable && error.blamesRequest == blamesRequest)
        // A refused key's message is Cordon's own (see aRefusedKeyIsNotEchoed).
        #expect(error.message == (status == 401 ? "the provider refused the key" : "HTTP \(status)"))
    }

    @Test func connectionAndTimeout() {
        #expect(ProviderError.connection("connect: refused").isRetryable && ProviderError.timeout("no byte for 30 s").isRetryable)
        #expect(ProviderError.connection("reset\n").description == "connection failed: reset ")
    }

    /// Memo §2.4: Anthropic's 429 with retry-after, its 529, and an overload under another 5xx.
    @Test func anthropicFailures() {
        let limited = httpError(429, AnthropicWire.errorBody(type: "rate_limit_error", message: "Number of request tokens has exceeded your per-minute rate limit").text,
                                headers: [("retry-after", "17"), ("anthropic-ratelimit-requests-remaining", "0")])
        #expect(limited.kind == .rateLimited && limited.isRetryable && limited.retryAfter == .seconds(17))
        #expect(limited.providerType == "rate_limit_error" && limited.message.hasPrefix("Number of request tokens"))

        let overloaded = httpError(529, #"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#)
        #expect(overloaded.kind == .overloaded && overloaded.isRetryable && overloaded.message == "Overloaded")
        #expect(overloaded.description == "overloaded (HTTP 529): Overloaded")
        #expect(httpError(500, #"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#).kind == .overloaded)
        #expect(httpError(400, #"{"type":"error","error":{"type":"billing_error","message":"credit balance too low"}}"#).kind == .quotaExhausted)
    }

    /// OpenAI's two 429s: a rate limit clears, an exhausted quota does not.
    @Test func openAIFailures() {
        let rate = httpError(429, OpenAIWire.errorBody(message: "Rate limit reached for requests", type: "requests", code: "rate_limit_exceeded").text,
                             headers: [("Retry-After-Ms", "1500"), ("Retry-After", "2")])
        #expect(rate.kind == .rateLimited && rate.isRetryable && rate.retryAfter == .milliseconds(1500))
        let quota = httpError(429, OpenAIWire.errorBody(message: "You exceeded your current quota", type: "insufficient_quota", code: "insufficient_quota").text)
        #expect(quota.kind == .quotaExhausted && !quota.isRetryable && quota.providerCode == "insufficient_quota")
        #expect(httpError(404, OpenAIWire.errorBody(message: "The model `x` does not exist", type: "invalid_request_error", code: "model_not_found").text).kind == .notFound)
    }

    /// OpenAI's 401 echoes part of the key: the message is never kept.
    @Test func aRefusedKeyIsNotEchoed() {
        let error = httpError(401, OpenAIWire.errorBody(message: "Incorrect API key provided: sk-proj-abc***********************xyz9.", type: "invalid_request_error", code: "invalid_api_key").text)
        #expect(error.kind == .authentication && !error.isRetryable && !error.blamesRequest)
        #expect(!error.message.contains("sk-") && !error.description.contains("xyz9"))
        // And in a stream.
        let inStream = #expect(throws: ProviderError.self) {
            try OpenAIWire.parseChunk(#"{"error":{"message":"Incorrect API key provided: sk-abc","type":"invalid_request_error","code":"invalid_api_key"}}"#)
        }
        #expect(inStream?.kind == .authentication && inStream?.message.contains("sk-") == false)
    }

    @Test func ollamaAndOtherShapes() {
        #expect(httpError(404, #"{"error":"model \"llama3\" not found, try pulling it first"}"#).message == #"model "llama3" not found, try pulling it first"#)
        #expect(httpError(500, #"{"message":"boom"}"#).message == "boom")
        // A proxy's page is not read.
        #expect(httpError(502, "<html><body>Bad Gateway</body></html>").message == "HTTP 502")
        // Nor a body too long to be an error.
        #expect(httpError(500, #"{"error":{"message":""# + String(repeating: "a", count: 70_000) + #""}}"#).message == "HTTP 500")
    }

    /// A provider's words are shortened and lose control characters before they reach a log.
    @Test func messagesAreCleaned() {
        let error = httpError(400, OpenAIWire.errorBody(message: "line\none\u{1B}[31m\u{2028}" + String(repeating: "é", count: 600), type: "invalid_request_error").text)
        #expect(!error.message.contains("\n") && !error.message.contains("\u{1B}") && !error.message.contains("\u{2028}"))
        #expect(error.message.utf8.count <= 512 + 3 && error.message.hasSuffix("…"))
    }

    @Test func retryAfter() {
        // Delta seconds; an HTTP date counts only when the caller knows the time.
        #expect(httpError(503, headers: [("Retry-After", " 120 ")]).retryAfter == .seconds(120))
        let date = "Wed, 21 Oct 2015 07:28:00 GMT"
        #expect(httpError(503, headers: [("Retry-After", date)], now: 1445412480 - 90).retryAfter == .seconds(90))
        #expect(httpError(503, headers: [("Retry-After", date)], now: 1445412480 + 90).retryAfter == .seconds(0))
        #expect(httpError(503, headers: [("Retry-After", date)]).retryAfter == nil)
        #expect(httpError(503, headers: [("Retry-After", "Tue, 29 Feb 2028 23:59:59 GMT")], now: 1835481599 - 5).retryAfter == .seconds(5))
        // Nonsense is ignored.
        for value in ["-1", "soon", "1e3", "Wed, 32 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:28:00 UTC", "99999999"] {
            #expect(httpError(429, headers: [("retry-after", value)], now: 1445412480).retryAfter == nil, "\(value)")
        }
        #expect(httpError(429, headers: [("retry-after-ms", "NaN")]).retryAfter == nil)
    }

    /// x-should-retry overrides the status rule, as both SDKs let it.
    @Test func shouldRetryHeader() {
        #expect(!httpError(503, headers: [("x-should-retry", "false")]).isRetryable)
        #expect(httpError(409, headers: [("X-Should-Retry", "true")]).isRetryable)
        #expect(httpError(500, headers: [("x-should-retry", "maybe")]).isRetryable)
    }
    /// The model worker's form (its JSON-RPC error's data) reads back as the same error, each
    /// member given or null; a member of the wrong type is refused with its name.
    @Test func jsonRoundTrip() throws {
        var hinted = httpError(429, #"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#,
                               headers: [("retry-after-ms", "1500"), ("x-should-retry", "false")])
        hinted.field = "choices[0]"
        let cases: [ProviderError] = [
            hinted, httpError(529, #"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#),
            httpError(503, headers: [("retry-after", "7")]), .timeout("cancelled"), .connection("connect: refused"),
            ProviderError(.malformedReply, "not JSON", field: "choices[0].delta"),
        ] + ProviderError.Kind.allCases.map { ProviderError($0, "m") }
        for error in cases {
            let text = error.json.text
            #expect(try ProviderError(json: JSON.parse(text)) == error, "\(text)")
        }
        #expect(hinted.json["retryAfterMs"] == .int(1500) && hinted.json["shouldRetry"] == .bool(false))
        #expect(hinted.json["kind"] == .string("rate limited") && hinted.json["status"] == .int(429))
        #expect(ProviderError.timeout("x").json.text
                == #"{"kind":"timed out","status":null,"message":"x","field":null,"retryAfterMs":null,"providerType":null,"providerCode":null,"shouldRetry":null}"#)
        for bad in [#"{"kind":"nope","message":"x"}"#, #"{"message":"x"}"#, #"{"kind":"timed out","status":"500"}"#,
                    #"{"kind":"timed out","retryAfterMs":-1}"#, #"{"kind":"timed out","shouldRetry":1}"#, "[]"] {
            #expect(throws: ProviderError.self) { try ProviderError(json: JSON.parse(bad)) }
        }
    }

    /// `clean`: printable text as it was (the usual case, taken without a copy), control
    /// characters as spaces, a key cut to `sk-…` however short the text, and a longer text cut
    /// (on a character's edge) with an ellipsis.
    @Test func cleanKeepsPrintableTextAndMendsTheRest() {
        #expect(ProviderError.clean("chatcmpl-abc123", maxBytes: 128) == "chatcmpl-abc123")
        #expect(ProviderError.clean("a\u{1B}[31mb\r\nc\u{2028}d") == "a [31mb  c d")
        #expect(ProviderError.clean("sk-abcdefghijklmnopqrstu", maxBytes: 128) == "sk-…")
        #expect(ProviderError.clean("id sk-abcdefghijklmnopqrstu end", maxBytes: 128) == "id sk-… end")
        #expect(ProviderError.clean("task-sk-abcdefghijklmnopqrstu", maxBytes: 128) == "task-sk-abcdefghijklmnopqrstu")
        #expect(ProviderError.clean("sk-short", maxBytes: 128) == "sk-short")
        #expect(ProviderError.clean(String(repeating: "x", count: 200), maxBytes: 64) == String(repeating: "x", count: 64) + "…")
        #expect(ProviderError.clean("éé", maxBytes: 3) == "é…")
    }
}
