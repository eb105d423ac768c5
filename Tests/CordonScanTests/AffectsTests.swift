import Testing
@testable import CordonScan

private typealias R = OSVRecord

private func pkg(_ eco: String, _ name: String, _ ranges: [R.Range] = [], versions: [String] = []) -> R.Affected {
    R.Affected(package: R.Package(ecosystem: eco, name: name), ranges: ranges, versions: versions)
}
private func eco(_ events: R.Event...) -> R.Range { R.Range(type: .ecosystem, events: events) }
private func semver(_ events: R.Event...) -> R.Range { R.Range(type: .semver, events: events) }

/// Modelled on PYSEC/GHSA Django advisories: three introduced/fixed pairs in one range.
private let django = R(id: "PYSEC-0000-django", aliases: ["CVE-0000-0001"], summary: "django", affected: [
    pkg("PyPI", "Django", [eco(.introduced("0"), .fixed("3.2.19"),
                               .introduced("4.0"), .fixed("4.1.9"),
                               .introduced("4.2a1"), .fixed("4.2.1"))]),
])
private let zope = R(id: "PYSEC-zope", affected: [
    pkg("PyPI", "zope.interface", [eco(.introduced("1.0"), .lastAffected("5.1.0"))]),
])
private let epochs = R(id: "PYSEC-epoch", affected: [
    pkg("PyPI", "epochpkg", [eco(.introduced("1!0"), .fixed("1!2.0"))]),
])
private let listed = R(id: "PYSEC-listed", affected: [pkg("PyPI", "listpkg", versions: ["1.0", "1.1", "2.0rc1"])])
private let withdrawn = R(id: "PYSEC-withdrawn", withdrawn: "2024-01-01T00:00:00Z", affected: django.affected)
private let unsortedAndMulti = R(id: "PYSEC-multi", affected: [
    pkg("PyPI", "multi", [eco(.fixed("1.5"), .introduced("1.0")),           // events out of order
                          eco(.introduced("2.0"), .lastAffected("2.3"))]),
])
private let lodash = R(id: "GHSA-lodash", affected: [
    pkg("npm", "lodash", [semver(.introduced("0"), .fixed("4.17.21"))]),
])
private let babel = R(id: "GHSA-babel", affected: [
    pkg("npm", "@babel/traverse", [semver(.introduced("0"), .fixed("7.23.2")),
                                   semver(.introduced("8.0.0-alpha.0"), .fixed("8.0.0-alpha.4"))]),
])
private let limited = R(id: "GHSA-limit", affected: [
    pkg("npm", "limitpkg", [semver(.introduced("1.0.0"), .limit("2.0.0"))]),
])
private let semverOnPyPI = R(id: "PYSEC-semver", affected: [
    pkg("PyPI", "semverpy", [semver(.introduced("1.0.0"), .fixed("1.2.0"))]),
])
private let gitOnly = R(id: "OSV-git", affected: [
    pkg("PyPI", "gitonly", [R.Range(type: .git, events: [.introduced("abc123"), .fixed("def456")])]),
    pkg("PyPI", "gitlisted", [R.Range(type: .git, events: [.introduced("abc123")])], versions: ["1.0"]),
])
private let openssl = R(id: "DSA-openssl", affected: [
    pkg("Debian:12", "openssl", [eco(.introduced("0"), .fixed("3.0.11-1~deb12u2"))]),
])
private let curl = R(id: "ALPINE-curl", affected: [
    pkg("Alpine:v3.18", "curl", [eco(.introduced("0"), .fixed("8.4.0-r0"))]),
])
private let broken = R(id: "OSV-broken", affected: [
    pkg("PyPI", "badevent", [eco(.introduced("0"), .fixed("not a version"))]),
    pkg("PyPI", "badlist", versions: ["garbage", "1.0"]),
    pkg("PyPI", "empty"),
])

struct AffectsCase: CustomTestStringConvertible, Sendable {
    let record: OSVRecord
    let ecosystem: Ecosystem
    let name: String
    let version: String
    let expected: Bool
    var testDescription: String { "\(record.id) \(ecosystem.rawValue) \(name)@\(version) → \(expected)" }
}

private func c(_ r: OSVRecord, _ e: Ecosystem, _ n: String, _ v: String, _ x: Bool) -> AffectsCase {
    AffectsCase(record: r, ecosystem: e, name: n, version: v, expected: x)
}

