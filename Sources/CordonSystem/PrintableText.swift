/// Text from someone else (a sandboxed server's stderr, a tool's description) made safe to put
/// on a terminal or in a log line: every control character — escape sequences, carriage
/// returns, newlines, C1 controls, bidi marks, overrides and isolates, zero-width and other
/// format characters — shown as `?` (CordonPackaging's SimpleIndex.isUnprintable: the same set).
public enum PrintableText {
    public static func of(_ text: some StringProtocol) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { scalar in
            let v = scalar.value
            let control = v < 0x20 || (0x7f...0x9f).contains(v) || v == 0x061c || (0x200b...0x200f).contains(v) || (0x2028...0x202e).contains(v)
                || (0x2060...0x206f).contains(v) || v == 0xfeff
            return control ? "?" : scalar
        }))
    }
}
