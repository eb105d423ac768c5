/// Text from someone else (a sandboxed server's stderr, a tool's description) made safe to put
/// on a terminal or in a log line: every control character — escape sequences, carriage
/// returns, newlines, a bidi override or isolate — shown as `?`.
public enum PrintableText {
    public static func of(_ text: some StringProtocol) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { scalar in
            let v = scalar.value
            let control = v < 0x20 || (0x7f...0x9f).contains(v) || (0x202a...0x202e).contains(v) || (0x2066...0x2069).contains(v)
            return control ? "?" : scalar
        }))
    }
}