private let cases: [AffectsCase] = [
    // introduced/fixed pairs, pre/post/dev/local at the boundaries
    c(django, .pypi, "Django", "3.2.18", true),
    c(django, .pypi, "Django", "3.2.19", false),
    c(django, .pypi, "Django", "3.2.19.dev1", true),        // dev of the fix is still before it
    c(django, .pypi, "Django", "3.2.19rc1", true),
    c(django, .pypi, "Django", "3.2.19.post1", false),
    c(django, .pypi, "Django", "3.2.18+local.1", true),
    c(django, .pypi, "Django", "3.2.19+local.1", false),
    c(django, .pypi, "Django", "4.0a1", false),             // pre-release of introduced is before it
    c(django, .pypi, "Django", "4.0", true),
    c(django, .pypi, "Django", "4.0.0", true),
    c(django, .pypi, "Django", "4.1.8", true),
    c(django, .pypi, "Django", "4.1.9", false),
    c(django, .pypi, "Django", "4.2.dev0", false),          // dev < 4.2a1
    c(django, .pypi, "Django", "4.2a1", true),
    c(django, .pypi, "Django", "4.2", true),
    c(django, .pypi, "Django", "4.2.1rc1", true),
    c(django, .pypi, "Django", "4.2.1", false),
    c(django, .pypi, "Django", "1!1.0", false),             // epoch 1 is past every fix
    // names: PEP 503 normalisation, ecosystem must match
    c(django, .pypi, "django", "3.2.18", true),
    c(django, .pypi, "DJANGO", "3.2.18", true),
    c(django, .pypi, "djangoo", "3.2.18", false),
    c(django, .npm, "Django", "3.2.18", false),
    c(zope, .pypi, "zope-interface", "5.1.0", true),        // last_affected is inclusive
    c(zope, .pypi, "Zope_Interface", "5.1", true),
    c(zope, .pypi, "zope..interface", "5.1.0rc1", true),
    c(zope, .pypi, "zope.interface", "5.1.0.post1", false),
    c(zope, .pypi, "zope.interface", "5.1.1.dev1", false),
    c(zope, .pypi, "zope.interface", "1.0.dev1", false),
    c(zope, .pypi, "zope.interface", "0.9", false),
    // epochs
    c(epochs, .pypi, "epochpkg", "3.0", false),
    c(epochs, .pypi, "epochpkg", "1!1.5", true),
    c(epochs, .pypi, "epochpkg", "1!2.0rc1", true),
    c(epochs, .pypi, "epochpkg", "1!2.0", false),
    // explicit versions lists compare by the ecosystem's equality
    c(listed, .pypi, "listpkg", "1.0.0", true),
    c(listed, .pypi, "listpkg", "v1.1", true),
    c(listed, .pypi, "listpkg", "2.0-rc-1", true),
    c(listed, .pypi, "listpkg", "1.2", false),
    c(listed, .pypi, "listpkg", "2.0", false),
    // withdrawn
    c(withdrawn, .pypi, "Django", "3.2.18", false),
    // several ranges, unsorted events, last_affected in a second range
    c(unsortedAndMulti, .pypi, "multi", "1.4", true),
    c(unsortedAndMulti, .pypi, "multi", "1.6", false),
    c(unsortedAndMulti, .pypi, "multi", "2.3", true),
    c(unsortedAndMulti, .pypi, "multi", "2.3.1", false),
    c(unsortedAndMulti, .pypi, "multi", "0.9", false),
    // npm SEMVER ranges, scoped names compared as-is
    c(lodash, .npm, "lodash", "4.17.20", true),
    c(lodash, .npm, "lodash", "4.17.21", false),
    c(lodash, .npm, "lodash", "4.17.21-beta.1", true),
    c(lodash, .npm, "lodash", "v4.17.20", true),
    c(lodash, .npm, "lodash", "4.17", false),               // not SemVer: no match, no crash
    c(babel, .npm, "@babel/traverse", "7.23.1", true),
    c(babel, .npm, "@babel/traverse", "7.23.2", false),
    c(babel, .npm, "@babel/traverse", "8.0.0-alpha.3", true),
    c(babel, .npm, "@babel/traverse", "8.0.0-alpha.4", false),
    c(babel, .npm, "@babel/traverse", "8.0.0", false),
    c(babel, .npm, "@Babel/traverse", "7.23.1", false),
    // limit is exclusive
    c(limited, .npm, "limitpkg", "1.5.0", true),
    c(limited, .npm, "limitpkg", "2.0.0", false),
    c(limited, .npm, "limitpkg", "2.0.0-rc.1", true),
    c(limited, .npm, "limitpkg", "0.9.0", false),
    // SEMVER range on a PyPI package uses SemVer, not PEP 440
    c(semverOnPyPI, .pypi, "semverpy", "1.1.0", true),
    c(semverOnPyPI, .pypi, "semverpy", "1.2.0", false),
    c(semverOnPyPI, .pypi, "semverpy", "1.1", false),
    // GIT ranges never match package versions; explicit versions still do
    c(gitOnly, .pypi, "gitonly", "1.0", false),
    c(gitOnly, .pypi, "gitlisted", "1.0", true),
    // Debian and Alpine with release-qualified ecosystems
    c(openssl, .debian, "openssl", "3.0.11-1~deb12u1", true),
    c(openssl, .debian, "openssl", "3.0.11-1~deb12u2", false),
    c(openssl, .debian, "openssl", "3.0.11-1", false),
    c(openssl, .debian, "openssl", "3.0.9-1", true),
    c(openssl, .debian, "openssl", "1:1.0", false),
    c(openssl, .alpine, "openssl", "3.0.9-1", false),
    c(curl, .alpine, "curl", "8.3.0-r2", true),
    c(curl, .alpine, "curl", "8.4.0_rc1-r0", true),
    c(curl, .alpine, "curl", "8.4.0-r0", false),
    c(curl, .alpine, "curl", "8.4.0_p1-r0", false),
    // unparsable inputs never match and never crash
    c(django, .pypi, "Django", "not-a-version", false),
    c(django, .pypi, "Django", "", false),
    c(curl, .alpine, "curl", "8.3.0 r2", false),
    c(openssl, .debian, "openssl", "~bad", false),
    c(broken, .pypi, "badevent", "1.0", false),
    c(broken, .pypi, "badlist", "1.0", true),
    c(broken, .pypi, "badlist", "garbage", false),
    c(broken, .pypi, "empty", "1.0", false),
]

