// swift-tools-version:6.2
import PackageDescription

// C libraries come from Debian's -dev packages (see .ci/run); each is a system-library target
// with a one-line shim header.
func systemLibrary(_ name: String, _ pkgConfig: String, _ apt: String) -> Target {
    .systemLibrary(name: name, pkgConfig: pkgConfig, providers: [.apt([apt])])
}

// `make release` sets CORDON_RELEASE_LINK=1: `cordon` is then linked for start-up time (every
// `cordon run` pays it): libstdc++ static (tools/link/libstdc++.so), no dynamic symbol table
// for its own code (the loader searched 4,700 symbols first on every lookup), relative
// relocations packed (DT_RELR: 960 KB of relocation table not read). Debug and test builds link
// as SwiftPM does. docs/architecture.md, "Spawn cost", has the numbers.
let startupLink: [LinkerSetting] = Context.environment["CORDON_RELEASE_LINK"] == "1"
    ? [.unsafeFlags(["-use-ld=lld", "-L\(Context.packageDirectory)/tools/link", "-Xlinker", "--no-export-dynamic",
                     "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"])]
    : []

let strictC: [CSetting] = [.unsafeFlags(["-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"])]

let package = Package(
    name: "cordon",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "cordon", targets: ["cordon"]),
        .executable(name: "cordon-scan", targets: ["cordon-scan"]),
        .executable(name: "cordond", targets: ["cordond"]),
        .executable(name: "cordon-init", targets: ["cordon-init"]),
        .executable(name: "cordon-model-worker", targets: ["cordon-model-worker"]),
        // The parsers of untrusted input, for the libFuzzer package in Fuzz/ (its own Package.swift).
        .library(name: "CordonJSON", targets: ["CordonJSON"]),
        .library(name: "CordonPolicy", targets: ["CordonPolicy"]),
        .library(name: "CordonSchema", targets: ["CordonSchema"]),
        .library(name: "CordonDefaults", targets: ["CordonDefaults"]),
        .library(name: "CordonRPC", targets: ["CordonRPC"]),
        .library(name: "CordonArchive", targets: ["CordonArchive"]),
        .library(name: "CordonScan", targets: ["CordonScan"]),
        .library(name: "CordonPackaging", targets: ["CordonPackaging"]),
        .library(name: "CordonVulnDB", targets: ["CordonVulnDB"]),
        .library(name: "CordonHTTP", targets: ["CordonHTTP"]),
        .library(name: "CordonEgress", targets: ["CordonEgress"]),
        .library(name: "CordonModels", targets: ["CordonModels"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // Layers: a target depends only on targets of its own layer or of the layers above it.
        // Each "// LAYER n · name" line opens a layer; tools/check-layers (run by `make test`)
        // reads these lines and `swift package dump-package`, and fails on a dependency on a
        // lower layer, a target in no layer, or a worker that reaches what its line forbids.

        // LAYER 0 · C: system libraries and shims
        systemLibrary("CSeccomp", "libseccomp", "libseccomp-dev"),
        systemLibrary("CCap", "libcap", "libcap-dev"),
        systemLibrary("CSQLite", "sqlite3", "libsqlite3-dev"),
        systemLibrary("CCurl", "libcurl", "libcurl4-openssl-dev"),
        systemLibrary("CArchive", "libarchive", "libarchive-dev"),
        systemLibrary("CYAML", "yaml-0.1", "libyaml-dev"),
        // The only code that runs between clone and execve: async-signal-safe C, one entry point.
        .target(name: "CSpawn", cSettings: strictC),
        // Shims the parent needs: variadic syscalls, prctl, macros.
        .target(name: "CLinux", cSettings: strictC),

        // LAYER 1 · pure, no I/O
        // The one JSON codec: strict parsing with caps, key offsets, compact and indented writing (pure).
        .target(name: "CordonJSON"),
        .target(name: "CordonPolicy", dependencies: ["CordonJSON", "CordonScan"]),
        // HTTP/1.x requests read strictly and under caps: the head (the egress proxy's and the
        // endpoint engine's), Content-Length and chunked bodies, pipelining (pure).
        .target(name: "CordonHTTP", dependencies: ["CordonPolicy"]),
        // JSON Schema (draft 2020-12) for MCP tool arguments: compiled once, validated under caps (pure).
        .target(name: "CordonSchema", dependencies: ["CordonJSON"]),
        // The shipped policies/ and profiles/ (symlinked into the target), embedded in the binary.
        .target(name: "CordonDefaults", exclude: ["profiles/seccomp/default.md"],
                resources: [
                    .embedInCode("policies/default.toml"),
                    .embedInCode("policies/python-tool.toml"),
                    .embedInCode("policies/shell-tool.toml"),
                    .embedInCode("policies/model-http.toml"),
                    .embedInCode("policies/model-worker.toml"),
                    .embedInCode("policies/model-server.toml"),
                    .embedInCode("policies/installer.toml"),
                    .embedInCode("policies/mcp-fetch.toml"),
                    .embedInCode("policies/mcp-git.toml"),
                    .embedInCode("policies/mcp-time.toml"),
                    .embedInCode("profiles/seccomp/default.json"),
                    .embedInCode("profiles/seccomp/strict.json"),
                    .embedInCode("profiles/runtime/python.toml"),
                    .embedInCode("profiles/runtime/node.toml"),
                    .embedInCode("profiles/runtime/shell.toml"),
                    .embedInCode("profiles/runtime/compiled.toml"),
                ]),
        // Pure core of `cordon scan`: version ordering per ecosystem and OSV matching. No
        // privileged calls and no I/O, so it can later run inside a sandboxed worker.
        .target(name: "CordonScan"),
        // Backoff, restart budgets and circuit breakers for supervised services (pure: the clock and
        // the randomness are injected).
        .target(name: "CordonResilience"),
        // Malicious-code heuristics over a package's files (pure).
        .target(name: "CordonHeuristics", dependencies: ["CordonJSON", "CordonScan"]),
        // Python packaging for the install gate: PEP 691 index pages read under caps, wheel and
        // sdist file names, pinned requirement lines with hashes, and the gate's decision (pure).
        .target(name: "CordonPackaging", dependencies: ["CordonJSON", "CordonPolicy", "CordonScan"]),

        // LAYER 2 · pure domain
        // MCP both ways (2025-11-25 and 2026-07-28): messages, bounded parsing, the client and
        // server sessions as pure state machines (docs/mcp.md). Tool manifests and the model
        // catalogue go here too.
        .target(name: "CordonMCP", dependencies: ["CordonJSON"]),
        // Tool manifests (tools/NAME.toml): parsed and checked, no I/O.
        .target(name: "CordonTools", dependencies: ["CordonPolicy", "CordonJSON", "CordonResilience", "CordonPackaging"]),
        // The model catalogue (models.toml), the selector, and the providers' wire formats
        // (OpenAI chat completions, Anthropic messages, server-sent events): parsed under
        // limits, no I/O. Reads [service] and [breaker] with the tool manifests' reader.
        .target(name: "CordonModels", dependencies: ["CordonTools", "CordonPolicy", "CordonJSON", "CordonResilience"]),

        // LAYER 3 · I/O owners
        // Typed wrappers of the system calls: files, cgroups, Landlock, uid ranges, time.
        .target(name: "CordonSystem", dependencies: ["CLinux"]),
        // A small SQLite wrapper shared by the vulnerability database and the audit store.
        .target(name: "CordonSQLite", dependencies: ["CSQLite"]),
        // Reading untrusted archives under hard limits, without extracting (no privileged calls).
        .target(name: "CordonArchive", dependencies: ["CArchive"]),
        // The install gate's store: verified archives by content, installed sets by their lock's
        // hash, gc under a flock; and the check of what a worker wrote, shared with the image store.
        .target(name: "CordonStore", dependencies: ["CordonSystem", "CordonJSON"]),
        // The wire protocol both sides share: framing, error codes, typed params, a client.
        .target(name: "CordonRPC", dependencies: ["CordonJSON", "CordonSystem", "CLinux"]),
        // Configuration lookup: locations, policies and profiles by name or path, settings files.
        .target(name: "CordonConfig", dependencies: ["CordonPolicy", "CordonDefaults", "CordonSystem", "CordonTools", "CordonPackaging"]),
        // The offline vulnerability database: OSV records (YAML or JSON, read with libyaml) in SQLite.
        .target(name: "CordonVulnDB", dependencies: ["CordonScan", "CordonSystem", "CordonArchive", "CordonSQLite", "CYAML"]),
        // HTTP/1.1 over libcurl for the model worker: one multi handle on one thread (connections
        // kept alive), bodies handed over as they arrive, every call bounded and cancellable.
        .target(name: "CordonHTTPClient", dependencies: ["CCurl", "CordonSystem"]),

        // LAYER 4 · engines
        // Sandbox egress: allowlist, DNS answers, ClientHello/HTTP parsing and the splice relay.
        .target(name: "CordonEgress", dependencies: ["CordonHTTP", "CordonPolicy", "CordonSystem", "CLinux"]),
        .target(name: "CordonSandbox", dependencies: [
            "CordonSystem", "CordonPolicy", "CordonConfig", "CordonEgress", "CordonJSON", "CSpawn", "CLinux", "CSeccomp",
        ]),
        // The daemon's audit store: tasks and events in SQLite (WAL), queries, retention.
        .target(name: "CordonAudit", dependencies: ["CordonSQLite", "CordonSystem", "CordonJSON"]),
        // Long-lived sandboxed services (MCP servers, local model servers): the stdio process,
        // JSON-RPC over it, the pool that starts, checks, restarts and stops instances.
        .target(name: "CordonServices", dependencies: ["CordonSandbox", "CordonSystem", "CordonRPC", "CordonJSON", "CordonResilience", "CordonMCP"]),
        // `cordon scan`: inventory, advisories, heuristics, and the report formats.
        .target(name: "CordonScanner", dependencies: ["CordonArchive", "CordonScan", "CordonVulnDB", "CordonHeuristics", "CordonPackaging", "CordonSystem", "CordonJSON"]),
        // cordond's OpenAI-compatible endpoint, the HTTP/1.1 side: an event loop that accepts
        // (Unix: SO_PEERCRED; TCP: TCP_NODELAY), reads requests under caps and deadlines, and
        // writes responses that handlers produce on other threads, whole or streamed.
        .target(name: "CordonHTTPServer", dependencies: ["CordonHTTP", "CordonSystem", "CordonJSON", "CLinux"]),

        // LAYER 5 · daemon services
        // cordond: socket server, JSON-RPC, authorization, scheduler, audit, metrics.
        // The tool registry's calls: authorized, validated, sandboxed, guarded, audited.
        .target(name: "CordonToolGateway", dependencies: [
            "CordonServices", "CordonTools", "CordonConfig", "CordonResilience", "CordonSchema", "CordonSandbox", "CordonMCP", "CordonSystem", "CordonJSON",
            "CordonPolicy", "CLinux",
        ]),
        // The model gateway's calls: authorized, chosen (a bandit per task type), made by a sandboxed
        // worker per provider, guarded by breakers, tried on fallbacks, audited (docs/models.md).
        .target(name: "CordonModelGateway", dependencies: [
            "CordonServices", "CordonModels", "CordonConfig", "CordonResilience", "CordonSandbox", "CordonPolicy", "CordonSystem", "CordonJSON",
        ]),
        // The install gate's runs: fetch, check and install in worker sandboxes, the decision, the store.
        .target(name: "CordonInstall", dependencies: [
            "CordonPackaging", "CordonPolicy", "CordonScan", "CordonSandbox", "CordonStore", "CordonSystem", "CordonJSON",
        ]),
        .target(name: "CordonDaemon", dependencies: [
            "CordonSandbox", "CordonPolicy", "CordonDefaults", "CordonConfig", "CordonSystem", "CordonAudit", "CordonRPC", "CordonJSON", "CLinux",
            "CordonStore", "CordonInstall", "CordonPackaging", "CordonToolGateway", "CordonTools", "CordonMCP", "CordonModelGateway", "CordonModels", "CordonHTTP", "CordonHTTPServer",
            .product(name: "Logging", package: "swift-log"),
        ]),

        // LAYER 6 · workers and what they share with the mains (never reach: CSpawn CSeccomp CCap CordonSandbox CordonEgress)
        // Programs that parse untrusted input and are meant to run unprivileged inside a sandbox.
        // A row above the mains: a main may use a worker's library, never the reverse.
        // What cordon and cordon-scan share on the command line (location flags, error output).
        .target(name: "CordonCommandLine", dependencies: [
            "CordonConfig", "CordonSystem", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // The scanner and the vulnerability database: a binary of its own (see ScanTool.swift).
        .target(name: "CordonScanCLI", dependencies: [
            "CordonCommandLine", "CordonConfig", "CordonScanner", "CordonVulnDB", "CordonHeuristics", "CordonScan", "CordonSystem", "CordonRPC",
            "CordonHTTPClient", "CordonPackaging", "CordonPolicy", "CordonJSON",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Swift's runtime linked in: cordond runs `cordon-scan unpack` inside a sandbox that has
        // only /usr's C libraries.
        .executableTarget(name: "cordon-scan", dependencies: ["CordonScanCLI"], linkerSettings: [.unsafeFlags(["-static-stdlib", "-Xlinker", "-l_FoundationCollections", "-Xlinker", "-l_FoundationCShims"])]),
        // The model worker: one per provider, holds its key, makes its HTTP calls and parses its
        // replies; cordond reads only canonical, bounded JSON from it (docs/models.md).
        .target(name: "CordonModelWorker", dependencies: ["CordonHTTPClient", "CordonModels", "CordonRPC", "CordonJSON", "CordonSystem"]),
        // Swift's runtime linked in: inside its sandbox it needs only /usr's C libraries.
        .executableTarget(name: "cordon-model-worker", dependencies: ["CordonModelWorker"],
                          linkerSettings: [.unsafeFlags(["-static-stdlib", "-Xlinker", "-l_FoundationCollections", "-Xlinker", "-l_FoundationCShims"])]),

        // LAYER 7 · mains
        .target(name: "CordonCLI", dependencies: [
            "CordonInstall", "CordonPackaging", "CordonStore", "CordonSandbox", "CordonPolicy", "CordonSystem", "CordonRPC", "CordonJSON", "CordonConfig", "CordonCommandLine", "CordonTools", "CordonMCP",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Release builds link the Swift runtime statically (`make release`): start-up counts.
        .executableTarget(name: "cordon", dependencies: ["CordonCLI", "CLinux"], linkerSettings: startupLink),
        .executableTarget(name: "cordond", dependencies: [
            "CordonDaemon", "CordonRPC", "CordonConfig", "CordonSystem",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // pid 1 of every sandbox, executed once the workload runs: freestanding C (raw system
        // calls, its own _start, no libc start-up), linked static so it runs inside any root.
        .executableTarget(name: "cordon-init",
                          cSettings: [.unsafeFlags(["-Wall", "-Wextra", "-Werror", "-ffreestanding", "-fno-builtin",
                                                    "-fno-stack-protector", "-fno-stack-clash-protection"])],
                          linkerSettings: [.unsafeFlags(["-static-executable", "-Xclang-linker", "-nostartfiles", "-Xlinker", "--gc-sections"])]),

        // LAYER 8 · tests
        .testTarget(name: "CordonJSONTests", dependencies: ["CordonJSON"], exclude: ["canonical.py"]),
        .testTarget(name: "CordonToolsTests", dependencies: ["CordonTools", "CordonPolicy", "CordonJSON"], exclude: ["Fixtures"]),
        .testTarget(name: "CordonSchemaTests", dependencies: ["CordonSchema", "CordonJSON"]),
        .testTarget(name: "CordonPolicyTests", dependencies: ["CordonPolicy"], exclude: ["Fixtures", "schema_verdicts.py"]),
        .testTarget(name: "CordonSystemTests", dependencies: ["CordonSystem"]),
        .testTarget(name: "CordonRPCTests", dependencies: ["CordonRPC", "CordonSystem"]),
        .testTarget(name: "CordonMCPTests", dependencies: ["CordonMCP", "CordonJSON"], exclude: ["validate_mcp.py"]),
        .testTarget(name: "CordonScanTests", dependencies: ["CordonScan"]),
        .testTarget(name: "CordonPackagingTests", dependencies: ["CordonPackaging", "CordonPolicy", "CordonJSON"]),
        .testTarget(name: "CordonStoreTests", dependencies: ["CordonStore", "CordonSystem", "CordonJSON"]),
        .testTarget(name: "CordonResilienceTests", dependencies: ["CordonResilience"]),
        .testTarget(name: "CordonModelsTests", dependencies: ["CordonModels", "CordonPolicy", "CordonJSON", "CordonResilience"]),
        .testTarget(name: "CordonVulnDBTests", dependencies: ["CordonVulnDB", "CordonScan"]),
        .testTarget(name: "CordonArchiveTests", dependencies: ["CordonArchive"]),
        .testTarget(name: "CordonHeuristicsTests", dependencies: ["CordonHeuristics"]),
        .testTarget(name: "CordonScannerTests", dependencies: ["CordonScanner", "CordonVulnDB", "CordonHeuristics"],
                    exclude: ["validate_schema.py", "make_packages.py", "make_index.py", "index_standin.py"]),
        .testTarget(name: "CordonCLITests", dependencies: [
            "CordonCLI", "CordonConfig", "CordonSandbox", "CordonDefaults", "CordonJSON", "CordonTools", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Links all five C libraries: proves the -dev packages CI installs are complete. (The
        // cordon binary itself loads only what `cordon run` needs: start-up time counts.)
        .testTarget(name: "SystemLibraryTests", dependencies: ["CSeccomp", "CCap", "CSQLite", "CCurl", "CArchive"]),
        .testTarget(name: "CordonEgressTests", dependencies: ["CordonEgress", "CordonHTTP", "CordonPolicy", "CordonSystem"]),
        .testTarget(name: "CordonHTTPTests", dependencies: ["CordonHTTP"]),
        .testTarget(name: "CordonHTTPServerTests", dependencies: ["CordonHTTPServer", "CordonHTTP", "CordonSystem", "CLinux"],
                    exclude: ["http_clients.py", "openai_client.py"]),
        .testTarget(name: "CordonAuditTests", dependencies: ["CordonAudit", "CordonSQLite"]),
        .testTarget(name: "CordonDaemonTests", dependencies: ["CordonDaemon", "CordonRPC", "CordonJSON", "CordonAudit", "CordonSystem", "CLinux", "CordonTestNetwork"],
                    exclude: ["mcp_client.py", "mcp_concurrent.py", "mcp_stalls.py", "openai_endpoint.py", "hostile_server.py", "make_root_image.py",
                             "mcp-server-time.lock"]),
        .testTarget(name: "CordonToolGatewayTests", dependencies: [
            "CordonToolGateway", "CordonTools", "CordonConfig", "CordonPolicy", "CordonSandbox", "CordonMCP", "CordonJSON", "CordonSystem",
        ], exclude: ["faulty_server.py", "hostile_server.py"]),
        .testTarget(name: "CordonModelGatewayTests", dependencies: [
            "CordonModelGateway", "CordonModels", "CordonServices", "CordonConfig", "CordonSandbox", "CordonJSON", "CordonSystem",
        ]),
        .testTarget(name: "CordonServicesTests", dependencies: ["CordonServices", "CordonSandbox", "CordonConfig", "CordonPolicy", "CordonJSON", "CordonSystem"]),
        .testTarget(name: "CordonModelWorkerTests", dependencies: ["CordonModels", "CordonJSON", "CordonHTTPClient"], exclude: ["provider_standin.py"]),
        .testTarget(name: "CordonSandboxTests", dependencies: [
            "CordonSandbox", "CordonConfig", "CordonPolicy", "CordonSystem", "CLinux", "CSpawn", "CSeccomp", "CordonTestNetwork",
        ], exclude: ["egress_servers.py"]),
        // The network namespaces tests make (a veth pair, TEST-NET addresses inside them only).
        .target(name: "CordonTestNetwork", path: "Tests/CordonTestNetwork"),
    ]
)

// Swift warnings are errors in every Cordon target (C targets: -Werror above). Per target, so it
// never reaches swift-argument-parser or swift-log: a dependency's warnings stay warnings.
for target in package.targets where target.type != .system {
    target.swiftSettings = (target.swiftSettings ?? []) + [.treatAllWarnings(as: .error)]
}
