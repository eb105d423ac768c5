/// Text from someone else (a sandboxed server's stderr, a tool's description) made safe to put
/// on a terminal or in a log line: every control character — escape sequences, carriage
/// returns, newlines, C1 controls, and every character that draws nothing or reorders text
/// (format characters: bidi marks and overrides, zero-width characters, tags; separators,
/// private-use and unassigned code points, variation selectors) — shown as `?`
/// (CordonPackaging's SimpleIndex.isUnprintable: the same set).
public enum PrintableText {
    public static func of(_ text: some StringProtocol) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { scalar in
            let v = scalar.value
            let hidden: Bool
            switch scalar.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator, .privateUse, .surrogate, .unassigned: hidden = true
            default: hidden = (0xfe00...0xfe0f).contains(v) || (0xe0100...0xe01ef).contains(v) || v == 0x180e
            }
            return hidden ? "?" : scalar
        }))
    }
}
