@testable import CordonPackaging
import Testing

/// Distribution file names and requirement lines: read strictly, every refusal saying where
/// and why.
struct DistributionFileTests {
    @Test func wheelsAndSdistsAreRead() throws {
        guard case .success(.wheel(let w)) = DistributionFile.parse("typing_extensions-4.8.0-py3-none-any.whl") else { Issue.record("no wheel"); return }
        #expect(w.name == "typing_extensions" && w.normalizedName == "typing-extensions" && w.version == "4.8.0" && w.build == nil && w.isPure)
        guard case .success(.wheel(let native)) = DistributionFile.parse("charset_normalizer-3.3.2-1build-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl") else {
            // A build tag must start with a digit: this one does.
            Issue.record("no wheel"); return
        }
        #expect(native.build == "1build" && !native.isPure && native.platformTags == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"])
        guard case .success(.wheel(let multi)) = DistributionFile.parse("six-1.16.0-py2.py3-none-any.whl") else { Issue.record("no wheel"); return }
        #expect(multi.pythonTags == ["py2", "py3"] && multi.isPure)
        guard case .success(.sdist(let s)) = DistributionFile.parse("zope.interface-6.1.tar.gz") else { Issue.record("no sdist"); return }
        #expect(s.normalizedName == "zope-interface" && s.version == "6.1" && s.suffix == ".tar.gz")
        guard case .success(.sdist(let old)) = DistributionFile.parse("python-dateutil-2.8.2.zip") else { Issue.record("no sdist"); return }
        #expect(old.normalizedName == "python-dateutil" && old.version == "2.8.2")
    }

    @Test(arguments: [
        ("requests-2.31.0-py3-none.whl", "5 or 6"), ("requests-2.31.0-x-py3-none-any.whl", "a build tag starts with a digit"),
        ("requests-two-py3-none-any.whl", "not a PEP 440 version"), ("-2.31.0-py3-none-any.whl", "not a package name"),
        ("requests-2.31.0-py3-none-an$y.whl", "bad platform tag"), ("requests-2.31.0-py3..x-none-any.whl", "bad python tag"),
        ("requests.tar.gz", "NAME-VERSION"), ("requests-2.31.0.tar.bz2", "neither a wheel"), ("../requests-2.31.0.tar.gz", "not a file name"),
        (".requests-2.31.0.tar.gz", "not a file name"), ("requests-2.31.0.tar.gz\n", "not a file name"), ("", "not a file name"),
    ])
    func badNamesAreRefused(_ name: String, _ says: String) {
        guard case .failure(let e) = DistributionFile.parse(name) else { Issue.record("\(name) parsed"); return }
        #expect(e.description.contains(says), "\(e.description)")
    }
}

struct RequirementsTests {
    static let h1 = String(repeating: "a", count: 64), h2 = String(repeating: "B", count: 64)

