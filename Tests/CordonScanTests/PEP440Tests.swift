import Testing
@testable import CordonScan

@Suite struct PEP440Tests {
    /// PEP 440 §"Summary of permitted suffixes and relative ordering" example, verbatim order.
    @Test func pepExampleOrdering() {
        expectStrictlyIncreasing([
            "1.dev0", "1.0.dev456", "1.0a1", "1.0a2.dev456", "1.0a12.dev456", "1.0a12",
            "1.0b1.dev456", "1.0b2", "1.0b2.post345.dev456", "1.0b2.post345",
            "1.0rc1.dev456", "1.0rc1", "1.0", "1.0+abc.5", "1.0+abc.7", "1.0+5",
            "1.0.post456.dev34", "1.0.post456", "1.0.15", "1.1.dev1",
        ], .pypi)
    }

    @Test(arguments: [
        // dev < pre < release < post, with dev attached to each phase
        ["1.0.dev1", "1.0a1.dev1", "1.0a1", "1.0a1.post1.dev1", "1.0a1.post1", "1.0b1", "1.0rc1", "1.0",
         "1.0.post1.dev1", "1.0.post1", "1.0.post2", "1.0.1.dev0", "1.0.1"],
        // epochs dominate everything
        ["0.1", "2.0", "2013.10", "1!0.0.dev1", "1!0.1", "1!1.0", "2!0.0.1"],
        // release segments numerically, any length
        ["0.9", "0.9.1", "0.10", "1.0.0.0.1", "1.1", "1.10", "1.100", "10.0", "18446744073709551616.0"],
        // local versions per PEP 440: alnum < numeric, numeric numerically, prefix shorter first
        ["1.0", "1.0+abc", "1.0+abc.0", "1.0+abd", "1.0+ubuntu.1", "1.0+ubuntu.2", "1.0+ubuntu.10",
         "1.0+0", "1.0+1", "1.0+1.abc", "1.0+1.0", "1.0+2", "1.0.post1"],
        // pre-release kinds and numbers
        ["1.0a", "1.0a1", "1.0a2", "1.0a10", "1.0b0", "1.0b1", "1.0c1", "1.0rc2", "1.0"],
    ])
    func chains(_ chain: [String]) {
        expectStrictlyIncreasing(chain, .pypi)
    }

    @Test(arguments: [
        ["1.0", "1.0.0", "1.0.0.0", "1", "01.00", "v1.0", "V1.0", " 1.0\n", "0!1.0", "00!1.0"],
        ["1.0a1", "1.0alpha1", "1.0-a1", "1.0_ALPHA.1", "1.0.a.1", "v1.0a1", "1.0A1", "1.0a01", "1.0a-1"],
        ["1.0b2", "1.0beta2", "1.0.beta.2", "1.0-b-2"],
        ["1.0rc1", "1.0c1", "1.0pre1", "1.0preview1", "1.0-rc-1", "1.0RC1", "1.0.rc.1"],
        // Appendix B regex allows a dangling separator after the label: "1.0a-" is 1.0a0.
        ["1.0a", "1.0a0", "1.0alpha", "1.0-a", "1.0a-", "1.0.alpha."],
        ["1.0.post1", "1.0-1", "1.0post1", "1.0.rev1", "1.0r1", "1.0-r1", "1.0_post_1", "1.0.POST1"],
        ["1.0.post", "1.0.post0", "1.0post", "1.0-post", "1.0r"],
        ["1.0.dev", "1.0.dev0", "1.0-dev0", "1.0dev", "1.0_DEV"],
        ["1.0+ubuntu.1", "1.0+Ubuntu-1", "1.0+ubuntu_1", "1.0+ubuntu.01"],
        ["1!2.0.post3.dev4", "1!2.0-3.dev4", "1!2.0.0r3dev4"],
    ])
    func equalSpellings(_ spellings: [String]) {
        expectAllEqual(spellings, .pypi)
    }

    @Test func epochsAreNotEqual() {
        #expect(compareVersions("1!0.0", "0.0", ecosystem: .pypi) == .orderedDescending)
        #expect(compareVersions("1!1.0", "1.0", ecosystem: .pypi) == .orderedDescending)
        #expect(PEP440Version("1.0") != PEP440Version("1.0+local"))
    }

    @Test func normalisedDescription() {
        #expect(PEP440Version("V1!2.0.0-RC-3_post.4-dev5+Ubuntu-1")?.description == "1!2.0.0rc3.post4.dev5+ubuntu.1")
        #expect(PEP440Version("1.0-1")?.description == "1.0.post1")
        #expect(PEP440Version("1.0preview")?.description == "1.0rc0")
    }

    @Test(arguments: [
        "", "   ", "abc", "v", "1.0-", "1..0", "1.0.", "1.0+", "1.0+a..b", "1.0+a+b", "1.0a1a",
        "1!", "!1.0", "1!2!3", "1.0.post1.post2", "1.0 .1", "1.0dev1a1", "1.0.dev1.post1",
        "1.0 beta", "١.0", "1.0+ü", "-1.0", "1.0_", "1.0rc1rc2", "1.0..dev1",
    ])
    func invalid(_ text: String) {
        #expect(PEP440Version(text) == nil)
        #expect(compareVersions(text, "1.0", ecosystem: .pypi) == nil)
        #expect(compareVersions("1.0", text, ecosystem: .pypi) == nil)
    }
}
