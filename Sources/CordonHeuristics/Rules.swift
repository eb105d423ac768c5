import CordonJSON

enum Rules {
    static func finding(_ rule: String, _ sev: Severity, _ tf: TextFile, _ start: Int, _ end: Int, _ msg: String, evidenceLine: Int? = nil) -> Finding {
        let lo = min(start, end), hi = max(start, end)
        return Finding(rule: rule, severity: sev, file: tf.path, startLine: lo + 1, endLine: hi + 1,
                       message: msg, evidence: tf.evidence(evidenceLine ?? lo))
    }

    // MARK: 1. install-time-code

    static let topLevelActions = byteList([
        "os.system(", "os.popen(", "os.spawn", "os.exec", "subprocess.", "urlopen(", "urlretrieve(",
        "urllib.request.", "requests.get(", "requests.post(", "socket.socket(", "socket.create_connection(",
        "http.client.", "pty.spawn(", "webbrowser.open(",
    ])
    static let cmdclassKeys = byteList([
        "'install'", "\"install\"", "'develop'", "\"develop\"", "'egg_info'", "\"egg_info\"", "'build'", "\"build\"",
        "install=", "develop=", "egg_info=", "build=", "install =", "develop =", "egg_info =", "build =",
    ])
    static let commandSubclasses = byteList(["(install)", "(develop)", "(egg_info)", "(build)", "(_install)", "(install.install)",
                                             "(develop.develop)", "(egg_info.egg_info)", "(build.build)"])

    static func installTimeCode(_ tf: TextFile) -> [Finding] {
        guard basename(tf.path) == "setup.py" else { return [] }
        var out: [Finding] = []
        let cmdLines = tf.lines(matchingAny: [bytes("cmdclass")])
        if !cmdLines.isEmpty {
            let subclassesCommand = tf.lines(matchingAny: commandSubclasses).contains { hasAny(tf.lower[$0], [bytes("class ")]) }
            var hit: Int? = nil
            for i in cmdLines {
                let window = tf.lower[i..<min(i + 8, tf.lineCount)].joined(separator: [10])
                if hasAny(Array(window), cmdclassKeys) { hit = i; break }
            }
            if hit == nil && subclassesCommand { hit = cmdLines[0] }
            if let i = hit {
                out.append(finding(RuleID.installTimeCode, .high, tf, i, i,
                                   "setup.py overrides a setuptools install/develop/egg_info/build command via cmdclass"))
            }
        }
        for i in tf.lines(matchingAny: topLevelActions) {
            guard let first = tf.raw[i].first, first != 32, first != 9 else { continue }
            out.append(finding(RuleID.installTimeCode, .high, tf, i, i,
                               "setup.py spawns a process or uses the network at module top level (runs at install time)"))
        }
        return out
    }

    // MARK: 2. pth-code

    /// What turns a start-up import line from configuration into a payload.
    static let pthDanger = byteList(["exec(", "eval(", "compile(", "base64", "b64decode", "marshal", "subprocess", "os.system",
                                     "urllib", "urlopen", "socket", "requests", "zlib", "codecs.decode", "__import__('base64"])

    static func pthCode(_ tf: TextFile) -> [Finding] {
        guard fileExtension(tf.path) == "pth" else { return [] }
        var out: [Finding] = []
        for i in 0..<tf.lineCount {
            let l = tf.raw[i]
            if l.starts(with: bytes("import ")) || l.starts(with: bytes("import\t")) {
                // setuptools' own distutils-precedence.pth imports and checks an environment
                // variable: code at start-up, but no payload. Execution, decoding or the
                // network on that line make it high.
                let dangerous = hasAny(tf.lower[i], pthDanger)
                out.append(finding(RuleID.pthCode, dangerous ? .high : .medium, tf, i, i,
                                   dangerous ? ".pth line runs code that executes, decodes or reaches the network at every interpreter start-up"
                                             : ".pth line starting with `import` executes at every interpreter start-up"))
            }
        }
        return out
    }

    // MARK: 3. npm-install-script

    static let installHooks = ["preinstall", "install", "postinstall"]