    @Test func aHashCheckedFileIsRead() throws {
        let text = """
            # pinned with hashes, as pip-compile writes them
            requests[socks,Security]==2.31.0 \\
                --hash=sha256:\(Self.h1) \\
                --hash sha256:\(Self.h2)
            urllib3>=1.21.1,<3 ; python_version >= "3.8"  # a comment
            Flask
            zope.interface===6.1\r

            """
        let r = try RequirementsFile.parse(text, source: "requirements.txt")
        #expect(r.count == 4)
        #expect(r[0].normalizedName == "requests" && r[0].extras == ["socks", "security"] && r[0].pinnedVersion == "2.31.0" && r[0].line == 2)
        #expect(r[0].hashes == ["sha256:\(Self.h1)", "sha256:\(Self.h2.lowercased())"] && r[0].sha256Hashes == [Self.h1, Self.h2.lowercased()])
        #expect(r[1].specifier == ">=1.21.1,<3" && r[1].pinnedVersion == nil && r[1].marker == "python_version >= \"3.8\"" && r[1].line == 5)
        #expect(r[2].name == "Flask" && r[2].specifier == "" && r[2].hashes.isEmpty)
        #expect(r[3].normalizedName == "zope-interface" && r[3].pinnedVersion == nil && r[3].line == 7)
        #expect(try RequirementsFile.parseLine("requests == 2.31.0", source: "argument", line: 1)?.pinnedVersion == "2.31.0")
        #expect(try RequirementsFile.parseLine("requests==2.*", source: "argument", line: 1)?.pinnedVersion == nil)
        #expect(try RequirementsFile.parseLine("   # only a comment", source: "argument", line: 1) == nil)
        // What a resolver is given: Cordon's reading, in one spelling.
        #expect(r.map(\.canonical) == ["requests[socks,security]==2.31.0 --hash=sha256:\(Self.h1) --hash=sha256:\(Self.h2.lowercased())",
                                        "urllib3>=1.21.1,<3 ; python_version >= \"3.8\"", "flask", "zope-interface===6.1"])
        let marker = try RequirementsFile.parseLine("foo ; (python_version >= '3.8' and sys_platform == \"linux\") or extra in 'a b'", source: "a", line: 1)
        #expect(marker?.marker == "(python_version >= '3.8' and sys_platform == \"linux\") or extra in 'a b'")
    }

    @Test(arguments: [
        ("-i https://evil.example/simple", "requirements.txt:1: -i is not taken here: the index, the sources and the rules come from the policy's [install] table"),
        ("--extra-index-url=https://evil.example/simple", "is not taken here"), ("-e .", "is not taken here"), ("-r other.txt", "is not taken here"),
        ("requests @ https://evil.example/requests.whl", "a URL, path or VCS link is not installed through the gate"),
        ("git+https://github.com/psf/requests", "a URL, path or VCS link"), ("./local-package", "a URL, path or VCS link"),
        ("requests==2.31.0 --hash=md5:abc", "--hash \"md5:abc\": expected sha256:HEX"), ("requests --hash=sha256:abc", "expected sha256:HEX"),
        ("--hash=sha256:\(String(repeating: "a", count: 64))", "--hash with no requirement before it"),
        ("requests===", "is not a PEP 440 version"), ("requests=2.31", "a version clause starts with"), ("requests==two", "not a PEP 440 version"),
        ("requests[a b]==1", "a space inside a name or version"), ("requests 2.31", "a space inside"), ("requests[a,]==1", "is not an extra's name"), ("requests[a==1", "no closing ']'"), ("re$quests", "\"$quests\": a version clause starts with"),
        ("requests ;", "an empty marker"), ("requests\u{0}", "a byte outside printable ASCII (0x0)"),
        ("requests\nRequests==2", "requirements.txt:2: Requests is required twice (line 1 too)"),
        ("# set \\\n--index-url https://evil.example/simple", "requirements.txt:1: a comment that ends in '\\'"),
        ("foo==1.0  # x\u{85}--index-url https://evil.example/simple", "requirements.txt:1: a byte outside printable ASCII (0xc2)"),
        ("foo==1.0\u{2028}evil==6.6.6", "a byte outside printable ASCII"), ("foo==1.0\revil==6.6.6", "a carriage return not followed by a line feed"),
        ("# coding: utf-7\nfoo==1.0 # +AAo-evil+AD0APQ-6.6.6", "requirements.txt:1: an encoding declaration"),
        ("foo==1.0 ; python_version > \"3\" --global-option=--evil", "the marker"),
        ("foo==1.0 ; python_version > \"3\" and os.system", "\"os.system\" is not a marker variable"),
        ("foo ; (python_version > \"3\"", "unbalanced '('"), ("foo ; python_version > \"3", "an unclosed string"),
        ("cordon_clean-1.0-py3-none-any.whl", "ends in .whl, which installers take for a file"), ("foo.tar.gz", "ends in .tar.gz"),
        ("requests==2.31.0 --hash=sha512:\(String(repeating: "a", count: 128))", "Cordon checks sha256"),
    ])
    func aRequestThatWouldWidenTheGateOrIsMalformedIsRefused(_ text: String, _ says: String) {
        #expect {
            _ = try RequirementsFile.parse(text, source: "requirements.txt")
        } throws: { error in
            let d = (error as? RequirementsError)?.description ?? "\(error)"
            if !d.contains(says) { Issue.record("\(d) does not say \(says)") }
            return true
        }
    }
}
