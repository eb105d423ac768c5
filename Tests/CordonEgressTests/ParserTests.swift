@testable import CordonEgress
import CordonPolicy
import Testing

struct RuleTests {
    func rule(_ s: String) -> EgressRule? { try? EgressRule.parse(s).get() }
    func reason(_ s: String) -> String? {
        if case .failure(let e) = EgressRule.parse(s) { return e.description }
        return nil
    }

    @Test func namesAreNormalised() {
        #expect(rule("API.Example.COM.:443")?.destination == .name("api.example.com"))
        #expect(rule("*.PyPI.org:443")?.destination == .nameSuffix("pypi.org"))
        #expect(rule("xn--bcher-kva.example:443")?.destination == .name("xn--bcher-kva.example"))
        #expect(rule("api.example.com:8000-8010")?.ports == PortRange(8000, 8010))
    }

    @Test(arguments: [
        "bücher.example:443", "a\u{0}b.com:443", "a\tb.com:443", "exa mple.com:443", "-a.com:443", "a-.com:443",
        "a..com:443", ".com:443", "com..:443", "a.com:0", "a.com:65536", "a.com:", "a.com", "a.com:10-5",
        "a.com:+443", "a.com:0443x", "*.com:443", "a.*.com:443", "**.a.com:443", "*a.com:443", "under_score.com:443",
        "1.2.3:443", "1.2.3.256:443", "01.2.3.4:443", "10.0.0.1/8:443", "10.0.0.0/33:443", "10.0.0.0/:443",
        "[::1:443", "[fe80::1%eth0]:443", "[::1/129]:443", "::1:443", "[]:443",
        // Well formed, but IPv6 egress is refused on every path: the rule would never match.
        "[::1]:8080", "[2001:db8::/32]:443", "[::ffff:203.0.113.9]:443",
        "a.com:443:443",
    ])
    func refused(_ entry: String) {
        let r = reason(entry)
        #expect(r != nil, "accepted \(entry)")
        #expect(r?.hasPrefix("network.allow entry \"") == true)
    }

    @Test func overlongLabelsAndNames() {
        let label63 = String(repeating: "a", count: 63)
        #expect(rule("\(label63).com:443") != nil)
        #expect(reason("\(label63)a.com:443")?.contains("63") == true)
        let name253 = Array(repeating: String(repeating: "b", count: 49), count: 5).joined(separator: ".") + ".cc"  // 5*50-1+3 = 252
        #expect(rule("\(name253)x:443") != nil)
        #expect(reason("\(name253)xy:443")?.contains("253") == true)
    }

    @Test func addressRules() {
        #expect(rule("203.0.113.0/24:5432")?.destination == .network(IPNetwork(address: .v4(IPv4Address(203, 0, 113, 0)), prefixLength: 24)!))
        #expect(rule("127.0.0.1:80")?.destination == .network(IPNetwork(address: .v4(IPv4Address(127, 0, 0, 1)), prefixLength: 32)!))
        #expect(reason("[2001:db8::/32]:443") == "network.allow entry \"[2001:db8::/32]:443\": \"[2001:db8::/32]:443\" is an IPv6 address rule, which would never match: IPv6 egress is refused on every path; see SECURITY.md")
        #expect(rule("203.0.113.0/24:1-1024")?.description == "203.0.113.0/24:1-1024")
    }

    @Test func wildcardMatchesOnlyBelowTheSuffix() {
        let list = Allowlist(rules: [rule("*.pypi.org:443")!, rule("api.example.com:443")!])
        #expect(list.nameAllows("files.pypi.org", port: 443))
        #expect(list.nameAllows("a.b.PYPI.org.", port: 443))
        #expect(!list.nameAllows("pypi.org", port: 443))
        #expect(!list.nameAllows("evilpypi.org", port: 443))
        #expect(!list.nameAllows("files.pypi.org", port: 80))
        #expect(list.isNameListed("API.example.com."))
        #expect(!list.isNameListed("api.example.com.evil.net"))
        #expect(!list.isNameListed("api.example.com\u{0}.evil"))
        #expect(!list.isNameListed("x.example.com"))
    }

