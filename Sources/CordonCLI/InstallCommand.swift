import ArgumentParser
import CordonCommandLine
import CordonConfig
import CordonInstall
import CordonJSON
import CordonPackaging
import CordonPolicy
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
        guard geteuid() == 0 else {
            printError("cordon install: run it as root (it makes sandboxes and writes the store in \(storeRoot)); through cordond for other users is not built yet")
            throw ExitCode(2)
        }
        if list { return try listSets() }
        var parsed: [Requirement] = []
        var source = "the command line"
        do {
            for (i, text) in requirements.enumerated() {
                if let r = try RequirementsFile.parseLine(text, source: "argument", line: i + 1) { parsed.append(r) }
            }
            for file in requirement {
                source = requirements.isEmpty && requirement.count == 1 ? file : "\(source) and \(file)"
                let bytes: [UInt8]
                do { bytes = try FileSystem.readRegularFile(file, limit: RequirementsFile.maxBytes) } catch {
                    printError("cordon install: \(file): \(error)")
                    throw ExitCode(2)
                }
                parsed += try RequirementsFile.parse(String(decoding: bytes, as: UTF8.self), source: file)
            }
        } catch let e as RequirementsError {
            printError("cordon install: \(e)")
            throw ExitCode(2)
        }
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
        let terminal = isatty(2) == 1 && !json
        let run = InstallRun(gate: gate, policyName: policy, store: packages, setup: setup)
        let outcome: InstallRun.Outcome
        do {
            outcome = try run.run(parsed, source: source) { step in
                guard terminal else { return }
                switch step {
                case .describing: printError("cordon install: reading \(python)'s version and platform")
                case .building(let f): printError("cordon install: building \(f) in the build sandbox (no network)")
                case .resolving(let n): printError("cordon install: resolving \(n) requirement\(n == 1 ? "" : "s") with pip (wheels only)")
                case .pages(let n): printError("cordon install: fetching \(n) index page\(n == 1 ? "" : "s") from \(gate.index)")
                case .downloading(let n, let bytes): printError("cordon install: downloading \(n) file\(n == 1 ? "" : "s")\(bytes.map { " (\(Units.formatSize(UInt64($0))))" } ?? "")")
                case .checking(let n): printError("cordon install: checking \(n) file\(n == 1 ? "" : "s") (identity, RECORD, advisories, heuristics)")
                case .installing(let n): printError("cordon install: unpacking \(n) wheel\(n == 1 ? "" : "s")")
                case .reused: break
                }
            }
        } catch {
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
                printError("cordon install: \(v.refuses ? "refused" : "warning"): \(v)")
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
