@testable import CordonPackaging
import Foundation
import Testing

/// The target interpreter's wheel tags and Requires-Python, checked against the real thing:
/// the tag list pip itself computes (its vendored `packaging.tags`) for this machine's Python.
struct PythonTargetTests {
    static let python = "/usr/bin/python3"

    static func output(_ args: [String]) -> String? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return p.terminationStatus == 0 ? String(decoding: data, as: UTF8.self) : nil
    }

    static let pipTags: [String]? = output(["-c", "from pip._vendor.packaging import tags\nfor t in tags.sys_tags(): print(t)"])?
        .split(separator: "\n").map(String.init)

    @Test(.enabled(if: pipTags != nil, "needs pip for /usr/bin/python3"))
    func theTagsArePipsInPipsOrder() throws {
        let line = try #require(Self.output(["-I", "-S", "-c", PythonTarget.describeScript]))
        let target = try #require(PythonTarget.parse(line), "\(line)")
        // packaging before 22 (pip 23.0's) leaves out INTERPRETER-none-any, which later ones
        // put after the platform tags, as Cordon does; compared without it.
        let interpreterAny = "cp\(target.version[0])\(target.version[1])-none-any"
        let mine = target.tags.filter { $0 != interpreterAny }, pips = Self.pipTags!.filter { $0 != interpreterAny }
        #expect(mine.count == pips.count)
        let first = zip(mine, pips).enumerated().first { $0.element.0 != $0.element.1 }
        #expect(first == nil, "first difference at \(first?.offset ?? 0): \(first.map { "\($0.element.0) vs pip's \($0.element.1)" } ?? "")")
    }

    @Test func wheelsAreRankedByTheirBestTag() throws {
        let target = PythonTarget(version: [3, 11, 2], implementation: "cpython", machine: "x86_64", glibc: (2, 36))
        let table = target.tagTable
        func rank(_ filename: String) -> Int? {
            guard case .success(.wheel(let w)) = DistributionFile.parse(filename) else { return nil }
            return target.rank(w, in: table)
        }
        let binary = try #require(rank("markupsafe-2.1.5-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"))
        let abi3 = try #require(rank("cryptography-42.0.0-cp39-abi3-manylinux_2_28_x86_64.whl"))
        let pure = try #require(rank("requests-2.31.0-py3-none-any.whl"))
        let both = try #require(rank("six-1.16.0-py2.py3-none-any.whl"))
        #expect(binary < abi3 && abi3 < pure)
        #expect(both == pure)
        #expect(rank("markupsafe-2.1.5-cp312-cp312-manylinux_2_17_x86_64.whl") == nil, "another CPython's ABI")
        #expect(rank("numpy-2.0.0-cp311-cp311-musllinux_1_1_x86_64.whl") == nil, "musl on glibc")
        #expect(rank("x-1.0-cp311-cp311-manylinux_2_39_x86_64.whl") == nil, "a newer glibc than the target's")
        #expect(rank("x-1.0-cp311-cp311-manylinux_2_17_aarch64.whl") == nil, "another machine")
        #expect(rank("x-1.0-cp311-cp311-win_amd64.whl") == nil)
    }

    @Test func requiresPython() {
        let target = PythonTarget(version: [3, 11, 2], implementation: "cpython", machine: "x86_64", glibc: (2, 36))
        for spec in [">=3.8", ">=3.7, <4", "!=3.0.*,!=3.1.*,!=3.2.*,>=2.7", "~=3.10", "==3.11.*", ">3.11.1", "<=3.11.2", "", " >= 3.6 "] {
            #expect(target.admits(requiresPython: spec) == true, "\(spec)")
        }
        for spec in [">=3.12", "<3.11", "==3.10.*", "!=3.11.*", "~=3.12", "~=3.11.3", ">3.11.2", "==2.7"] {
            #expect(target.admits(requiresPython: spec) == false, "\(spec)")
        }
        for spec in ["3.8", ">=three", "=>3.8", "<3.*"] {
            #expect(target.admits(requiresPython: spec) == nil, "\(spec)")
        }
        #expect(PythonTarget.parse("cpython 3.11.2 x86_64 2.36\n") == target)
        #expect(PythonTarget.parse("cpython 3.11.2 x86_64 -")?.glibc == nil)
        #expect(PythonTarget.parse("cpython 3.11 x86_64 2.36") == nil)
        #expect(PythonTarget.parse("cpython 3.11.2 x86/64 2.36") == nil)
    }
}
