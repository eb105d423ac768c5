import Testing
@testable import CordonScan

@Suite struct NameAndEcosystemTests {
    @Test(arguments: [
        ("Foo.Bar_baz", "foo-bar-baz"), ("Django", "django"), ("zope.interface", "zope-interface"),
        ("Zope__Interface", "zope-interface"), ("a-_.-b", "a-b"), ("requests", "requests"),
        ("PyYAML", "pyyaml"), ("typing_extensions", "typing-extensions"),
    ])
    func pep503(_ pair: (String, String)) {
        #expect(normalizePyPIName(pair.0) == pair.1)
        #expect(Ecosystem.pypi.normalizedName(pair.0) == pair.1)
    }

    @Test func npmAndDistroNamesAsIs() {
        #expect(Ecosystem.npm.normalizedName("@Babel/Traverse") == "@Babel/Traverse")
        #expect(Ecosystem.npm.normalizedName("lodash.merge") == "lodash.merge")
        #expect(Ecosystem.debian.normalizedName("libssl3") == "libssl3")
    }

    @Test(arguments: [
        ("PyPI", Ecosystem?.some(.pypi)), ("npm", .npm), ("Debian", .debian), ("Debian:12", .debian),
        ("Debian:11", .debian), ("Alpine", .alpine), ("Alpine:v3.18", .alpine),
        ("pypi", nil), ("NPM", nil), ("Ubuntu:22.04", nil), ("", nil), (":12", nil),
    ])
    func osvEcosystemNames(_ pair: (String, Ecosystem?)) {
        #expect(Ecosystem(osv: pair.0) == pair.1)
    }

    @Test func compareVersionsDispatchesPerEcosystem() {
        // "1.0" is PEP 440/dpkg/apk but not SemVer; dpkg and apk differ on "1.0" vs "1.0.0".
        #expect(compareVersions("1.0", "1.0.0", ecosystem: .pypi) == .orderedSame)
        #expect(compareVersions("1.0", "1.0.0", ecosystem: .npm) == nil)
        #expect(compareVersions("1.0", "1.0.0", ecosystem: .debian) == .orderedAscending)
        #expect(compareVersions("1.0", "1.0.0", ecosystem: .alpine) == .orderedAscending)
        #expect(compareVersions("1.0~rc1", "1.0", ecosystem: .debian) == .orderedAscending)
        #expect(compareVersions("1.0~rc1", "1.0", ecosystem: .pypi) == nil)
        #expect(compareVersions("1.0rc1", "1.0", ecosystem: .pypi) == .orderedAscending)
        #expect(compareVersions("1.0rc1", "1.0", ecosystem: .alpine) == nil)
    }
}