@Suite struct AffectsTests {
    @Test(arguments: cases)
    func affectsCase(_ t: AffectsCase) {
        #expect(affects(t.record, ecosystem: t.ecosystem, name: t.name, version: t.version) == t.expected)
    }

    @Test func caseTableIsLargeEnough() {
        #expect(cases.count >= 40)
        #expect(cases.contains { $0.expected } && cases.contains { !$0.expected })
    }

    @Test func rangeEvaluationDirectly() {
        let r = OSVRecord.Range(type: .ecosystem, events: [.introduced("1.0"), .fixed("2.0"), .introduced("3.0")])
        #expect(rangeIncludes(r, version: "1.0", ecosystem: .pypi))
        #expect(!rangeIncludes(r, version: "2.5", ecosystem: .pypi))
        #expect(rangeIncludes(r, version: "99", ecosystem: .pypi))      // open-ended after last introduced
        let lastAndFixed = OSVRecord.Range(type: .ecosystem,
                                           events: [.introduced("0"), .lastAffected("1.0"), .introduced("2.0"), .fixed("2.1")])
        #expect(rangeIncludes(lastAndFixed, version: "1.0", ecosystem: .debian))
        #expect(!rangeIncludes(lastAndFixed, version: "1.0-1", ecosystem: .debian))
        #expect(rangeIncludes(lastAndFixed, version: "2.0~rc1-1", ecosystem: .debian) == false)
        #expect(rangeIncludes(lastAndFixed, version: "2.1~rc1", ecosystem: .debian))
    }
}

struct CVSSTests {
    @Test func baseScoresOfKnownVectors() {
        #expect(CVSS.baseScore("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H") == 9.8)
        #expect(CVSS.baseScore("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H") == 7.5)
        #expect(CVSS.baseScore("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N") == 6.1)
        #expect(CVSS.baseScore("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H") == 9.9)
        #expect(CVSS.baseScore("CVSS:3.0/AV:N/AC:H/PR:N/UI:R/S:U/C:H/I:H/A:H") == 7.5)
        #expect(CVSS.baseScore("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N") == 0)
        #expect(CVSS.baseScore("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N") == nil)
        #expect(CVSS.baseScore("CVSS:3.1/AV:N") == nil)
        #expect(CVSS.rating(9.8) == "critical")
        #expect(CVSS.rating(7.0) == "high")
        #expect(CVSS.rating(3.3) == "low")
    }

    @Test func describedRangesAndTheFixToUpgradeTo() {
        let record = OSVRecord(id: "X", affected: [.init(package: .init(ecosystem: "PyPI", name: "p"), ranges: [
            .init(type: .ecosystem, events: [.introduced("0"), .fixed("1.2"), .introduced("2.0"), .fixed("2.3.4")]),
        ])])
        let d = describeAffected(record, ecosystem: .pypi, name: "p", version: "2.1")
        #expect(d.ranges == ["< 1.2", ">= 2.0, < 2.3.4"])
        #expect(d.fixed == ["1.2", "2.3.4"])
        #expect(d.fixedIn == "2.3.4")
        #expect(describeAffected(record, ecosystem: .pypi, name: "p", version: "1.0").fixedIn == "1.2")
        let open = OSVRecord(id: "Y", affected: [.init(package: .init(ecosystem: "npm", name: "q"), ranges: [
            .init(type: .semver, events: [.introduced("1.0.0")]),
        ])])
        #expect(describeAffected(open, ecosystem: .npm, name: "q", version: "1.5.0") == .init(ranges: [">= 1.0.0"], fixed: [], fixedIn: nil))
    }
}