    static func npmInstallScripts(_ package: PackageUnderScan) -> [Finding] {
        var out: [Finding] = []
        var sawHook = false
        for file in package.files where basename(file.path) == "package.json" {
            let root: JSON, keys: JSON.KeyOffsets
            do { (root, keys) = try JSON.parseWithKeyOffsets(file.bytes, options: Heuristics.packageJSON) } catch {
                // npm refuses a file that is not JSON, so its hooks never run; but one past our caps
                // (a million values, 256 levels) is JSON to npm, and its hooks may: not read is
                // not clean.
                if error.exceedsLimit {
                    sawHook = true
                    out.append(Finding(rule: RuleID.npmInstallScript, severity: .high, file: file.path, startLine: 1, endLine: 1,
                                       message: "package.json is beyond what the scanner reads (\(error.message)): its install scripts cannot be ruled out",
                                       evidence: makeEvidence(Array(file.bytes.prefix(160)))))
                }
                continue
            }
            guard let scripts = root["scripts"] else { continue }
            for hook in installHooks {
                guard case .string(let cmd)? = scripts[hook], let offset = keys["scripts", .key(hook)] else { continue }
                sawHook = true
                let line = lineNumber(ofOffset: offset, in: file.bytes)
                let trimmed = cmd.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
                let benign = trimmed == "node-gyp rebuild"
                let ev = makeEvidence(bytes("\"\(hook)\": \"\(cmd)\""))
                out.append(Finding(rule: RuleID.npmInstallScript, severity: benign ? .low : .high, file: file.path,
                                   startLine: line, endLine: line,
                                   message: benign ? "\(hook) script is a plain `node-gyp rebuild` (native addon build)"
                                                   : "\(hook) script runs arbitrary commands at install time: \(trimmed)",
                                   evidence: ev))
            }
        }
        if !sawHook {
            for file in package.files where basename(file.path) == "binding.gyp" {
                out.append(Finding(rule: RuleID.npmInstallScript, severity: .low, file: file.path, startLine: 1, endLine: 1,
                                   message: "binding.gyp present: npm runs `node-gyp rebuild` at install time",
                                   evidence: "binding.gyp"))
            }
        }
        return out
    }

    // MARK: 4. download-execute

    static let fetchPatterns = byteList([
        "urllib.request.urlopen", "urlopen(", "urlretrieve(", "requests.get(", "requests.post(", "httpx.get(",
        "http.client", "curl ", "wget ", "https.get(", "http.get(", "invoke-webrequest", "downloadstring(",
        "downloadfile(",
    ])
    static let runPatterns = byteList([
        "subprocess.", "os.system(", "os.popen(", "os.startfile(", "os.exec", "child_process", "execsync(", "spawnsync(",
        "chmod +x", "os.chmod(", "chmodsync(", "| sh", "| bash", "|sh", "|bash", "| python", "iex ", "invoke-expression",
    ])

    static func isExecLine(_ tf: TextFile, _ i: Int) -> Bool {
        let l = tf.lower[i]
        return hasBareCall(l, bytes("exec(")) || hasBareCall(l, bytes("eval(")) || hasBareCall(tf.raw[i], bytes("Function("))
    }

    /// A fetch and an execution within a few lines of each other (or on one line: `curl … | sh`).
    /// A file that merely contains both somewhere (an HTTP library with a debugger console, six's
    /// `exec` shim next to its urllib moves table) is not download-and-execute.
    static let downloadExecuteWindow = 5

    /// JavaScript's global `fetch(` counts only as a bare call: not `obj.fetch()` and not a
    /// definition (`def fetch(`, `function fetch(`).
    static func isFetchLine(_ l: Bytes) -> Bool {
        if hasAny(l, fetchPatterns) { return true }
        guard hasBareCall(l, bytes("fetch(")) else { return false }
        return !has(l, bytes("def fetch(")) && !has(l, bytes("function fetch("))
    }

