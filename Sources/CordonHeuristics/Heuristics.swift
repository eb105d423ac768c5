import CordonJSON

public enum Heuristics {
    /// package.json as npm reads it (`JSON.ParseOptions.javaScript`: a leading byte order mark
    /// skipped, ill-formed text replaced rather than refused, a number beyond a Double's range
    /// read as Infinity), so that a file npm installs does not slip past the rules, or out of
    /// the inventory, by failing to parse here; nested up to 256 levels, and up to a million
    /// values (a bound on memory: a value costs more than its text).
    public static let packageJSON: JSON.ParseOptions = {
        var options = JSON.ParseOptions.javaScript
        options.maxDepth = 256
        options.maxValues = 1_000_000
        return options
    }()

    public static let rules: [HeuristicRule] = [
        HeuristicRule(id: RuleID.installTimeCode, severity: .high,
                      summary: "setup.py overrides install/develop/egg_info/build via cmdclass, or spawns processes / uses the network at top level"),
        HeuristicRule(id: RuleID.pthCode, severity: .high,
                      summary: ".pth file with an `import` line, run at interpreter start-up (medium; high when it executes, decodes or reaches the network)"),
        HeuristicRule(id: RuleID.npmInstallScript, severity: .high,
                      summary: "package.json preinstall/install/postinstall script (plain `node-gyp rebuild` or a lone binding.gyp is low)"),
        HeuristicRule(id: RuleID.downloadExecute, severity: .critical,
                      summary: "remote content fetched and executed within a few lines (exec/eval, processes, curl | sh)"),
        HeuristicRule(id: RuleID.decodeExec, severity: .high,
                      summary: "exec/eval/Function applied to base64/hex/zlib/marshal/rot13/char-code decoded data"),
        HeuristicRule(id: RuleID.obfuscation, severity: .medium,
                      summary: "string literal over 200 characters with entropy above 4.5 bits/char; PyArmor markers are high"),
        HeuristicRule(id: RuleID.credentialAccess, severity: .critical,
                      summary: "reads SSH/AWS/netrc/npmrc/pypirc/browser credential stores or dumps the environment (critical with an upload or send in the same file, else medium)"),
        HeuristicRule(id: RuleID.reverseShell, severity: .critical,
                      summary: "socket connect plus fd duplication / interactive shell, or a shell one-liner reverse shell"),
        HeuristicRule(id: RuleID.shadyLink, severity: .medium,
                      summary: "URL to a paste site, webhook, tunnel, request bin, or a raw IPv4 host"),
        HeuristicRule(id: RuleID.typosquat, severity: .medium,
                      summary: "package name is one edit or a confusable fold away from a popular package"),
        HeuristicRule(id: RuleID.nativeBinary, severity: .medium,
                      summary: "ELF/PE/Mach-O binary inside a pure wheel or an npm package"),
    ]

    /// The popular package `name` imitates (the `typosquat` rule's match), if any.
    public static func typosquatOf(_ name: String, ecosystem: PackageEcosystem) -> String? {
        Typosquat.imitated(name, ecosystem)?.popular
    }

    public static func scan(_ package: PackageUnderScan) -> [Finding] {
        var findings: [Finding] = []
        var textFiles: [TextFile] = []
        for file in package.files {
            if let tf = TextFile(file) {
                textFiles.append(tf)
            } else if package.pureWheel || package.ecosystem == .npm {
                findings += Rules.nativeBinary(file)
            }
        }
        for tf in textFiles {
            findings += Rules.installTimeCode(tf)
            findings += Rules.pthCode(tf)
            if tf.isCode {
                findings += Rules.downloadExecute(tf)
                findings += Rules.decodeExec(tf)
                findings += Rules.obfuscation(tf)
                findings += Rules.credentialAccess(tf)
                findings += Rules.reverseShell(tf)
            }
            findings += Rules.shadyLinks(tf)
        }
        findings += Rules.npmInstallScripts(package)
        findings += Typosquat.check(package)

        findings.sort { a, b in
            if a.file != b.file { return a.file < b.file }
            if a.startLine != b.startLine { return a.startLine < b.startLine }
            if a.rule != b.rule { return a.rule < b.rule }
            if a.endLine != b.endLine { return a.endLine < b.endLine }
            return a.evidence < b.evidence
        }
        var deduped: [Finding] = []
        for f in findings where deduped.last != f { deduped.append(f) }
        return deduped
    }
}

enum RuleID {
    static let installTimeCode = "install-time-code"
    static let pthCode = "pth-code"
    static let npmInstallScript = "npm-install-script"
    static let downloadExecute = "download-execute"
    static let decodeExec = "decode-exec"
    static let obfuscation = "obfuscation"
    static let credentialAccess = "credential-access"
    static let reverseShell = "reverse-shell"
    static let shadyLink = "shady-link"
    static let typosquat = "typosquat"
    static let nativeBinary = "native-binary"
}
