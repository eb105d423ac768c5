import CYAML

/// A YAML (or JSON) document as plain nodes, built from libyaml's events. Scalars keep their
/// source text: no type resolution, so the version `2.10` stays "2.10" (a YAML 1.1 loader would
/// make it the float 2.1). Anchors and aliases are refused; advisories do not use them.
/// Where and why a YAML document did not parse.
struct YAMLParseError: Error, CustomStringConvertible {
    var line: Int
    var message: String
    var description: String { "line \(line): \(message)" }
}

enum YAMLNode {
    case scalar(String)
    case sequence([YAMLNode])
    case mapping([(String, YAMLNode)])

    subscript(key: String) -> YAMLNode? {
        guard case .mapping(let pairs) = self else { return nil }
        return pairs.first { $0.0 == key }?.1
    }

    var string: String? { if case .scalar(let s) = self { return s } else { return nil } }
    var items: [YAMLNode] { if case .sequence(let s) = self { return s } else { return [] } }

    /// Parses the first document of `bytes`. Nesting is capped at 64 levels.
    static func parse(_ bytes: [UInt8]) throws(YAMLParseError) -> YAMLNode {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { throw YAMLParseError(line: 0, message: "cannot initialise libyaml") }
        defer { yaml_parser_delete(&parser) }
        // libyaml reads from this buffer until the parser is deleted.
        let input = UnsafeMutablePointer<UInt8>.allocate(capacity: max(bytes.count, 1))
        defer { input.deallocate() }
        input.initialize(from: bytes, count: bytes.count)
        yaml_parser_set_input_string(&parser, input, bytes.count)
        var builder = YAMLBuilder()
        while true {
            var event = yaml_event_t()
            guard yaml_parser_parse(&parser, &event) == 1 else {
                let problem = parser.problem.map { String(cString: $0) } ?? "malformed YAML"
                throw YAMLParseError(line: Int(parser.problem_mark.line) + 1, message: problem)
            }
            defer { yaml_event_delete(&event) }
            if let done = try builder.consume(&event) { return done }
        }
    }
}

/// Turns libyaml's event stream into nodes. Each open collection is a frame whose arrays grow in
/// place; the node is built once, when the collection closes (appending to a node popped and
/// pushed back copied the whole collection for every item: quadratic).
struct YAMLBuilder {
    private struct Frame {
        var isMapping: Bool
        var items: [YAMLNode] = []
        var pairs: [(String, YAMLNode)] = []
        var pendingKey: String?
    }
    private var stack: [Frame] = []
    private var root: YAMLNode?

    /// Feeds one event; returns the document once it is complete.
    mutating func consume(_ event: inout yaml_event_t) throws(YAMLParseError) -> YAMLNode? {
        let line = Int(event.start_mark.line) + 1
        switch event.type {
        case YAML_SCALAR_EVENT:
            let s = event.data.scalar
            try add(.scalar(String(decoding: UnsafeBufferPointer(start: s.value, count: s.length), as: UTF8.self)), line: line)
        case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
            guard stack.count < 64 else { throw YAMLParseError(line: line, message: "nested deeper than 64 levels") }
            stack.append(Frame(isMapping: event.type == YAML_MAPPING_START_EVENT))
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            guard let done = stack.popLast() else { throw YAMLParseError(line: line, message: "unbalanced collection") }
            try add(done.isMapping ? .mapping(done.pairs) : .sequence(done.items), line: line)
        case YAML_ALIAS_EVENT:
            throw YAMLParseError(line: line, message: "aliases are not supported")
        case YAML_DOCUMENT_END_EVENT:
            if let root { return root }
        case YAML_STREAM_END_EVENT:
            if let root { return root }
            throw YAMLParseError(line: line, message: "empty document")
        default:
            break
        }
        return nil
    }

    private mutating func add(_ node: YAMLNode, line: Int) throws(YAMLParseError) {
        guard !stack.isEmpty else { root = node; return }
        let top = stack.count - 1
        if !stack[top].isMapping {
            stack[top].items.append(node)
        } else if let key = stack[top].pendingKey {
            stack[top].pairs.append((key, node))
            stack[top].pendingKey = nil
        } else {
            guard case .scalar(let key) = node else { throw YAMLParseError(line: line, message: "mapping keys must be scalars") }
            stack[top].pendingKey = key
        }
    }
}