    /// A line that is only a quoted list of plain words (`'compare copy cp curl cvpa dbp del '`,
    /// maybe closed by `).split()`): data, such as a syntax highlighter's list of shell commands
    /// — `curl ` and `iex ` in it fetch and run nothing. Only a list: at least six words, none
    /// an option (`-fsSL`), a number (curl takes `3325256724` or `0xc6336414` for an address) or
    /// a variable, and neither a fetch nor a run word nor a launcher (`nice`, `env`) first. A command in a string is still read, even without `|` or a
    /// URL (`'curl -fsSL 3325256724 -o x'`).
    static func isWordList(_ l: Bytes) -> Bool {
        var i = 0, j = l.count
        while i < j && (l[i] == 32 || l[i] == 9) { i += 1 }
        while j > i && (l[j - 1] == 32 || l[j - 1] == 9 || l[j - 1] == 13) { j -= 1 }
        for tail in [").split()", ").split(),", ")", ","] {
            let t = bytes(tail)
            if j - i > t.count && Array(l[(j - t.count)..<j]) == t { j -= t.count; break }
        }
        guard j - i >= 2, l[i] == 39 || l[i] == 34, l[j - 1] == l[i] else { return false }
        let body = l[(i + 1)..<(j - 1)]
        guard body.allSatisfy({ isIdentByte($0) || $0 == 32 || $0 == 45 }) else { return false }
        let words = body.split(separator: 32)
        guard words.count >= 6, let first = words.first else { return false }
        // An option, a number (decimal or 0x: curl takes either for an address) or a variable.
        if words.contains(where: { w in
            w.first == 45 || w.allSatisfy { $0 >= 48 && $0 <= 57 } || (w.count > 2 && w.first == 48 && (w[w.startIndex + 1] | 0x20) == 120) || w.contains(36)
        }) { return false }
        let head = Array(first) + [32]
        let launchers: Set<String> = ["iex", "sh", "bash", "python", "exec", "eval", "nice", "env", "nohup", "command", "xargs", "timeout",
                                      "sudo", "busybox", "stdbuf", "setsid", "time", "doas", "chroot", "unshare"]
        return !hasAny(head, fetchPatterns) && !hasAny(head, runPatterns) && !launchers.contains(String(decoding: first, as: UTF8.self))
    }

    static func downloadExecute(_ tf: TextFile) -> [Finding] {
        guard tf.mayContain(fetchPatterns + byteList(["fetch("])) else { return [] }
        var out: [Finding] = []
        for f in 0..<tf.lineCount where !tf.isComment(f) && isFetchLine(tf.lower[f]) && !isWordList(tf.lower[f]) {
            let window = max(0, f - 2)...min(tf.lineCount - 1, f + downloadExecuteWindow)
            guard let r = window.first(where: { !tf.isComment($0) && !isWordList(tf.lower[$0]) && (hasAny(tf.lower[$0], runPatterns) || isExecLine(tf, $0)) }) else { continue }
            out.append(finding(RuleID.downloadExecute, .critical, tf, min(f, r), max(f, r),
                               "remote content is fetched and executed within \(abs(r - f) + 1) lines", evidenceLine: max(f, r)))
            break
        }
        return out
    }

    // MARK: 5. decode-exec

    static let decodePatterns = byteList([
        "b64decode(", "b32decode(", "b16decode(", "a85decode(", "b85decode(", "base64.decodebytes(", "base64.decodestring(",
        "atob(", "bytes.fromhex(", "unhexlify(", "a2b_hex(", "decompress(", "zlib.inflate", "inflatesync(", "gunzipsync(",
        "marshal.loads(", "rot13", "rot_13", "string.fromcharcode(",
    ])

    static func isDecodeLine(_ l: Bytes) -> Bool {
        if hasAny(l, decodePatterns) { return true }
        if has(l, bytes("buffer.from(")) && hasAny(l, byteList(["'base64'", "\"base64\"", "'hex'", "\"hex\"", "`base64`"])) { return true }
        if has(l, bytes("join(")) && hasBareCall(l, bytes("chr(")) { return true }
        return false
    }

    /// `name = ...`, `const name = ...`, `let/var name = ...` -> name.
    static func assignedName(_ l: Bytes) -> Bytes? {
        var j = 0
        while j < l.count && (l[j] == 32 || l[j] == 9) { j += 1 }
        for kw in ["const ", "let ", "var "] {
            let k = bytes(kw)
            if l.count - j >= k.count && Array(l[j..<j + k.count]) == k { j += k.count; break }
        }
        let start = j
        while j < l.count && isIdentByte(l[j]) { j += 1 }
        guard j > start else { return nil }
        let name = Array(l[start..<j])
        while j < l.count && (l[j] == 32 || l[j] == 9) { j += 1 }
        guard j < l.count, l[j] == 61, !(j + 1 < l.count && l[j + 1] == 61) else { return nil }
        return name
    }