    @Test func cidrs() {
        // An IPv6 block no policy can list any more (the engine refuses IPv6 destinations whatever
        // the rules say), built directly: the matcher itself stays family-blind.
        let v6 = EgressRule(destination: .network(IPNetwork(address: IPAddress("2001:db8::")!, prefixLength: 32)!), ports: PortRange(443, 443)!)
        let list = Allowlist(rules: [rule("203.0.113.0/24:5432")!, v6, rule("127.0.0.1:8000-8001")!])
        #expect(list.cidrAllows(IPAddress("203.0.113.77")!, port: 5432))
        #expect(!list.cidrAllows(IPAddress("203.0.114.1")!, port: 5432))
        #expect(!list.cidrAllows(IPAddress("203.0.113.77")!, port: 5433))
        #expect(list.cidrAllows(IPAddress("::ffff:203.0.113.9")!, port: 5432))
        #expect(list.cidrAllows(IPAddress("2001:db8:1::5")!, port: 443))
        #expect(!list.cidrAllows(IPAddress("2001:db9::5")!, port: 443))
        #expect(list.cidrAllows(IPAddress("127.0.0.1")!, port: 8001))
        #expect(!list.cidrAllows(IPAddress("127.0.0.2")!, port: 8001))
    }
}

struct AddressTests {
    @Test(arguments: [
        "127.0.0.1", "127.255.255.254", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1",
        "100.127.255.255", "169.254.169.254", "169.254.1.1", "0.0.0.0", "0.1.2.3", "224.0.0.1", "239.255.255.250",
        "255.255.255.255", "240.0.0.1", "::", "::1", "fe80::1", "febf::1", "fc00::1", "fd12:3456::1", "ff02::1",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a00:1", "2002:a00:1::1", "::10.0.0.1",
    ])
    func restricted(_ text: String) {
        let a = IPAddress(text)
        #expect(a != nil, "did not parse \(text)")
        #expect(a?.isRestricted == true, "\(text) not restricted")
    }

    @Test(arguments: ["8.8.8.8", "203.0.113.5", "100.128.0.1", "172.32.0.1", "169.253.255.255", "2001:db8::1", "2606:4700::1111",
                      "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"])
    func notRestricted(_ text: String) {
        #expect(IPAddress(text)?.isRestricted == false, "\(text)")
    }

    @Test func metadataIsNamed() {
        #expect(IPAddress("169.254.169.254")?.restriction?.contains("metadata") == true)
        #expect(IPAddress("::ffff:169.254.169.254")?.restriction?.contains("metadata") == true)
    }

    @Test func parsingIsStrict() {
        for bad in ["1.2.3", "1.2.3.4.5", "256.1.1.1", "01.1.1.1", "1.1.1.1 ", " 1.1.1.1", "0x7f.0.0.1", "", "::g", "1::2::3", "fe80::1%lo"] {
            #expect(IPAddress(bad) == nil, "\(bad)")
        }
        #expect(IPAddress("::FFFF:1.2.3.4")?.unmapped == IPAddress("1.2.3.4"))
        #expect(IPAddress("2001:DB8::1")?.description == "2001:db8::1")
    }
}

struct HostNameTests {
    @Test func normalises() throws {
        #expect(try HostName.normalize("WWW.Example.COM.").get() == "www.example.com")
        #expect(throws: HostName.NameError.self) { try HostName.normalize("example.com..").get() }
        #expect(throws: HostName.NameError.self) { try HostName.normalize([0x61, 0x00, 0x62]).get() }
        #expect(throws: HostName.NameError.self) { try HostName.normalize("exämple.com").get() }
        #expect(throws: HostName.NameError.self) { try HostName.normalize(".").get() }
        #expect(throws: HostName.NameError.self) { try HostName.normalize("a\r\nb.com").get() }
        #expect(try HostName.normalize("xn--exmple-cua.com").get() == "xn--exmple-cua.com")
    }
}
