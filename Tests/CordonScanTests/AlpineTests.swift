import Testing
@testable import CordonScan

@Suite struct AlpineTests {
    @Test func suffixAndRevisionOrdering() {
        expectStrictlyIncreasing([
            "0.1", "1.0_alpha", "1.0_alpha1", "1.0_alpha2", "1.0_beta", "1.0_beta1", "1.0_pre1", "1.0_rc1",
            "1.0_rc1-r1", "1.0", "1.0-r1", "1.0-r2", "1.0-r10", "1.0_cvs", "1.0_svn", "1.0_git", "1.0_hg",
            "1.0_p", "1.0_p1", "1.0_p1-r5", "1.0_p2", "1.0a", "1.0b", "1.0.1", "1.1", "1.10", "2.0",
        ], .alpine)
    }

    @Test(arguments: [
        // a version with more components is newer, unless the extra part is a pre-release suffix
        ["1", "1.0", "1.0.0", "1.0.0.1"],
        // suffix numbers: absent < 0 < 1 < 10
        ["1.0_rc", "1.0_rc0", "1.0_rc1", "1.0_rc10"],
        // multiple suffixes chain
        // (a trailing pre-release suffix loses to a number, a post-release suffix beats it)
        ["1.0_alpha_beta", "1.0_alpha1", "1.0_alpha_p", "1.0_beta_alpha"],
        // non-initial components with a leading zero compare as strings
        ["1.0", "1.00", "1.001", "1.01", "1.05", "1.1", "1.10"],
        // commit hash (apk-tools v3 `~hash`): token order makes it beat a bare revision,
        // lose to a _suffix, and compare hashes as strings
        ["1.0", "1.0-r1", "1.0-r2", "1.0~abc", "1.0~abc-r1", "1.0~abd", "1.0_p1"],
        ["8.3.0-r2", "8.4.0_rc1-r0", "8.4.0", "8.4.0-r0", "8.4.0-r1", "8.4.0_p1-r0", "8.4.1-r0"],
    ])
    func chains(_ chain: [String]) {
        expectStrictlyIncreasing(chain, .alpine)
    }

    @Test(arguments: [
        ["1.0", "01.0", "001.0"],
        ["1.0-r1", "1.0-r01"],
        ["1.0_p1", "1.0_p01"],
        ["1.2.3_rc2-r4", "1.2.3_rc02-r004"],
    ])
    func equalSpellings(_ spellings: [String]) {
        expectAllEqual(spellings, .alpine)
    }

    @Test(arguments: [
        "", "a1", "v1.0", "1.0A", "1.0ab", "1.0_foo", "1.0_", "1.0-r", "1.0-1", "1.0_rc1a", "1.0a.1",
        "1..0", "1.0-r1-r2", "1.0 ", " 1.0", "1.0~", "1.0-r1_p1", "1.0.", "1.0-r1~abc", "1.0a1", "_rc1",
    ])
    func invalid(_ text: String) {
        #expect(AlpineVersion(text) == nil)
        #expect(compareVersions(text, "1.0", ecosystem: .alpine) == nil)
    }
}
