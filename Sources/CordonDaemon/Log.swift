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
        guard text.isEmpty || text.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0.isNewline }) else { return text }
        var out = "\""
        for c in text {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out + "\""
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
