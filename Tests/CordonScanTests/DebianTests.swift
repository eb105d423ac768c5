import Testing
@testable import CordonScan

@Suite struct DebianTests {
    /// Debian Policy §5.6.12: `~~ < ~~a < ~ < (end) < a`, letters before non-letters.
    @Test func policyTildeExample() {
        expectStrictlyIncreasing(["1.0~~", "1.0~~a", "1.0~", "1.0", "1.0a"], .debian)
    }

    @Test(arguments: [
        ["1.0~~", "1.0~~a", "1.0~", "1.0~beta1", "1.0~rc1", "1.0~rc2", "1.0", "1.0-0.1", "1.0-1",
         "1.0-1ubuntu1", "1.0-1ubuntu2", "1.0-2", "1.0A", "1.0a", "1.0b", "1.0+dfsg", "1.0.1", "1.1",
         "1.10", "2.0", "1:0.9", "1:1.0", "2:0.1"],
        // security-update style revisions
        ["7.88.1-10", "7.88.1-10+deb12u1", "7.88.1-10+deb12u5", "7.88.1-10+deb12u12", "7.88.1-11"],
        // backports and binNMUs
        ["2.36-9~bpo11+1", "2.36-9", "2.36-9+b1", "2.36-9+deb12u1", "2.36-9.1"],
        // digit runs are compared numerically, embedded zeros included
        ["0", "0.0.1", "0.9", "0.09a", "0.10", "1.2.3", "1.2.3a", "1.2.10", "1.20", "100"],
        // letters sort before non-letters: ubuntu1 < +b1 < .1
        ["3.0.11-1~deb12u1", "3.0.11-1~deb12u2", "3.0.11-1", "3.0.11-1ubuntu1", "3.0.11-1+b1", "3.0.11-1.1"],
    ])
    func chains(_ chain: [String]) {
        expectStrictlyIncreasing(chain, .debian)
    }

    @Test func epochBeatsUpstream() {
        #expect(compareVersions("1:0.9", "2.0", ecosystem: .debian) == .orderedDescending)
        #expect(compareVersions("1:1.0", "1:1.0-1", ecosystem: .debian) == .orderedAscending)
        #expect(compareVersions("10:1", "9:99", ecosystem: .debian) == .orderedDescending)
    }

    @Test(arguments: [
        ["1.0", "0:1.0", "00:1.0", "1.0-0", "1.00", "01.0", " 1.0 ", "1.0-00"],
        ["1.0-1", "0:1.0-01", "1.000-1"],
        ["2:1.2.3-4+deb12u1", "02:1.2.3-04+deb12u01"],
    ])
    func equalSpellings(_ spellings: [String]) {
        expectAllEqual(spellings, .debian)
    }

    @Test func components() throws {
        let v = try #require(DebianVersion("1:2.3-4-5ubuntu1"))
        #expect(v.epoch == 1 && v.upstream == "2.3-4" && v.revision == "5ubuntu1")
        let w = try #require(DebianVersion("2:1.0:1"))
        #expect(w.epoch == 2 && w.upstream == "1.0:1" && w.revision == "")
    }

    @Test(arguments: [
        "", "  ", "a1.0", "1.0-", ":1.0", "a:1.0", "1:", "1.0 1", "1.0_1", "1.0-1_2", "1.0-1:2", "-1",
        "1:-1", "-1:1.0", "1.0-a b", "99999999999:1.0", "1.0é", "~1.0", "1.0-1!",
    ])
    func invalid(_ text: String) {
        #expect(DebianVersion(text) == nil)
        #expect(compareVersions(text, "1.0", ecosystem: .debian) == nil)
    }
}
