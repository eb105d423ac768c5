import CordonJSON
import Foundation
import Testing

/// `JSON(encoding:)` builds what Foundation's JSONEncoder (sorted keys) writes, as values: the
/// daemon stores task results with it, and serves them after `JSON.parse`, as it served what
/// Foundation wrote.
struct EncodingTests {
    enum Reason: String, Codable { case exited, timeout }
    struct Inner: Codable, Equatable { var name: String; var count: Int32 }
    struct Record: Codable {
        var reason: Reason
        var exitCode: Int32?
        var signal: Int32?
        var wall: Double
        var cpu: Double?
        var bytes: UInt64
        var small: UInt8
        var flags: [Bool]
        var inner: [Inner]
        var optionalInner: Inner?
        var map: [String: Int]
        var text: String
        var nested: [[String?]]
        var zebra: Int = 0
        var alpha: Int = 1
    }

    static let records = [
        Record(reason: .exited, exitCode: 0, signal: nil, wall: 0.125, cpu: nil, bytes: .max, small: 255, flags: [true, false],
               inner: [Inner(name: "/usr/bin/env", count: -1)], optionalInner: nil, map: ["b": 2, "a": 1],
               text: "é \"quoted\" \\ / \u{0}\u{1F}\u{7F}\u{2028} 😀", nested: [["x", nil], []]),
        Record(reason: .timeout, exitCode: nil, signal: 9, wall: 3, cpu: 1e-9, bytes: 0, small: 0, flags: [], inner: [],
               optionalInner: Inner(name: "", count: .max), map: [:], text: "", nested: []),
    ]

    @Test(arguments: 0..<records.count)
    func sameAsFoundation(_ n: Int) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let foundation = try JSON.parse(Array(try encoder.encode(Self.records[n])))
        let ours = try JSON(encoding: Self.records[n])
        #expect(ours.text == foundation.text)
        #expect(try JSONDecoder().decode(Record.self, from: Data(ours.text.utf8)).text == Self.records[n].text)
    }

    @Test func scalarsAndErrors() throws {
        #expect(try JSON(encoding: "x") == .string("x"))
        #expect(try JSON(encoding: [1, 2]) == .array([.int(1), .int(2)]))
        #expect(try JSON(encoding: UInt64.max) == .uint(.max))
        #expect(try JSON(encoding: Optional<Int>.none) == .null)
        #expect(throws: EncodingError.self) { try JSON(encoding: [Double.nan]) }
        #expect(throws: EncodingError.self) { try JSON(encoding: ["x": Double.infinity]) }
    }
}
