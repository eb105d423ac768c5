import CordonJSON
import Foundation
import Testing

/// CordonJSON against CPython's `json` module (canonical.py beside this file says how both
/// sides reduce a parsed document to one comparable line).
enum Reference {
    static let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path
    static let repo = URL(fileURLWithPath: here).deletingLastPathComponent().deletingLastPathComponent().path
    /// JSON-Schema-Test-Suite's files (draft 2020-12), in ../shared/data beside the checkout.
    static let schemaSuite = URL(fileURLWithPath: repo).deletingLastPathComponent().appendingPathComponent("shared/data/json-schema-test-suite").path

    /// canonical.py's line for each file, in order.
    static func python(_ paths: [String], redump: Bool = false) throws -> [String] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = ["\(here)/canonical.py"] + (redump ? ["--redump"] : []) + paths
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "python3 canonical.py failed")
        return String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    static func canonical(_ value: JSON) -> String {
        switch value {
        case .null: return "n"
        case .bool(let b): return b ? "t" : "f"
        case .int(let n): return "i\(n)"
        case .uint(let n): return "i\(n)"
        case .double(let d):
            if let n = Int64(exactly: d) { return "i\(n)" }
            if let n = UInt64(exactly: d) { return "i\(n)" }
            return "d" + hex(d.bitPattern)
        case .string(let s): return text(s)
        case .array(let items): return "[" + items.map(canonical).joined(separator: ",") + "]"
        case .object:
            guard case .object(let members) = value.uniquingKeys() else { return "" }
            let sorted = members.sorted { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) }
            return "{" + sorted.map { text($0.0) + ":" + canonical($0.1) }.joined(separator: ",") + "}"
        }
    }

    static func text(_ s: String) -> String { "s" + s.utf8.map { String(format: "%02x", $0) }.joined() }
    static func hex(_ bits: UInt64) -> String { String(format: "%016llx", bits) }

    static func scratch() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-json-\(getpid())-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }
}

@Suite(.enabled(if: FileManager.default.fileExists(atPath: Reference.schemaSuite), "needs ../shared/data/json-schema-test-suite"))
struct SchemaTestSuiteCorpusTests {
    /// Every file parses; CPython reads the same document from it, from its compact text and
    /// from its indented text; and both texts read back to the same document, member order and
    /// repeats included.
    @Test func everyFileAgreesWithPython() throws {
        let files = FileManager.default.enumerator(atPath: Reference.schemaSuite)!.compactMap { $0 as? String }
            .filter { $0.hasSuffix(".json") }.sorted().map { "\(Reference.schemaSuite)/\($0)" }
        #expect(files.count >= 40, "the corpus has 46 files")
        let dir = try Reference.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var values: [JSON] = []
        var written: [String] = []
        for (n, file) in files.enumerated() {
            let value = try JSON.parse(Array(try Data(contentsOf: URL(fileURLWithPath: file))))
            values.append(value)
            for (kind, text) in [("compact", value.text), ("indented", value.text(JSON.Format(indent: "  ")))] {
                // (Compact text, since a number's type may change: 1.0 is written 1.)
                #expect(try JSON.parse(text).text == value.text, "\(file): \(kind) text reads back")
                let path = "\(dir)/\(n).\(kind).json"
                try text.write(toFile: path, atomically: false, encoding: .utf8)
                written.append(path)
            }
        }
        let reference = try Reference.python(files + written)
        try #require(reference.count == files.count * 3)
        for (n, file) in files.enumerated() {
            let ours = Reference.canonical(values[n])
            #expect(reference[n] == ours, "\(file)")
            #expect(reference[files.count + 2 * n] == ours, "\(file), compact")
            #expect(reference[files.count + 2 * n + 1] == ours, "\(file), indented")
        }
    }
}

/// Random documents (a fixed seed, so a failure repeats): CPython reads what CordonJSON writes
/// as the same document, and CordonJSON reads what CPython writes (every non-ASCII character
/// escaped, astral ones as surrogate pairs) as the same document.
struct RandomRoundTripTests {
    /// SplitMix64.
    struct Seeded: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let scalars: [Unicode.Scalar] = ["a", "Z", "0", " ", "\"", "\\", "/", "\u{0}", "\u{1}", "\u{8}", "\u{9}", "\u{A}",
                                            "\u{C}", "\u{D}", "\u{1F}", "\u{7F}", "\u{80}", "é", "\u{2028}", "\u{2029}",
                                            "中", "\u{FEFF}", "\u{FFFD}", "\u{FFFF}", "\u{1F600}", "\u{10FFFF}", "\u{E000}"]

    static func string(_ g: inout Seeded) -> String {
        var s = String.UnicodeScalarView()
        for _ in 0..<Int.random(in: 0...12, using: &g) { s.append(scalars.randomElement(using: &g)!) }
        return String(s)
    }

    static func number(_ g: inout Seeded) -> JSON {
        switch Int.random(in: 0..<8, using: &g) {
        case 0: return .int(Int64.random(in: .min ... .max, using: &g))
        case 1: return .int([Int64.min, Int64.max, 0, -1, 1, 1 << 53, (1 << 53) + 1].randomElement(using: &g)!)
        case 2: return .uint(UInt64.random(in: UInt64(Int64.max) + 1 ... .max, using: &g))
        case 3: return .double(Double.random(in: -1e6...1e6, using: &g))
        case 4: return .double([0.1, -0.0, .leastNonzeroMagnitude, 2.2250738585072014e-308, 1.7976931348623157e308, 1e15, 1e16, 1e21, 123456789.125, 1e-7].randomElement(using: &g)!)
        default:
            // Any finite double, from its bits.
            var d: Double
            repeat { d = Double(bitPattern: UInt64.random(in: .min ... .max, using: &g)) } while !d.isFinite
            return .double(d)
        }
    }

    static func value(_ g: inout Seeded, depth: Int) -> JSON {
        switch Int.random(in: 0..<(depth < 5 ? 9 : 6), using: &g) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &g))
        case 2, 3: return number(&g)
        case 4, 5: return .string(string(&g))
        case 6: return .array((0..<Int.random(in: 0...5, using: &g)).map { _ in value(&g, depth: depth + 1) })
        default:
            // Repeated keys on purpose now and then: both sides read the last.
            return .object((0..<Int.random(in: 0...5, using: &g)).map { _ in
                (Bool.random(using: &g) ? ["k", "key", ""].randomElement(using: &g)! : string(&g), value(&g, depth: depth + 1))
            })
        }
    }

    @Test func pythonReadsWhatWeWriteAndBack() throws {
        var g = Seeded(state: 0xC0_4D0)
        let documents = (0..<400).map { _ in Self.value(&g, depth: 0) }
        let dir = try Reference.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var paths: [String] = []
        for (n, doc) in documents.enumerated() {
            let text = doc.text
            #expect(try JSON.parse(text).text == text, "document \(n): text is a fixed point")
            let path = "\(dir)/\(n).json"
            try text.write(toFile: path, atomically: false, encoding: .utf8)
            paths.append(path)
        }
        let reference = try Reference.python(paths, redump: true)
        try #require(reference.count == documents.count)
        for (n, doc) in documents.enumerated() {
            let ours = Reference.canonical(doc)
            #expect(reference[n] == ours, "document \(n): \(doc.text)")
            let redumped = try JSON.parse(Array(try Data(contentsOf: URL(fileURLWithPath: paths[n] + ".python"))))
            #expect(Reference.canonical(redumped) == ours, "document \(n), as Python writes it")
        }
    }
}
