import Testing
@testable import CordonScan

@Suite struct SemVerTests {
    /// semver.org §11 examples.
    @Test func semverOrgPrecedence() {
        expectStrictlyIncreasing([
            "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
            "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0",
        ], .npm)
        expectStrictlyIncreasing(["1.0.0", "2.0.0", "2.1.0", "2.1.1"], .npm)
    }

    @Test(arguments: [
        // numeric core, compared numerically, not lexically
        ["0.0.0", "0.0.1", "0.1.0", "0.9.9", "0.10.0", "1.0.0", "1.9.0", "1.10.0", "1.11.0", "10.0.0",
         "9007199254740993.0.0"],
        // numeric identifiers < alphanumeric; numeric numerically; ASCII order for text; more fields win
        ["1.0.0-0", "1.0.0-0.0", "1.0.0-1", "1.0.0-2", "1.0.0-10", "1.0.0-999", "1.0.0--", "1.0.0-0a",
         "1.0.0-A", "1.0.0-Z", "1.0.0-a", "1.0.0-a.0", "1.0.0-a.1", "1.0.0-a.1.0",
         "1.0.0-a.b", "1.0.0-a-b", "1.0.0-a10", "1.0.0-a2", "1.0.0-b", "1.0.0"],
        // pre-releases sit below their own release but above the previous one
        ["4.17.20", "4.17.21-0", "4.17.21-beta.1", "4.17.21", "4.17.22-rc.0", "5.0.0-alpha", "5.0.0"],
    ])
    func chains(_ chain: [String]) {
        expectStrictlyIncreasing(chain, .npm)
    }

    @Test(arguments: [
        ["1.0.0", "v1.0.0", "=1.0.0", "=v1.0.0", "V1.0.0", " 1.0.0 ", "1.0.0+build.1", "1.0.0+20130313144700",
         "1.0.0+0.build.1-rc.10000aaa-kk-0.1"],
        ["1.0.0-beta", "1.0.0-beta+exp.sha.5114f85", "v1.0.0-beta+001"],
        ["1.0.0-alpha.1", "1.0.0-alpha.1+001"],
    ])
    func equalSpellings(_ spellings: [String]) {
        expectAllEqual(spellings, .npm)
    }

    @Test func buildMetadataKeptButIgnored() throws {
        let v = try #require(SemVer("1.2.3-rc.1+linux.amd64"))
        #expect(v.major == "1" && v.minor == "2" && v.patch == "3")
        #expect(v.preRelease == [.alphanumeric("rc"), .numeric(Natural("1")!)])
        #expect(v.build == ["linux", "amd64"])
        #expect(v.description == "1.2.3-rc.1+linux.amd64")
    }

    @Test(arguments: [
        "", "v", "1", "1.0", "1.0.0.0", "01.0.0", "1.01.0", "1.0.01", "1.0.0-01", "1.0.0-", "1.0.0+",
        "1.0.0-a..b", "1.0.0+a..b", "a.b.c", "1.0.0-alpha_1", "-1.0.0", "1.0.0 beta", "1.0.0-α",
        "==1.0.0", "vv1.0.0", "1.0.0-beta+", "1.0.0+build+2", "1.0", ">=1.0.0", "^1.0.0", "1.x.0",
    ])
    func invalid(_ text: String) {
        #expect(SemVer(text) == nil)
        #expect(compareVersions(text, "1.0.0", ecosystem: .npm) == nil)
    }
}
