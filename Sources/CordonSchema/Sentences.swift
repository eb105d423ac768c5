import CordonJSON

// The pieces every sentence is made of: values and names shown short, on one line.

/// A string as JSON text, cut to 60 scalars: instance text in a message must stay short and
/// cannot break the line.
func quoted(_ s: String) -> String {
    let scalars = s.unicodeScalars
    guard scalars.count > 60 else { return JSON.string(s).text }
    let cut = JSON.string(String(String.UnicodeScalarView(scalars.prefix(60)))).text
    return String(cut.dropLast()) + "…\""
}

/// A value in a message: scalars as JSON text (strings cut), containers by kind.
func describe(_ value: JSON) -> String {
    switch value {
    case .null: return "null"
    case .bool(let b): return b ? "true" : "false"
    case .int, .uint, .double: return value.text
    case .string(let s): return "the string \(quoted(s))"
    case .array(let items): return "an array of \(items.count) item\(items.count == 1 ? "" : "s")"
    case .object(let members): return "an object of \(members.count) propert\(members.count == 1 ? "y" : "ies")"
    }
}

/// A value as short JSON text, for `const` and `enum` in messages.
func shortText(_ value: JSON, limit: Int = 80) -> String {
    let text = value.text
    guard text.unicodeScalars.count > limit else { return text }
    return String(String.UnicodeScalarView(text.unicodeScalars.prefix(limit))) + "…"
}

func plural(_ n: Int, _ one: String, _ many: String? = nil) -> String {
    "\(n) \(n == 1 ? one : many ?? one + "s")"
}
