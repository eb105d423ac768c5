import CordonRPC
import CordonSystem
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The framing rules (`LineFramer`), fed by hand, and `LineChannel` over a socket pair.
struct LineFramerTests {
    func lines(_ framer: inout LineFramer) -> [LineFramer.Line] {
        var out: [LineFramer.Line] = []
        while let line = framer.next() { out.append(line) }
        return out
    }

    func message(_ text: String) -> LineFramer.Line { .message(Array(text.utf8)) }

    @Test func wholeLinesComeOutOneByOne() {
        var framer = LineFramer(maxLine: 100)
        framer.append(Array("one\ntwo\n\nthree".utf8))
        #expect(lines(&framer) == [message("one"), message("two"), message("")])
        #expect(!framer.isEmpty)  // "three" waits for its newline
        framer.append(Array("\n".utf8))
        #expect(lines(&framer) == [message("three")])
        #expect(framer.isEmpty)
    }

    @Test func aLineSplitAcrossReadsIsJoined() {
        var framer = LineFramer(maxLine: 100)
        let text = Array("{\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n".utf8)
        for byte in text.dropLast() {
            framer.append([byte])
            #expect(framer.next() == nil)
        }
        framer.append([text.last!])
        #expect(lines(&framer) == [.message(Array(text.dropLast()))])
    }

    @Test func crLfEndsALineAndABareCrStays() {
        var framer = LineFramer(maxLine: 100)
        framer.append(Array("a\r\nb\rc\n\r\n".utf8))
        #expect(lines(&framer) == [message("a"), message("b\rc"), message("")])
    }

    @Test func aLineOfExactlyTheLimitPassesAndOneMoreByteDoesNot() {
        var framer = LineFramer(maxLine: 8)
        framer.append(Array("12345678\n123456789\nok\n".utf8))
        #expect(lines(&framer) == [message("12345678"), .tooLong, message("ok")])
    }

    @Test func anOverLongLineIsReportedOnceAsSoonAsItPassesTheLimitAndSkipped() {
        var framer = LineFramer(maxLine: 16)
        framer.append(Array(repeating: UInt8(ascii: "x"), count: 10))
        #expect(framer.next() == nil)
        framer.append(Array(repeating: UInt8(ascii: "x"), count: 10))
        #expect(framer.next() == .tooLong)  // before its newline has arrived
        // The rest of it is skipped as it comes, without being kept.
        for _ in 0..<100 {
            framer.append(Array(repeating: UInt8(ascii: "x"), count: 4096))
            #expect(framer.next() == nil)
            #expect(framer.capacity <= LineFramer.keptCapacity)
        }
        framer.append(Array("xxx\nnext\n".utf8))
        #expect(lines(&framer) == [message("next")])
    }

    @Test func aLargeMessagesRoomIsGivenBackOnceItIsDone() {
        var framer = LineFramer(maxLine: 1 << 20)
        framer.append(Array(repeating: UInt8(ascii: "y"), count: 1 << 19) + [0x0A])
        guard case .message(let bytes)? = framer.next() else { Issue.record("no message"); return }
        #expect(bytes.count == 1 << 19)
        #expect(framer.capacity <= LineFramer.keptCapacity)
    }

    @Test func manyShortLinesInOneReadCostLinearTime() {
        var framer = LineFramer(maxLine: 100)
        let count = 100_000
        framer.append(Array(String(repeating: "ab\n", count: count).utf8))
        let started = MonotonicClock.now
        var seen = 0
        while let line = framer.next() {
            #expect(line == message("ab"))
            seen += 1
        }
        #expect(seen == count)
        #expect(MonotonicClock.since(started) < 5)
    }

    @Test func lineChannelReadsFramesAndEndsAtEOF() throws {
        let pair = try Descriptor.socketPair(type: Int32(SOCK_STREAM.rawValue))
        let mine = pair.first
        let theirs = pair.second
        let channel = LineChannel(fd: mine.raw, maxLine: 8)
        let bytes = Array("hi\r\n0123456789\nthere\n".utf8)
        #expect(send(theirs.raw, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count)
        theirs.close()
        #expect(channel.readLine() == message("hi"))
        #expect(channel.readLine() == .tooLong)
        #expect(channel.readLine() == message("there"))
        #expect(channel.readLine() == .eof)
    }

    @Test func lineChannelGivesUpAtItsDeadline() throws {
        let pair = try Descriptor.socketPair(type: Int32(SOCK_STREAM.rawValue))
        let mine = pair.first
        let theirs = pair.second
        let channel = LineChannel(fd: mine.raw, maxLine: 100)
        let bytes = Array("no newline".utf8)
        #expect(send(theirs.raw, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count)
        let started = MonotonicClock.now
        #expect(channel.readLine(deadline: started + 0.1) == .eof)
        #expect(MonotonicClock.since(started) >= 0.1)
        _ = theirs.raw
    }
}
