import CordonJSON
import CordonModels
import Testing

/// Decodes a stream given in pieces cut at `cuts` (byte offsets).
func decode(_ bytes: [UInt8], cuts: [Int] = [], decoder: SSEDecoder = SSEDecoder()) throws -> [SSEEvent] {
    var d = decoder
    var events: [SSEEvent] = []
    var start = 0
    for cut in cuts + [bytes.count] {
        events += try d.feed(bytes[start..<cut])
        start = cut
    }
    if let last = try d.finish() { events.append(last) }
    return events
}

func withLineEnds(_ text: String, _ end: String) -> [UInt8] {
    utf8(text.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: end))
}

@Suite struct SSEDecoderTests {
    @Test func theOpenAIStreamsEvents() throws {
        let events = try decode(utf8(StreamFixtures.openAI))
        #expect(events.count == 9)
        #expect(events.allSatisfy { $0.event == nil && $0.id == nil })
        #expect(events.last == SSEEvent(data: "[DONE]") && events.last!.isDone)
        #expect(events.dropLast().allSatisfy { !$0.isDone && $0.data.hasPrefix(#"{"id":"chatcmpl-9x""#) })
        #expect(events[2].data.contains(" — in Paris ☀️."))
    }

    @Test func theAnthropicStreamsEvents() throws {
        let events = try decode(utf8(StreamFixtures.anthropic))
        #expect(events.map { $0.event ?? "" } == [
            "message_start", "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
            "content_block_start", "ping", "content_block_delta", "content_block_delta", "content_block_stop",
            "content_block_start", "content_block_delta", "content_block_delta", "content_block_delta", "content_block_stop",
            "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "future_event_type", "message_stop",
        ])
        #expect(events[6].data == #"{"type": "ping"}"#)
    }

    /// The same events whatever the split: the recorded streams cut in two at every byte
    /// boundary (inside "\r\n", inside a UTF-8 sequence, inside "data:"), with each line end.
    @Test(arguments: ["\n", "\r\n", "\r"])
    func everySplitInTwoGivesTheSameEvents(_ end: String) throws {
        for fixture in [StreamFixtures.openAI, StreamFixtures.anthropic] {
            let bytes = withLineEnds(fixture, end)
            let whole = try decode(bytes)
            #expect(whole == (try decode(utf8(fixture))))
            for cut in 0...bytes.count {
                let split = try decode(bytes, cuts: [cut])
                if split != whole { Issue.record("cut at \(cut) with \(end.debugDescription): \(split.count) events"); return }
            }
            #expect(try decode(bytes, cuts: Array(1..<bytes.count)) == whole)
        }
    }

    /// Every split in three of a small stream that holds each feature of the format.
    @Test func everySplitInThreeOfTheFormatsCorners() throws {
        let text = "\u{FEFF}: hello\r\nevent: a\r\ndata: 1\r\ndata:2\r\ndata\r\nid: 7\r\nretry: 1500\r\n\r\n"
            + "data: é\n\n:x\r\revent:\rdata: second\rid\r\r" + "field without colon\ndata: [DONE]\n\n"
        let bytes = utf8(text)
        let expected = [
            SSEEvent(event: "a", data: "1\n2\n", id: "7", retry: 1500),
            SSEEvent(data: "é", id: "7"),
            SSEEvent(data: "second", id: ""),
            SSEEvent(data: "[DONE]", id: ""),
        ]
        #expect(try decode(bytes) == expected)
        for i in 0...bytes.count {
            for j in i...bytes.count {
                let events = try decode(bytes, cuts: [i, j])
                if events != expected { Issue.record("cuts \(i), \(j): \(events)"); return }
            }
        }
    }

    @Test func commentsAndEventsWithoutDataAreNoEvents() throws {
        #expect(try decode(utf8(": ping\n\nevent: x\n\nid: 3\n\n\n\n")) == [])
        // An event without data sets nothing for the next one (but the id carries over).
        #expect(try decode(utf8("event: x\n\ndata: y\n\n")) == [SSEEvent(data: "y")])
        #expect(try decode(utf8("id: 1\n\ndata: y\n\n")) == [SSEEvent(data: "y", id: "1")])
        // `data:` alone is an event with empty data.
        #expect(try decode(utf8("data:\n\n")) == [SSEEvent(data: "")])
        // Only one space after the colon is taken off.
        #expect(try decode(utf8("data:  two\n\n")) == [SSEEvent(data: " two")])
    }

    @Test func idsWithNulAndBadRetriesAreIgnored() throws {
        #expect(try decode(utf8("id: a\u{0}b\nretry: 12x\ndata: y\n\n")) == [SSEEvent(data: "y")])
    }

    /// The end of the stream ends the last event (lenient), and a cut one is still mid-event.
    @Test func theEndOfTheStream() throws {
        var d = SSEDecoder()
        #expect(try d.feed(utf8("data: [DONE]")).isEmpty)
        #expect(d.isMidEvent)
        #expect(try d.finish() == SSEEvent(data: "[DONE]"))
        #expect(!d.isMidEvent)
        #expect(try decode(utf8("data: a\n")) == [SSEEvent(data: "a")])
        #expect(try decode(utf8("")) == [])
    }

    @Test func illFormedUTF8BecomesReplacementCharacters() throws {
        #expect(try decode([0x64, 0x61, 0x74, 0x61, 0x3A, 0x20, 0xFF, 0x41, 0x0A, 0x0A]) == [SSEEvent(data: "\u{FFFD}A")])
    }

    @Test func aLongLineIsRefused() throws {
        var d = SSEDecoder(maxLineBytes: 64, maxEventBytes: 1 << 20)
        #expect(try d.feed(utf8("data: " + String(repeating: "a", count: 58) + "\n")).isEmpty)
        var e = SSEDecoder(maxLineBytes: 64, maxEventBytes: 1 << 20)
        // Refused while it arrives, before its end is seen: the line is never held whole.
        _ = try e.feed(utf8("data: " + String(repeating: "a", count: 40)))
        let error = #expect(throws: ProviderError.self) { _ = try e.feed(utf8(String(repeating: "a", count: 40))) }
        #expect(error?.kind == .malformedReply && error?.message == "a stream line is longer than 64 bytes")
    }

    @Test func aLargeEventIsRefused() throws {
        var d = SSEDecoder(maxLineBytes: 64, maxEventBytes: 100)
        let line = "data: " + String(repeating: "a", count: 40) + "\n"
        _ = try d.feed(utf8(line + line))
        let error = #expect(throws: ProviderError.self) { _ = try d.feed(utf8(line)) }
        #expect(error?.message == "a stream event is longer than 100 bytes")
        // Many small events are fine: the bound is per event.
        var f = SSEDecoder(maxLineBytes: 64, maxEventBytes: 100)
        #expect(try f.feed(utf8(String(repeating: line + "\n", count: 1000))).count == 1000)
    }
}