    static func decodeExec(_ tf: TextFile) -> [Finding] {
        guard tf.mayContain(decodePatterns + byteList(["buffer.from(", "chr("])) else { return [] }
        // Names assigned decoded data, with the line of their latest such assignment. An exec
        // line is checked against its own identifiers (a dictionary lookup each), not against
        // every tainted name: linear in the file, however many decodes and execs it has.
        var tainted: [Bytes: Int] = [:]
        var out: [Finding] = []
        for i in 0..<tf.lineCount where !tf.isComment(i) {
            let l = tf.lower[i]
            let decodes = isDecodeLine(l)
            if isExecLine(tf, i) {
                if decodes {
                    out.append(finding(RuleID.decodeExec, .high, tf, i, i, "exec/eval of decoded data on one line"))
                } else if let (name, line) = identifiers(l).compactMap({ id in tainted[id].map { (id, $0) } }).max(by: { $0.1 < $1.1 }) {
                    out.append(finding(RuleID.decodeExec, .high, tf, line, i,
                                       "exec/eval of `\(String(decoding: name, as: UTF8.self))`, which holds decoded data", evidenceLine: i))
                }
            }
            if decodes, let n = assignedName(l) { tainted[n] = i }
        }
        return out
    }

    /// The identifier tokens of a line.
    static func identifiers(_ l: Bytes) -> [Bytes] {
        var out: [Bytes] = []
        var start: Int? = nil
        for (i, b) in l.enumerated() {
            if isIdentByte(b) { if start == nil { start = i } }
            else if let s = start { out.append(Array(l[s..<i])); start = nil }
        }
        if let s = start { out.append(Array(l[s...])) }
        return out
    }

    // MARK: 6. obfuscation

    static func obfuscation(_ tf: TextFile) -> [Finding] {
        var out: [Finding] = []
        if let i = tf.firstLine(matchingAny: byteList(["__pyarmor__", "pytransform"]), skipComments: false) {
            out.append(finding(RuleID.obfuscation, .high, tf, i, i, "PyArmor-protected code (pytransform / __pyarmor__)"))
        }
        for i in 0..<tf.lineCount where tf.raw[i].count > 202 {
            let l = tf.raw[i]
            var j = 0
            while j < l.count {
                let q = l[j]
                guard q == 34 || q == 39 || q == 96 else { j += 1; continue }
                var k = j + 1
                while k < l.count && l[k] != q {
                    if l[k] == 92 { k += 1 }
                    k += 1
                }
                let end = min(k, l.count)
                let len = end - (j + 1)
                if len > 200 {
                    let h = shannonEntropy(l[(j + 1)..<end])
                    if h > 4.5 {
                        let shown = (h * 100).rounded() / 100
                        out.append(finding(RuleID.obfuscation, .medium, tf, i, i,
                                           "\(len)-character string literal with entropy \(shown) bits/char (likely encoded payload)"))
                        break
                    }
                }
                j = end + 1
            }
        }
        return out
    }

    // MARK: 7. credential-access

    static let credentialPatterns = byteList([
        "~/.ssh", ".ssh/", "'.ssh'", "\".ssh\"", "id_rsa", "id_ed25519", ".aws/credentials", ".netrc", ".npmrc", ".pypirc",
        "dict(os.environ)", "os.environ.copy()", "{**os.environ}",
        "json.stringify(process.env)", "str(os.environ)", "json.dumps(os.environ", ".docker/config.json", ".git-credentials",
    ])
    static let browserWords = byteList(["chrome", "chromium", "firefox", "mozilla", "brave", "opera", "edge", "user data", "profile"])
    static let networkPatterns = byteList([
        "requests.post(", "requests.get(", "requests.put(", "requests.request(", "urlopen(", "urllib.request", "urllib3",
        "http.client", "httplib", "socket.", "smtplib", "ftplib", "httpx.", "aiohttp", "fetch(", "https.request(",
        "http.request(", "https.get(", "http.get(", "axios", "xmlhttprequest", "net.connect(", "dns.", "curl ", "wget ",
        "webhook", "discord", "telegram",
    ])

