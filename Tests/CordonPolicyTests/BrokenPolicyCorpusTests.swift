import Foundation
import Testing
@testable import CordonPolicy

/// Every file under Fixtures/broken is a policy with one mistake; its first line says which
/// diagnostic it must produce: `# expect: line=N key=KEY.PATH message=TEXT` (line "-" for a
/// whole-file check). The line numbers count the header line.
struct BrokenPolicyCorpusTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/broken").path
    static let files: [String] = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".toml") }.sorted()

    @Test func corpusIsLarge() { #expect(Self.files.count >= 30) }

    @Test(arguments: files)
    func producesTheExpectedError(_ name: String) throws {
        let text = try String(contentsOfFile: "\(Self.directory)/\(name)", encoding: .utf8)
        let header = try #require(text.split(separator: "\n").first.map(String.init))
        let expectLine = try #require(header.range(of: "line=")).upperBound
        let keyStart = try #require(header.range(of: " key=")), messageStart = try #require(header.range(of: " message="))
        let line = Int(header[expectLine..<keyStart.lowerBound])
        let key = String(header[keyStart.upperBound..<messageStart.lowerBound])
        let message = String(header[messageStart.upperBound...])
        do {
            _ = try PolicyParser.parse(text: text, source: name, defaultName: "t")
            Issue.record("\(name) parsed without error")
        } catch {
            let match = error.diagnostics.contains { d in
                d.keyPath == key && d.message.contains(message) && (line == nil || d.line == line) && d.file == name
            }
            #expect(match, "\(name): expected line=\(line.map(String.init) ?? "-") key=\(key) message~\(message); got \(error.diagnostics)")
        }
    }
}
