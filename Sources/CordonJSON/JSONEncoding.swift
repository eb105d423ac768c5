extension JSON {
    /// The value of an `Encodable`, as Foundation's `JSONEncoder` with `.sortedKeys` builds it:
    /// a nil optional left out, members in key order, a key encoded twice holding its last
    /// value; a non-finite number is an error (JSON has none). Types that Foundation's encoder
    /// treats specially (Date, Data, URL) encode here as their own `Encodable` says.
    /// For records Cordon stores and serves over the protocol, so that one codec writes them.
    public init(encoding value: some Encodable) throws(EncodingError) {
        let root = EncodingNode()
        do { try value.encode(to: ValueEncoder(root, path: [])) } catch let error as EncodingError { throw error } catch {
            throw EncodingError.invalidValue(value, .init(codingPath: [], debugDescription: "\(error)"))
        }
        self = root.value
    }
}

/// What one encoder or container has written so far.
private final class EncodingNode {
    enum Content {
        case empty
        case value(JSON)
        case object([(String, EncodingNode)])
        case array([EncodingNode])
    }
    var content = Content.empty

    var value: JSON {
        switch content {
        case .empty: return .object([])  // an encoder nothing was written to, as Foundation writes it
        case .value(let v): return v
        case .object(let members): return .object(members.map { ($0.0, $0.1.value) }.sorted { $0.0 < $1.0 })
        case .array(let items): return .array(items.map(\.value))
        }
    }

    // Each container is taken out of `content` before it grows (`content` is left `.empty`
    // meanwhile), so the array is uniquely referenced and grows in place: copying it per member
    // made encoding an array of n items cost n² (50,000 integers took 29 s).

    func member(_ key: String) -> EncodingNode {
        var members: [(String, EncodingNode)] = []
        if case .object(let m) = content { members = m }
        content = .empty
        let node = EncodingNode()
        if let i = members.firstIndex(where: { $0.0 == key }) { members[i].1 = node } else { members.append((key, node)) }
        content = .object(members)
        return node
    }

    func append() -> EncodingNode {
        var items: [EncodingNode] = []
        if case .array(let a) = content { items = a }
        content = .empty
        let node = EncodingNode()
        items.append(node)
        content = .array(items)
        return node
    }

    var count: Int {
        if case .array(let a) = content { return a.count }
        return 0
    }
}

private struct IndexKey: CodingKey {
    var intValue: Int?
    var stringValue: String
    init(_ index: Int) { intValue = index; stringValue = "Index \(index)" }
    init?(stringValue: String) { nil }
    init?(intValue: Int) { self.init(intValue) }
}

private struct ValueEncoder: Encoder {
    let node: EncodingNode
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(_ node: EncodingNode, path: [any CodingKey]) {
        self.node = node
        codingPath = path
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if case .object = node.content {} else { node.content = .object([]) }
        return KeyedEncodingContainer(KeyedContainer<Key>(node: node, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if case .array = node.content {} else { node.content = .array([]) }
        return UnkeyedContainer(node: node, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { SingleContainer(node: node, codingPath: codingPath) }
}

/// Scalars, for all three container kinds.
private func scalar(_ value: some Encodable, _ path: [any CodingKey]) throws -> JSON? {
    switch value {
    case let v as Bool: return .bool(v)
    case let v as String: return .string(v)
    case let v as Double: return try number(v, path)
    case let v as Float: return try number(Double(v), path)
    case let v as Int: return .int(Int64(v))
    case let v as Int8: return .int(Int64(v))
    case let v as Int16: return .int(Int64(v))
    case let v as Int32: return .int(Int64(v))
    case let v as Int64: return .int(v)
    case let v as UInt: return integer(UInt64(v))
    case let v as UInt8: return .int(Int64(v))
    case let v as UInt16: return .int(Int64(v))
    case let v as UInt32: return .int(Int64(v))
    case let v as UInt64: return integer(v)
    default: return nil
    }
}

private func integer(_ v: UInt64) -> JSON { v <= UInt64(Int64.max) ? .int(Int64(v)) : .uint(v) }

private func number(_ d: Double, _ path: [any CodingKey]) throws -> JSON {
    guard d.isFinite else { throw EncodingError.invalidValue(d, .init(codingPath: path, debugDescription: "\(d) is not a JSON number")) }
    return .double(d)
}

private func encode(_ value: some Encodable, into node: EncodingNode, _ path: [any CodingKey]) throws {
    if let v = try scalar(value, path) { node.content = .value(v); return }
    try value.encode(to: ValueEncoder(node, path: path))
}

private struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: EncodingNode
    let codingPath: [any CodingKey]

    mutating func encodeNil(forKey key: Key) throws { node.member(key.stringValue).content = .value(.null) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try CordonJSON.encode(value, into: node.member(key.stringValue), codingPath + [key])
    }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        ValueEncoder(node.member(key.stringValue), path: codingPath + [key]).container(keyedBy: keyType)
    }
    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        ValueEncoder(node.member(key.stringValue), path: codingPath + [key]).unkeyedContainer()
    }
    mutating func superEncoder() -> any Encoder { ValueEncoder(node.member("super"), path: codingPath) }
    mutating func superEncoder(forKey key: Key) -> any Encoder { ValueEncoder(node.member(key.stringValue), path: codingPath + [key]) }
}

private struct UnkeyedContainer: UnkeyedEncodingContainer {
    let node: EncodingNode
    let codingPath: [any CodingKey]
    var count: Int { node.count }

    private var nextPath: [any CodingKey] { codingPath + [IndexKey(count)] }

    mutating func encodeNil() throws { node.append().content = .value(.null) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        let path = nextPath
        try CordonJSON.encode(value, into: node.append(), path)
    }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let path = nextPath
        return ValueEncoder(node.append(), path: path).container(keyedBy: keyType)
    }
    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let path = nextPath
        return ValueEncoder(node.append(), path: path).unkeyedContainer()
    }
    mutating func superEncoder() -> any Encoder {
        let path = nextPath
        return ValueEncoder(node.append(), path: path)
    }
}

private struct SingleContainer: SingleValueEncodingContainer {
    let node: EncodingNode
    let codingPath: [any CodingKey]

    mutating func encodeNil() throws { node.content = .value(.null) }
    mutating func encode<T: Encodable>(_ value: T) throws { try CordonJSON.encode(value, into: node, codingPath) }
}
