import CordonJSON
import CordonModels
import FuzzSupport

/// The model gateway's parsers of untrusted bytes, chosen by the input's first byte (mod 5):
/// a client's chat request (read, then its upstream bodies built: OpenAI's, and Anthropic's or
/// a refusal); an upstream reply (OpenAI's, then Anthropic's; what reads is encoded as Cordon's
/// completion and read back the same); an SSE stream fed whole and in pieces (the same events or
/// the same refusal), each event read as an OpenAI chunk and through the Anthropic translator,
/// every delta accumulated under the limits; models.toml. Nothing may crash or trap.
@main enum FuzzModels {
    static let replyLimits: ReplyLimits = {
        var l = ReplyLimits()
        l.maxContentBytes = 64 << 10
        return l
    }()

    static func main() {
        Fuzzer.run { input in
            guard let mode = input.first else { return }
            let bytes = Array(input.dropFirst())
            switch mode % 5 {
            case 0: request(bytes)
            case 1: reply(bytes)
            case 2, 3: stream(bytes)
            default: _ = try? ModelCatalogParser.parse(text: String(decoding: bytes, as: UTF8.self), source: "fuzz")
            }
        }
    }

    static func request(_ bytes: [UInt8]) {
        guard let request = try? ChatRequest.parse(bytes) else { return }
        let body = OpenAIWire.requestBody(request, model: "m", maxOutputTokens: 4096)
        require(OpenAIWire.cappedMaxTokens(request, maxOutputTokens: 4096) <= 4096, "a cap above the model's")
        _ = body.text
        _ = try? AnthropicWire.requestBody(request, model: "m", maxOutputTokens: 4096)
    }

    static func reply(_ bytes: [UInt8]) {
        if let result = try? OpenAIWire.parseResponse(bytes, limits: replyLimits) {
            let ours = OpenAIWire.completionBody(result, id: "chatcmpl-x", model: "m", created: 0)
            let back = try? OpenAIWire.parseResponse(Array(ours.text.utf8), limits: replyLimits)
            // A reply without a finish reason gets one, as completionBody documents.
            let finish = result.finishReason ?? (result.toolCalls.isEmpty ? .stop : .toolCalls)
            require(back?.content == result.content && back?.toolCalls == result.toolCalls && back?.finishReason == finish,
                    "Cordon's own body does not read back to the answer it carries")
        }
        _ = try? AnthropicWire.parseResponse(bytes, limits: replyLimits)
    }

    static func stream(_ bytes: [UInt8]) {
        var whole = SSEDecoder(maxLineBytes: 16 << 10, maxEventBytes: 16 << 10)
        let events: [SSEEvent]?
        do {
            var all = try whole.feed(bytes)
            if let last = try whole.finish() { all.append(last) }
            events = all
        } catch { events = nil }
        // The same bytes in pieces: the same events, or a refusal as well.
        var split = SSEDecoder(maxLineBytes: 16 << 10, maxEventBytes: 16 << 10)
        let piece = 1 + Int(bytes.reduce(0) { $0 &+ UInt32($1) } % 61)
        var pieces: [SSEEvent]? = []
        var i = 0
        do {
            while i < bytes.count {
                pieces! += try split.feed(bytes[i..<min(bytes.count, i + piece)])
                i += piece
            }
            if let last = try split.finish() { pieces!.append(last) }
        } catch { pieces = nil }
        require(events == pieces, "whole: \(String(describing: events?.count)) events, in pieces of \(piece): \(String(describing: pieces?.count))")
        guard let events else { return }
        var openai = ChatAccumulator(limits: replyLimits)
        var anthropic = AnthropicWire.StreamTranslator(limits: replyLimits)
        var translated = ChatAccumulator(limits: replyLimits)
        var openaiFailed = false, anthropicFailed = false
        for event in events where !event.isDone {
            if !openaiFailed {
                do { if let d = try OpenAIWire.parseChunk(event.data, limits: replyLimits) { try openai.add(d) } } catch { openaiFailed = true }
            }
            if !anthropicFailed {
                do { if let d = try anthropic.translate(event) { try translated.add(d) } } catch { anthropicFailed = true }
            }
        }
        for d in [openai.result, translated.result] {
            require((d.content?.utf8.count ?? 0) <= replyLimits.maxContentBytes, "an answer past the limit")
        }
    }
}
