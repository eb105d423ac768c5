import CordonSystem
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// swift-log output for journald: one line per message on stderr, `<N>` syslog priority first
/// when stderr is the journal (systemd sets JOURNAL_STREAM; journald strips the prefix and
/// files the line at that priority), a UTC timestamp otherwise. Metadata follows as key=value,
/// values quoted when they contain spaces, so `journalctl -u cordond` reads and greps well.
public struct JournalLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let label: String
    let toJournal: Bool

    public init(label: String) {
        self.label = label
        toJournal = getenv("JOURNAL_STREAM") != nil
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    static func render(_ value: Logger.Metadata.Value) -> String {
        let text = "\(value)"
        // By scalar: "\r\n" is one Character, not equal to "\n", and a value (a server's error
        // text) must not end the line early or start a journald priority on a line of its own.
        guard text.isEmpty || text.unicodeScalars.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0 == "\\" || hidden($0) }) else { return text }
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if hidden(scalar) { out += "\\u{\(String(scalar.value, radix: 16))}" } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }

    /// Control and format characters (a line end, an escape sequence, a bidi override).
    private static func hidden(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator: return true
        default: return false
        }
    }

    public func log(event: LogEvent) {
        var line = toJournal ? "<\(Self.priority(event.level))>" : "\(UTCTime.format(UTCTime.epochSeconds())) \(event.level) "
        line += "\(event.message)"
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        for key in all.keys.sorted() { line += " \(key)=\(Self.render(all[key]!))" }
        line += "\n"
        // One write per line: lines from concurrent threads do not interleave.
        var bytes = Array(line.utf8)
        bytes.withUnsafeMutableBytes { _ = write(2, $0.baseAddress, $0.count) }
    }
}
