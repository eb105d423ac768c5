import CordonJSON
import Testing

/// `parseWithKeyOffsets`: where each member's key starts, for findings that name a line.
struct KeyOffsetTests {
    static let text = #"{"name":"x","scripts":{"test":"jest","postinstall":"node a.js"},"list":[{"k":1},2,[{"deep":true}]]}"#

    func offset(of needle: String, after start: Int = 0) -> Int {
        let bytes = Array(Self.text.utf8), n = Array(needle.utf8)
        return (start...(bytes.count - n.count)).first { bytes[$0..<$0 + n.count].elementsEqual(n) }!
    }

    @Test func membersAndPaths() throws {
        let (value, keys) = try JSON.parseWithKeyOffsets(Array(Self.text.utf8))
        #expect(value == (try JSON.parse(Self.text)))
        #expect(keys["name"] == 1)
        #expect(keys["scripts"] == offset(of: #""scripts""#))
        #expect(keys["scripts", "postinstall"] == offset(of: #""postinstall""#))
        #expect(keys["list", 0, "k"] == offset(of: #""k""#))
        #expect(keys["list", 2, 0, "deep"] == offset(of: #""deep""#))
        #expect(keys.offset(ofKeyAt: ["scripts", .key("test")]) == offset(of: #""test""#))
    }

    @Test func absentPaths() throws {
        let (_, keys) = try JSON.parseWithKeyOffsets(Array(Self.text.utf8))
        #expect(keys["missing"] == nil)
        #expect(keys["name", "x"] == nil, "a string has no members")
        #expect(keys["list", 1, "k"] == nil, "an integer has no members")
        #expect(keys["list", 5, "k"] == nil)
        #expect(keys["list", 0] == nil, "the last component names a key")
        #expect(keys.offset(ofKeyAt: []) == nil)
        #expect(try JSON.parseWithKeyOffsets(Array("1".utf8)).keyOffsets["a"] == nil)
        #expect(try JSON.parseWithKeyOffsets(Array(#"["a"]"#.utf8)).keyOffsets[0, "a"] == nil)
    }

    /// A repeated key gives its last occurrence: the member `subscript` reads. A member shadowed
    /// by a later repeat is not reachable, even when a path through it would match.
    @Test func repeatedKeys() throws {
        let text = #"{"s":{"a":1,"b":2},"s":{"a":3}}"#
        let (value, keys) = try JSON.parseWithKeyOffsets(Array(text.utf8))
        #expect(value["s"]?["a"] == .int(3))
        #expect(keys["s"] == 19)
        #expect(keys["s", "a"] == 24)
        #expect(keys["s", "b"] == nil)
    }

    /// Offsets are those of the input: escapes and multi-byte text before a key count as bytes.
    @Test func offsetsCountInputBytes() throws {
        let text = "{\"é\\n\":\"\\u00e9😀\",\n  \"k\":0}"
        #expect(try JSON.parseWithKeyOffsets(Array(text.utf8)).keyOffsets["k"] == 24)
    }
}