    /// Where stolen data leaves: an upload, a raw send, mail, or a chat webhook. Merely using
    /// the network (an HTTP client honouring ~/.netrc) is not exfiltration.
    static let exfilSinks = byteList([
        "requests.post(", "requests.put(", "httpx.post(", "session.post(", ".sendall(", ".send(", "smtplib", "ftplib",
        "webhook", "discord", "telegram", "pastebin", "transfer.sh", "ngrok", "xmlhttprequest", "navigator.sendbeacon",
        "method: 'post'", "method: \"post\"", "curl -d", "curl --data", "curl -f", "wget --post",
    ])
    /// A browser store's file name as it appears in a path, not the word "cookies" in prose.
    static let browserStoreFiles = byteList(["/cookies", "\\cookies", "'cookies'", "\"cookies\"", "login data", "key4.db", "logins.json"])

    static func credentialAccess(_ tf: TextFile) -> [Finding] {
        guard tf.mayContain(credentialPatterns + browserStoreFiles + byteList([".aws"])) else { return [] }
        var hits: [Int] = []
        for i in 0..<tf.lineCount where !tf.isComment(i) {
            let l = tf.lower[i]
            if hasAny(l, credentialPatterns) || (hasAny(l, browserStoreFiles) && hasAny(l, browserWords))
                || (has(l, bytes("'.aws'")) || has(l, bytes("\".aws\""))) && has(l, bytes("credentials")) {
                hits.append(i)
            }
        }
        guard !hits.isEmpty else { return [] }
        let exfiltrates = tf.anyLine(matchingAny: exfilSinks)
        return hits.map { i in
            finding(RuleID.credentialAccess, exfiltrates ? .critical : .medium, tf, i, i,
                    exfiltrates ? "reads credentials or dumps the environment in a file that also uploads or sends data"
                                : "references credential stores or dumps the environment")
        }
    }

    // MARK: 8. reverse-shell

    static let oneLinerShells = byteList([
        "/dev/tcp/", "/dev/udp/", "nc -e ", "ncat -e ", "nc.traditional -e", "bash -i >&", "sh -i >&", "nc -c ", "ncat -c ",
    ])
    static let connectPatterns = byteList([
        ".connect((", "create_connection((", "net.connect(", "net.createconnection(", "new net.socket(", "socket.connect(",
    ])
    static let shellPatterns = byteList([
        "dup2(", "pty.spawn(", "/bin/sh -i", "/bin/bash -i", "spawn('/bin/sh", "spawn(\"/bin/sh", "spawn('/bin/bash",
        "spawn(\"/bin/bash", "spawn('sh'", "spawn(\"sh\"", "spawn('cmd.exe'", "spawn(\"cmd.exe\"",
    ])

    static func reverseShell(_ tf: TextFile) -> [Finding] {
        guard tf.mayContain(oneLinerShells + connectPatterns) else { return [] }
        var out: [Finding] = []
        for i in tf.lines(matchingAny: oneLinerShells) {
            out.append(finding(RuleID.reverseShell, .critical, tf, i, i, "shell one-liner reverse shell"))
        }
        if let c = tf.firstLine(matchingAny: connectPatterns), let s = tf.firstLine(matchingAny: shellPatterns) {
            out.append(finding(RuleID.reverseShell, .critical, tf, c, s,
                               "socket connection wired to a shell (fd duplication / pty / interactive shell)", evidenceLine: s))
        }
        return out
    }

    // MARK: 9. shady-link

    static let shadyDomains = [
        "pastebin.com", "paste.ee", "hastebin.com", "ghostbin.com", "ghostbin.co", "transfer.sh", "termbin.com", "paste.rs",
        "rentry.co", "ngrok.io", "ngrok-free.app", "ngrok.app", "ngrok.dev", "loca.lt", "localtunnel.me", "serveo.net",
        "trycloudflare.com", "webhook.site", "requestbin.com", "requestbin.net", "pipedream.net", "requestcatcher.com",
        "beeceptor.com", "burpcollaborator.net", "oastify.com", "interact.sh", "oast.fun", "oast.pro", "oast.live",
        "oast.site", "oast.online", "oast.me", "dnslog.cn", "canarytokens.com", "hooks.slack.com",
    ]
    static let shadyHostWords = ["hastebin", "ghostbin", "requestbin"]
    static let discordHosts: Set<String> = ["discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com"]