@Suite struct SSEEncoderTests {
    @Test func dataEventsAreOneLineOfJSON() throws {
        let json = JSON.object([("text", .string("two\nlines\u{2028}and a separator"))])
        let bytes = SSEEncoder.data(json)
        #expect(String(decoding: bytes, as: UTF8.self) == #"data: {"text":"two\nlines\u2028and a separator"}"# + "\n\n")
        #expect(try decode(bytes) == [SSEEvent(data: json.text)])
        #expect(try JSON.parse(try decode(bytes)[0].data) == json)
        #expect(String(decoding: SSEEncoder.done, as: UTF8.self) == "data: [DONE]\n\n")
    }

    /// What the encoder writes, the decoder reads back: multi-line data, names and ids that
    /// try to break out of their line.
    @Test(arguments: [
        ("a\nb\r\nc\rd", "x", "1"),
        ("", nil, nil),
        ("\n", "evil\ndata: injected", "id\r\nretry: 1"),
    ] as [(String, String?, String?)])
    func roundTrip(_ data: String, _ event: String?, _ id: String?) throws {
        let bytes = SSEEncoder.event(data: data, event: event, id: id)
        let events = try decode(bytes)
        #expect(events.count == 1)
        #expect(events.first?.data == data.replacing("\r\n", with: "\n").replacing("\r", with: "\n"))
        #expect(events.first?.event == event.map { $0.replacing("\n", with: " ") })
        #expect(events.first?.id == id.map { $0.replacing("\r\n", with: " ") })
        #expect(try decode(SSEEncoder.comment("keep\nalive") + bytes) == events)
    }
}
