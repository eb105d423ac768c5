import CordonJSON
import Foundation
@testable import CordonPackaging
import Testing

/// PEP 691 project pages: what is kept of each file, and every way a page is refused, each
/// naming the member.
struct SimpleIndexTests {
    static let sha = String(repeating: "ab", count: 32)

    static func page(_ files: String, name: String = "Requests", api: String = "1.1") -> [UInt8] {
        Array(#"{"meta": {"api-version": "\#(api)", "_last-serial": 1}, "name": "\#(name)", "versions": ["2.31.0"], "files": [\#(files)]}"#.utf8)
    }

    static let wheel = #"{"filename": "requests-2.31.0-py3-none-any.whl", "url": "https://files.example/requests-2.31.0-py3-none-any.whl", "hashes": {"sha256": "\#(sha)"}, "requires-python": ">=3.7", "yanked": false, "upload-time": "2023-06-01T12:34:56.123456Z", "size": 62574, "core-metadata": {"sha256": "\#(sha)"}, "data-dist-info-metadata": {"sha256": "\#(sha)"}, "provenance": "https://pypi.example/integrity/requests/2.31.0/requests-2.31.0-py3-none-any.whl/provenance"}"#
    static let sdist = #"{"filename": "requests-2.31.0.tar.gz", "url": "../../files/requests-2.31.0.tar.gz", "hashes": {"SHA256": "\#(sha.uppercased())", "md5": "0123456789abcdef0123456789abcdef"}, "yanked": "broken build", "dist-info-metadata": true}"#

    @Test func aPageKeepsWhatTheGateDecidesOn() throws {
        let p = try SimpleIndex.parseProjectPage(Self.page(Self.wheel + ", " + Self.sdist), expected: "REQUESTS")
        #expect(p.name == "Requests" && p.normalizedName == "requests" && p.apiVersion == "1.1" && p.files.count == 2)
        let w = p.files[0]
        #expect(w.sha256 == Self.sha && w.requiresPython == ">=3.7" && w.yanked == nil && w.size == 62574 && w.coreMetadata)
        #expect(w.uploadTime == 1_685_622_896.123456)
        #expect(w.provenance?.hasSuffix("/provenance") == true)
        guard case .wheel(let wheel) = w.kind else { Issue.record("not a wheel: \(w.kind)"); return }
        #expect(wheel.isPure && wheel.version == "2.31.0")
        let s = p.files[1]
        #expect(s.kind.isSdist && s.url == "../../files/requests-2.31.0.tar.gz")
        #expect(s.hashes == ["sha256": Self.sha, "md5": "0123456789abcdef0123456789abcdef"], "hash names and digests lowercased")
        #expect(s.yanked == "broken build" && s.uploadTime == nil && s.coreMetadata && s.provenance == nil)
        let yankedTrue = try SimpleIndex.parseProjectPage(Self.page(Self.wheel.replacingFirst(#""yanked": false"#, with: #""yanked": true"#)), expected: "requests")
        #expect(yankedTrue.files[0].yanked == "")
    }

    @Test(arguments: [
        (#"{"filename": "requests-2.31.0-py3-none-any.whl", "url": "https://f.example/requests-2.31.0-py3-none-any.whl"}"#, "files[0].hashes: missing, or not an object"),
        (#"{"filename": "requests-2.31.0-py3-none-any.whl", "url": "https://f.example/requests-2.31.0-py3-none-any.whl", "hashes": {"sha256": "abc"}}"#, "files[0].hashes.sha256: 3 hex digits, not 64"),
        (#"{"filename": "requests-2.31.0-py3-none-any.whl", "url": "https://f.example/requests-2.31.0-py3-none-any.whl", "hashes": {"sha256": "zz"}}"#, "files[0].hashes.sha256: expected a hex digest"),
        (#"{"filename": "evil-1.0-py3-none-any.whl", "url": "https://f.example/evil-1.0-py3-none-any.whl", "hashes": {}}"#, #"files[0].filename: "evil-1.0-py3-none-any.whl" is a file of "evil", not of "requests""#),
        (#"{"filename": "requests-2.31.0-py3-none-any.whl", "url": "https://f.example/evil-6.6.6.tar.gz", "hashes": {}}"#, #"files[0].url: its last segment "evil-6.6.6.tar.gz" is not the file's name"#),
        (#"{"filename": "requests-2.31.0-py3-none-any.whl", "url": "https://f.example/requests-2.31.0-py3-none-any.whl?x=1", "hashes": {}}"#, "files[0].url: empty, with a query or fragment"),
        (#"{"filename": "requests-2.31.0-py3-none-any.whl", "url": "https://f.example/requests-2.31.0-py3-none-any.whl#sha256=00", "hashes": {}}"#, "files[0].url: empty, with a query or fragment"),
        (#"{"filename": "requests-2.31.0-py3-none-any.whl", "url": "https://f.example/requests-2.31.0-py3-none-any.whl", "hashes": {}}, {"filename": "requests-2.31.0-py3-none-any.whl", "url": "https://g.example/requests-2.31.0-py3-none-any.whl", "hashes": {}}"#, #"files[1].filename: "requests-2.31.0-py3-none-any.whl" is listed twice"#),
        (#"{"filename": "requests-2.31.0-py3-none-any.whl", "url": "has space", "hashes": {}}"#, "files[0].url: empty, with a query or fragment, or not printable ASCII"),
        (#"{"filename": "requests-2.31.0-py3-none-any.whl", "url": "https://f.example/requests-2.31.0-py3-none-any.whl", "hashes": {}, "yanked": 1}"#, "files[0].yanked: expected a boolean or a string, found integer"),
        (#"{"filename": "requests-2.31.0-py3-none-any.whl", "url": "https://f.example/requests-2.31.0-py3-none-any.whl", "hashes": {}, "upload-time": "2023-06-01 12:34:56"}"#, "files[0].upload-time: \"2023-06-01 12:34:56\" is not an ISO 8601 UTC time"),
        (#"{"filename": "requests-2.31.0-py3-none-any.whl", "url": "https://f.example/requests-2.31.0-py3-none-any.whl", "hashes": {}, "upload-time": "2023-06-01T12:34:56+02:00"}"#, "files[0].upload-time:"),
        (#"{"filename": "requests-2.31.0-py3-none-any.whl", "url": "https://f.example/requests-2.31.0-py3-none-any.whl", "hashes": {}, "size": -1}"#, "files[0].size: expected a non-negative integer"),
        (#"{"filename": "requests-2.31.0-py3-none-any.whl", "url": "https://f.example/requests-2.31.0-py3-none-any.whl", "hashes": {}, "provenance": ""}"#, "files[0].provenance: expected a URL or null"),
        (#"{"filename": "requests-2.31.0-py3-none-any.whl", "url": "https://f.example/requests-2.31.0-py3-none-any.whl", "hashes": {"sha256": "\#(sha)", "SHA256": "\#(String(repeating: "cd", count: 32))"}}"#, "files[0].hashes.sha256: given twice, with two values"),
        (#""requests-2.31.0-py3-none-any.whl""#, "files[0]: expected an object, found string"),
    ])
    func aBadFileRefusesThePage(_ file: String, _ says: String) {
        #expect {
            _ = try SimpleIndex.parseProjectPage(Self.page(file), expected: "requests")
        } throws: { error in
            (error as? IndexPageError)?.description.contains(says) == true
        }
    }

    @Test func aPageThatIsNotPEP691OrNotThisProjectsIsRefused() throws {
        func refusal(_ bytes: [UInt8], _ expected: String = "requests") -> String {
            do { _ = try SimpleIndex.parseProjectPage(bytes, expected: expected); return "" } catch { return error.description }
        }
        #expect(refusal(Self.page("", api: "2.0")).contains("meta.api-version: \"2.0\": only version 1"))
        #expect(refusal(Array(#"{"name": "requests", "files": []}"#.utf8)).contains("meta.api-version: missing"))
        #expect(refusal(Self.page(""), "urllib3").contains("name: the page is for \"Requests\", not \"urllib3\""))
        #expect(refusal(Self.page("", name: "re quests")).contains("is not a package name"))
        #expect(refusal(Array("<html>".utf8)).contains("not JSON"))
        #expect(refusal(Array("[]".utf8)).contains("expected an object, found array"))
        var small = SimpleIndex.Limits()
        small.maxFiles = 1
        #expect((try? SimpleIndex.parseProjectPage(Self.page(Self.wheel + ", " + Self.wheel), expected: "requests", limits: small)) == nil)
        small.maxBytes = 100
        #expect((try? SimpleIndex.parseProjectPage(Self.page(Self.wheel), expected: "requests", limits: small)) == nil)
        #expect(try SimpleIndex.parseProjectPage(Self.page(""), expected: "requests").files.isEmpty)
    }

    /// What is neither a wheel nor an sdist this gate reads is skipped (and said), not fatal to
    /// the page; a percent-encoded URL names the same file; an sdist's version may hold '-'.
    @Test func filesTheGateDoesNotReadAreSkipped() throws {
        let p = try SimpleIndex.parseProjectPage(Self.page(#"""
            {"filename": "requests-0.2.egg", "url": "x/requests-0.2.egg", "hashes": {}},
            {"filename": "requests-2.0.tar.bz2", "url": "x/requests-2.0.tar.bz2", "hashes": {}},
            {"filename": "requests- 1.0-py3-none-any.whl", "url": "x/y", "hashes": {}},
            {"filename": "requests-2.31.0-1.tar.gz", "url": "https://f.example/p/requests-2.31.0-1.tar.gz", "hashes": {"sha256": "\#(Self.sha)"}},
            {"filename": "requests-2.31.0+local-py3-none-any.whl", "url": "https://f.example/requests-2.31.0%2Blocal-py3-none-any.whl", "hashes": {}}
            """#), expected: "requests")
        #expect(p.skipped.map(\.filename) == ["requests-0.2.egg", "requests-2.0.tar.bz2", "requests- 1.0-py3-none-any.whl"], "\(p.skipped)")
        #expect(p.skipped[0].reason.contains("neither a wheel"))
        #expect(p.files.map(\.filename) == ["requests-2.31.0-1.tar.gz", "requests-2.31.0+local-py3-none-any.whl"])
        #expect(p.files[0].kind.version == "2.31.0-1" && p.files[0].kind.normalizedName == "requests")
    }

    @Test func timestampsReadAndWriteUTC() {
        for (text, seconds) in [("2023-06-01T12:34:56.123456Z", 1_685_622_896.123456), ("2000-02-29T00:00:00Z", 951_782_400),
                                ("1970-01-01T00:00:00Z", 0), ("2026-12-06T12:00:00+00:00", 1_796_558_400), ("9999-12-31T23:59:59Z", 253_402_300_799),
                                ("2026-12-06t12:00:00z", 1_796_558_400)] {
            #expect(Timestamp.parse(text) == seconds, "\(text)")
        }
        for bad in ["2023-02-29T00:00:00Z", "2023-13-01T00:00:00Z", "2023-06-01T24:00:00Z", "2023-06-01T12:34:56", "2023-06-01T12:34:56.Z",
                    "1969-12-31T23:59:59Z", "2023-06-01T12:34:56+01:00", "2023-6-1T12:34:56Z", "", "2023-06-01T12:34:60Z"] {
            #expect(Timestamp.parse(bad) == nil, "\(bad)")
        }
        #expect(Timestamp.format(1_796_558_400) == "2026-12-06T12:00:00Z" && Timestamp.format(951_782_400.9) == "2000-02-29T00:00:00Z")
        #expect(Timestamp.format(0) == "1970-01-01T00:00:00Z")
        // Every day of 1970–2100 round-trips (the two calendar functions agree with each other).
        for day in stride(from: Int64(0), to: 47_847, by: 1) {
            let (y, m, d) = Timestamp.civilFromDays(day)
            if Timestamp.daysFromCivil(y, m, d) != day { Issue.record("day \(day) -> \(y)-\(m)-\(d)"); break }
        }
    }
}

extension String {
    func replacingFirst(_ target: String, with replacement: String) -> String {
        guard let r = range(of: target) else { return self }
        return replacingCharacters(in: r, with: replacement)
    }
}
