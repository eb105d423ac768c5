import ArgumentParser
import CordonCommandLine
import CordonConfig
import CordonInstall
import CordonJSON
import CordonPackaging
import CordonPolicy
import CordonRPC
import CordonSandbox
import CordonStore
import CordonSystem
#if canImport(Glibc)
import Glibc
#endif

/// `cordon install`: a complete, pinned and hashed set of Python packages through the install
/// gate (`InstallRun`) into the store, as root, the way `cordon run` works without cordond.
struct InstallCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "install",
        abstract: "Verify, scan and install a pinned, hashed set of Python packages into Cordon's store (as root).",
        discussion: """
        Takes a complete set: every requirement NAME==VERSION with --hash=sha256:HEX for its files, \
        as `uv pip compile --generate-hashes` or `pip-compile --generate-hashes` writes it. Each file \
        is fetched from the policy's [install] index in a sandbox that reaches only the index's hosts, \
        copied and hashed into the store, checked in a sandbox with no network (identity, RECORD, \
        advisories, heuristics), decided on by the policy's [install] table, and unpacked by Cordon \
        (no package code runs) in a sandbox into a read-only tree of the store named by the set's \
        hash. Every refusal names the package, the rule and the evidence; a refused set installs \
        nothing. Every run's record is kept in STATE/store/records. \
        Without root (or with --socket) it asks cordond (install.run): the requirements are read here, \
        the gate is that of a policy you may use, the set goes into cordond's store. \
        Exit status: 0 installed (or already in the store), 1 refused, 2 an error stopped it.
        """
    )

    @OptionGroup var locations: LocationOptions

    @Option(name: .long, help: "The policy whose [install] table decides (default: default).")
    var policy = "default"

    @Option(name: .long, help: "The index's simple API URL, instead of the policy's install.index.")
    var index: String?

    @Option(name: [.customShort("r"), .long], help: "A requirements file (pinned and hashed).")
    var requirement: [String] = []

    @Option(name: .customLong("dns-hosts"), help: "A hosts file the fetch sandbox's names resolve from, before DNS.")
    var dnsHosts: String?

    @Option(name: .long, help: "The Python the set is for (default: /usr/bin/python3).")
    var python = "/usr/bin/python3"

    @Option(name: .long, help: "uv, to resolve a loose request instead of pip (default: /usr/local/bin/uv or /usr/bin/uv when there is one; none: pip).")
    var uv: String?

    @Option(name: .customLong("socket"), help: "Install through cordond on this socket (install.run); without root, through cordond on $CORDON_SOCKET or /run/cordon/cordon.sock.")
    var socket: String?

    @Flag(name: .long, help: "List the sets in the store instead.")
    var list = false

    @Flag(name: .long, help: "Print the record (or the list) as JSON.")
    var json = false

    @Argument(help: "Requirements, each NAME==VERSION --hash=sha256:HEX (one argument each, quoted).")
    var requirements: [String] = []

    func validate() throws {
        if list {
            guard requirements.isEmpty, requirement.isEmpty else { throw ValidationError("--list takes no requirements") }
        } else {
            guard !requirements.isEmpty || !requirement.isEmpty else { throw ValidationError("name requirements, or -r FILE") }
        }
    }

    var storeRoot: String { "\(Locations(stateDir: locations.stateDir).resolvedStateDir())/store" }

    func run() throws {
        if socket != nil || geteuid() != 0 { return try throughDaemon() }
        if list { return try listSets() }
        let (parsed, source, _) = try readRequirements()
        let store = locations.policyStore
        var gate: Policy.Install
        do { gate = try store.loadPolicy(policy).install } catch {
            printError("cordon install: policy \(policy): \(error)")
            throw ExitCode(2)
        }
        if let index {
            switch ServiceURL.parse(index) {
            case .success(let url): gate.index = url
            case .failure(let e):
                printError("cordon install: --index \(index): \(e)")
                throw ExitCode(2)
            }
        }
        // Absolute: the workers' binds name host paths.
        let stateDir = FileSystem.absolute(Locations(stateDir: locations.stateDir).resolvedStateDir())
        guard python.hasPrefix("/usr/"), !python.contains("/../") else {
            printError("cordon install: --python \(python): the Python must be under /usr (the worker sandboxes bind /usr read-only and nothing else of the host)")
            throw ExitCode(2)
        }
        let scanner: String
        do { scanner = try WorkerProgram.locate(name: "cordon-scan") } catch {
            printError("cordon install: \(error)")
            throw ExitCode(2)
        }
        var environment = SandboxEnvironment(runtimeDir: Locations(runtimeDir: locations.runtimeDir).resolvedRuntimeDir())
        environment.egress = EgressSettings(hostsFile: dnsHosts)
        var setup = InstallRun.Setup(scanner: scanner, database: FileSystem.absolute(Locations(stateDir: locations.stateDir).vulnDB().path), environment: environment,
                                     seccompCache: "\(stateDir)/cache/seccomp")
        setup.python = python
        do { setup.uv = try InstallRun.findUV(uv) } catch {
            printError("cordon install: \(error)")
            throw ExitCode(2)
        }
        let packages: PackageStore
        do {
            try FileSystem.makeDirectories(stateDir, mode: 0o755)
            packages = try PackageStore(root: "\(stateDir)/store")
        } catch {
            printError("cordon install: the store: \(error)")
            throw ExitCode(2)
        }
        // Work an interrupted install left behind (its process gone).
        for problem in packages.removeStale(setsAside: false) { printError("cordon install: \(problem)") }
        let bar = isatty(2) == 1 && !json ? ProgressBar(python: python, index: "\(gate.index)") : nil
        let run = InstallRun(gate: gate, policyName: policy, store: packages, setup: setup)
        let outcome: InstallRun.Outcome
        do {
            outcome = try run.run(parsed, source: source) { step in bar?.show(step.json) }
            bar?.end()
        } catch {
            bar?.end()
            printError("cordon install: \(error.description)")
            throw ExitCode(2)
        }
        var record = outcome.record
        do {
            let path = try packages.writeRecord(outcome.record)
            if case .object(var members) = record { members.append(("recordPath", .string(path))); record = .object(members) }
        } catch {
            printError("cordon install: keeping its record: \(error)")
        }
        if json {
            var members: [(String, JSON)] = []
            if case .object(let m) = record { members = m }
            members.append(("path", outcome.set.map { .string($0.site) } ?? .null))
            print(JSON.object(members).text(JSON.Format(indent: "  ")))
        } else {
            for v in outcome.verdicts {
                // A verdict's own text says "warning:" after the file; here the word leads.
                printError("cordon install: \(v.refuses ? "refused" : "warning"): \(v.package) \(v.version) \(v.filename): \(v.evidence) (\(v.rule.key))")
            }
            if let set = outcome.set {
                let n = outcome.record["files"]?.arrayValue?.count ?? 0
                print("\(outcome.reused ? "already in the store" : "installed") \(n) file\(n == 1 ? "" : "s"): set \(set.hash)")
                print("  site: \(set.site)  (bound read-only into a sandbox, on its PYTHONPATH)")
            } else {
                let refused = Set(outcome.verdicts.filter(\.refuses).map(\.filename)).count
                printError("cordon install: refused: \(refused) file\(refused == 1 ? "" : "s") did not pass policy \(policy)'s [install] gate; nothing was installed")
            }
        }
        if outcome.refused { throw ExitCode(1) }
    }

    /// The requirements of the arguments and of each -r file, checked here (with their file and
    /// line), with where they came from and the text to send cordond.
    func readRequirements() throws -> (requirements: [Requirement], source: String, text: String) {
        var parsed: [Requirement] = []
        var source = "the command line"
        var text = requirements.joined(separator: "\n")
        do {
            for (i, line) in requirements.enumerated() {
                if let r = try RequirementsFile.parseLine(line, source: "argument", line: i + 1) { parsed.append(r) }
            }
            for file in requirement {
                source = requirements.isEmpty && requirement.count == 1 ? file : "\(source) and \(file)"
                let bytes: [UInt8]
                do { bytes = try FileSystem.readRegularFile(file, limit: RequirementsFile.maxBytes) } catch {
                    printError("cordon install: \(file): \(error)")
                    throw ExitCode(2)
                }
                let fileText = String(decoding: bytes, as: UTF8.self)
                parsed += try RequirementsFile.parse(fileText, source: file)
                text += (text.isEmpty ? "" : "\n") + fileText
            }
        } catch let e as RequirementsError {
            printError("cordon install: \(e)")
            throw ExitCode(2)
        }
        return (parsed, source, text)
    }

    /// The install's progress on a terminal: one line redrawn in place, a bar of the steps done
    /// and what the current one is at; ended (a newline) before anything else is printed.
    final class ProgressBar {
        let python: String
        let index: String
        private var drawn = false
        static let steps = ["describing", "resolving", "pages", "downloading", "checking", "building", "installing"]
        static let width = 24
        init(python: String, index: String) {
            self.python = python
            self.index = index
        }

        /// What the step is doing, in words.
        func text(_ step: JSON) -> String? {
            let n = Int(step["count"]?.intValue ?? 0)
            let s = n == 1 ? "" : "s"
            switch step["step"]?.stringValue {
            case "describing": return "reading \(python)'s version and platform"
            case "resolving": return "resolving \(n) requirement\(s)"
            case "pages": return "fetching \(n) index page\(s) from \(index)"
            case "downloading": return "downloading \(n) file\(s)\(step["bytes"]?.intValue.map { " (\(Units.formatSize(UInt64(max(0, $0)))))" } ?? "")"
            case "checking": return "checking \(n) file\(s) (identity, RECORD, advisories, heuristics)"
            case "building": return "building \(PrintableText.of(step["file"]?.stringValue ?? "")) (no network)"
            case "installing": return "unpacking \(n) wheel\(s)"
            default: return nil
            }
        }

        func show(_ step: JSON) {
            guard let text = text(step), let i = Self.steps.firstIndex(of: step["step"]?.stringValue ?? "") else { return }
            let filled = Self.width * i / Self.steps.count
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: Self.width - filled)
            FileDescriptorIO.writeAll(2, "\r\u{1B}[Kcordon install [\(bar)] \(text)")
            drawn = true
        }

        func end() {
            if drawn { FileDescriptorIO.writeAll(2, "\r\u{1B}[K") }
            drawn = false
        }
    }

    /// `install.run` through cordond: the requirements read here (as this user), decided by the
    /// gate of a policy this user may use, installed into cordond's store.
    func throughDaemon() throws {
        let daemonOnly = "through cordond the policy's [install] table and cordond's own set-up decide"
        for (flag, given) in [("--index", index != nil), ("--uv", uv != nil), ("--dns-hosts", dnsHosts != nil), ("--python", python != "/usr/bin/python3"),
                              ("--state-dir", locations.stateDir != nil)] where given {
            printError("cordon install: \(flag): not taken through cordond (\(daemonOnly); as root, leave out --socket)")
            throw ExitCode(2)
        }
        if list {
            printError("cordon install: --list: the store is cordond's; list it as root (`sudo cordon install --list`)")
            throw ExitCode(2)
        }
        let (parsed, _, text) = try readRequirements()
        let socketPath = Locations.socketPath(socket)
        var params: [(String, JSON)] = [("policy", .string(policy)), ("progress", .bool(isatty(2) == 1 && !json))]
        if requirement.isEmpty { params.append(("requirements", .array(requirements.map(JSON.string)))) } else { params.append(("lock", .string(text))) }
        if parsed.isEmpty {
            printError("cordon install: no requirements")
            throw ExitCode(2)
        }
        let client: RPCClient
        do { client = try RPCClient(socketPath: socketPath) } catch {
            printError("cordon install: \(error)\(geteuid() != 0 && socket == nil ? " (not root: cordon install asks cordond, which is not answering there)" : "")")
            throw ExitCode(2)
        }
        let answer: JSON
        let bar = isatty(2) == 1 && !json ? ProgressBar(python: "cordond's python3", index: "policy \(policy)'s index") : nil
        do {
            answer = try client.call("install.run", .object(params)) { method, note in
                if method == "install.progress" { bar?.show(note) }
            }
            bar?.end()
        } catch let e as RPCError {
            bar?.end()
            printError("cordon install: \(PrintableText.of(e.message))")
            throw ExitCode(2)
        } catch {
            bar?.end()
            printError("cordon install: \(error)")
            throw ExitCode(2)
        }
        let refused = answer["outcome"]?.stringValue == "refused"
        if json {
            print(answer.text(JSON.Format(indent: "  ")))
        } else {
            for v in answer["verdicts"]?.arrayValue ?? [] {
                let line = "\(v["package"]?.stringValue ?? "") \(v["version"]?.stringValue ?? "") \(v["filename"]?.stringValue ?? ""): \(v["evidence"]?.stringValue ?? "") (\(v["rule"]?.stringValue ?? ""))"
                printError("cordon install: \(v["refuses"]?.boolValue == true ? "refused" : "warning"): \(PrintableText.of(line))")
            }
            if refused {
                printError("cordon install: refused: nothing was installed (record: \(answer["record"]?.stringValue ?? "?"))")
            } else {
                let n = answer["files"]?.arrayValue?.count ?? 0
                print("\(answer["outcome"]?.stringValue == "reused" ? "already in the store" : "installed") \(n) file\(n == 1 ? "" : "s"): set \(answer["set"]?.stringValue ?? "?")")
            }
        }
        if refused { throw ExitCode(1) }
    }

    func listSets() throws {
        guard FileSystem.isDirectory(storeRoot) else {
            if json { print("[]") } else { print("no sets: \(storeRoot) does not exist yet") }
            return
        }
        let packages: PackageStore
        do { packages = try PackageStore(root: storeRoot) } catch {
            printError("cordon install: the store: \(error)")
            throw ExitCode(2)
        }
        let sets = packages.installedSets()
        if json {
            print(JSON.array(sets.map { s in
                .object([("hash", .string(s.hash)), ("site", .string(s.site)), ("files", s.lock["files"] ?? .array([])),
                         ("python", s.lock["python"] ?? .null), ("index", s.lock["index"] ?? .null)])
            }).text(JSON.Format(indent: "  ")))
            return
        }
        if sets.isEmpty { print("no sets in \(storeRoot)") }
        for s in sets {
            let files = s.lock["files"]?.arrayValue ?? []
            let names = files.compactMap { f in f["name"]?.stringValue.map { "\($0)==\(f["version"]?.stringValue ?? "?")" } }
            print("\(s.hash)  \(files.count) file\(files.count == 1 ? "" : "s"): \(names.prefix(6).joined(separator: " "))\(names.count > 6 ? " …" : "")")
        }
    }
}
