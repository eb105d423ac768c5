@testable import CordonDaemon
import Logging
import Testing

/// The journald log's values: text from a sandboxed server (a failure's reason) stays on its
/// line and shows what it is.
struct LogTests {
    @Test func aValueCannotEndItsLineOrHideWhatItIs() {
        // "\r\n" is one Character in Swift, not "\n": it used to pass through raw, and journald
        // took the next line's "<0>" as its priority.
        let forged = JournalLogHandler.render(.string("x\r\n<0>cordond: forged"))
        #expect(forged == #""x\r\n<0>cordond: forged""#)
        #expect(!forged.unicodeScalars.contains { $0 == "\n" || $0 == "\r" })
        #expect(JournalLogHandler.render(.string("a\u{2028}b\u{1b}[31mc\u{202e}d")) == #""a\u{2028}b\u{1b}[31mc\u{202e}d""#)
        #expect(JournalLogHandler.render(.string("tab\there")) == #""tab\there""#)
        #expect(JournalLogHandler.render(.string("a \"quoted\" back\\slash")) == #""a \"quoted\" back\\slash""#)
        #expect(JournalLogHandler.render(.string("plain")) == "plain")
        #expect(JournalLogHandler.render(.string("")) == #""""#)
    }
}