    static func isIPv4(_ host: String) -> Bool {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return false }
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0.isASCII && $0.isNumber }), let v = Int(p), v <= 255 else { return false }
        }
        return true
    }

    /// Returns a reason if the URL starting at `start` (just after "://") is shady.
    static func shadyReason(_ l: Bytes, afterScheme start: Int) -> String? {
        let stops: Set<UInt8> = Set(bytes("/:?#'\"` \t)(<>]\\,;"))
        var j = start
        while j < l.count && !stops.contains(l[j]) { j += 1 }
        var host = String(decoding: l[start..<j], as: UTF8.self)
        if let at = host.lastIndex(of: "@") { host = String(host[host.index(after: at)...]) }
        while host.hasSuffix(".") { host.removeLast() }
        guard !host.isEmpty else { return nil }
        var pathEnd = j
        if j < l.count && l[j] == 58 {  // port
            pathEnd = j + 1
            while pathEnd < l.count && l[pathEnd] >= 48 && l[pathEnd] <= 57 { pathEnd += 1 }
        }
        let rest = Array(l[pathEnd..<min(l.count, pathEnd + 20)])
        if discordHosts.contains(host) && rest.starts(with: bytes("/api/webhooks")) { return "Discord webhook" }
        if host == "api.telegram.org" && rest.starts(with: bytes("/bot")) { return "Telegram bot API" }
        for d in shadyDomains where host == d || host.hasSuffix("." + d) { return "paste/tunnel/webhook/request-bin host \(host)" }
        for w in shadyHostWords where host.contains(w) { return "paste/request-bin host \(host)" }
        if isIPv4(host) && !host.hasPrefix("127.") && host != "0.0.0.0" { return "raw IPv4 host \(host)" }
        return nil
    }

    static func shadyLinks(_ tf: TextFile) -> [Finding] {
        guard tf.mayContain(byteList(["://"])) else { return [] }
        var out: [Finding] = []
        let scheme = bytes("://")
        for i in 0..<tf.lineCount {
            let l = tf.lower[i]
            var from = 0
            while let k = find(l, scheme, from: from) {
                from = k + 3
                // Require an http(s)/ws(s)/ftp scheme right before "://".
                let prefixStart = max(0, k - 5)
                let prefix = String(decoding: l[prefixStart..<k], as: UTF8.self)
                guard prefix.hasSuffix("http") || prefix.hasSuffix("https") || prefix.hasSuffix("ws") || prefix.hasSuffix("wss")
                    || prefix.hasSuffix("ftp") else { continue }
                if let reason = shadyReason(l, afterScheme: k + 3) {
                    out.append(finding(RuleID.shadyLink, .medium, tf, i, i, "URL to \(reason)"))
                    break
                }
            }
        }
        return out
    }

    // MARK: 11. native-binary

    static func nativeBinary(_ file: PackageFile) -> [Finding] {
        let b = file.bytes
        guard b.count >= 4 else { return [] }
        let m = Array(b[0..<4])
        var kind: String? = nil
        if m == [0x7F, 0x45, 0x4C, 0x46] {
            kind = "ELF"
        } else if m == [0xFE, 0xED, 0xFA, 0xCE] || m == [0xFE, 0xED, 0xFA, 0xCF] || m == [0xCE, 0xFA, 0xED, 0xFE] || m == [0xCF, 0xFA, 0xED, 0xFE] {
            kind = "Mach-O"
        } else if m == [0xCA, 0xFE, 0xBA, 0xBE], b.count >= 8 {
            // Fat Mach-O shares its magic with Java classes; a small arch count means Mach-O.
            let nArch = (UInt32(b[4]) << 24) | (UInt32(b[5]) << 16) | (UInt32(b[6]) << 8) | UInt32(b[7])
            if nArch > 0 && nArch < 20 { kind = "Mach-O (universal)" }
        } else if b[0] == 0x4D && b[1] == 0x5A && looksBinary(b) {
            kind = "PE (Windows)"
        }
        guard let k = kind else { return [] }
        return [Finding(rule: RuleID.nativeBinary, severity: .medium, file: file.path, startLine: 1, endLine: 1,
                        message: "\(k) executable inside a package that should contain no native code",
                        evidence: "\(k) magic: " + m.map { hex2($0) }.joined(separator: " "))]
    }

    static func hex2(_ b: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return String([digits[Int(b >> 4)], digits[Int(b & 15)]])
    }
}

/// The 1-based line of the byte at `offset`.
func lineNumber(ofOffset offset: Int, in bytes: [UInt8]) -> Int {
    var line = 1
    var k = 0
    let end = min(offset, bytes.count)
    while k < end {
        if bytes[k] == 10 { line += 1 }
        k += 1
    }
    return line
}
