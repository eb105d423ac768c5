import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `make install` and `make uninstall`, run for real into a scratch DESTDIR (or PREFIX) with the
/// binaries this test bundle was built with (`BIN=`: no release build inside a test), then the
/// installed tree used as a person would: the installed `cordon` runs a sandbox with the
/// installed cordon-init, the completions load in bash, the man pages render, the units verify.
struct InstallTests {
    /// A scratch directory that `make install` fills; removed with the value.
    final class Stage {
        let dir: String
        init(_ name: String) throws {
            dir = "/tmp/cordon-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            // The sandboxes' unprivileged root must reach the runtime dir below it.
            chmod(dir, 0o755)
        }
        deinit { try? FileManager.default.removeItem(atPath: dir) }
    }

    static let prefix = "/usr/local"

    static func make(_ target: String, _ variables: [String]) -> (status: Int32, stdout: String, stderr: String) {
        TestDaemon.exec("/usr/bin/make", ["-s", "-C", TestDaemon.repoRoot, target, "BIN=\(TestDaemon.productsDir)"] + variables)
    }

    /// Installs into `stage` as DESTDIR with the default PREFIX; returns the installed prefix.
    static func install(_ stage: Stage) throws -> String {
        let r = make("install", ["DESTDIR=\(stage.dir)"])
        try #require(r.status == 0, "make install: \(r.stderr)")
        return stage.dir + prefix
    }

    /// Every regular file under `dir`, relative to it, with its mode and owner.
    static func files(under dir: String) -> [String: (mode: mode_t, uid: uid_t)] {
        var out: [String: (mode_t, uid_t)] = [:]
        guard let walk = FileManager.default.enumerator(atPath: dir) else { return out }
        for case let relative as String in walk {
            var st = stat()
            guard lstat("\(dir)/\(relative)", &st) == 0, st.st_mode & S_IFMT != S_IFDIR else { continue }
            out[relative] = (st.st_mode, st.st_uid)
        }
        return out
    }

    /// What install must put, relative to DESTDIR+PREFIX, and each file's mode.
    static func expected() throws -> [String: mode_t] {
        var out: [String: mode_t] = [
            "bin/cordon": 0o755, "bin/cordond": 0o755, "bin/cordon-scan": 0o755, "libexec/cordon/cordon-init": 0o755, "libexec/cordon/cordon-model-worker": 0o755,
            "share/man/man1/cordon.1": 0o644, "share/man/man8/cordond.8": 0o644,
            "share/bash-completion/completions/cordon": 0o644, "share/bash-completion/completions/cordond": 0o644,
            "share/zsh/site-functions/_cordon": 0o644, "share/zsh/site-functions/_cordond": 0o644,
            "share/fish/vendor_completions.d/cordon.fish": 0o644, "share/fish/vendor_completions.d/cordond.fish": 0o644,
            "lib/systemd/system/cordond.service": 0o644, "lib/systemd/system/cordond.socket": 0o644,
            "share/doc/cordon/README.md": 0o644, "share/doc/cordon/SECURITY.md": 0o644, "share/doc/cordon/daemon.md": 0o644,
            "share/doc/cordon/policies.md": 0o644, "share/doc/cordon/tools.md": 0o644, "share/doc/cordon/policy.schema.json": 0o644,
            "share/doc/cordon/models.schema.json": 0o644,
            "share/doc/cordon/examples/cordond.toml": 0o644, "share/doc/cordon/examples/models.toml": 0o644,
            "share/doc/cordon/models.md": 0o644,
        ]
        // Every shipped policy and profile, as examples (the binaries embed the same files), and
        // the shipped tool manifests (tools/ also holds the dev scripts, which are not installed).
        for dir in ["policies", "profiles/seccomp", "profiles/runtime", "tools"] {
            for name in try FileManager.default.contentsOfDirectory(atPath: "\(TestDaemon.repoRoot)/\(dir)")
            where dir != "tools" || name.hasSuffix(".toml") {
                out["share/doc/cordon/examples/\(dir)/\(name)"] = 0o644
            }
        }
        return out
    }

    @Test func installPutsEveryFileWithItsModeAndUninstallRemovesThem() throws {
        let stage = try Stage("install")
        let root = try Self.install(stage)
        let installed = Self.files(under: stage.dir)
        let expected = try Self.expected()
        #expect(Set(installed.keys) == Set(expected.keys.map { "\(Self.prefix.dropFirst())/\($0)" }),
                "unexpected: \(Set(installed.keys).subtracting(expected.keys.map { "\(Self.prefix.dropFirst())/\($0)" }).sorted())")
        for (path, mode) in expected {
            guard let file = installed["\(Self.prefix.dropFirst())/\(path)"] else { Issue.record("missing: \(path)"); continue }
            #expect(file.mode & S_IFMT == S_IFREG, "\(path): not a regular file")
            #expect(file.mode & 0o7777 == mode, "\(path): mode \(String(file.mode & 0o7777, radix: 8))")
            if TestDaemon.isRoot { #expect(file.uid == 0, "\(path): owner \(file.uid)") }
        }
        // The unit runs the installed daemon, and names the installed documentation.
        let unit = try String(contentsOfFile: "\(root)/lib/systemd/system/cordond.service", encoding: .utf8)
        #expect(unit.contains("\nExecStart=\(Self.prefix)/bin/cordond\n"), "\(unit)")
        #expect(unit.contains("file://\(Self.prefix)/share/doc/cordon/README.md"))

        let r = Self.make("uninstall", ["DESTDIR=\(stage.dir)"])
        #expect(r.status == 0, "make uninstall: \(r.stderr)")
        #expect(Self.files(under: stage.dir).isEmpty, "left behind: \(Self.files(under: stage.dir).keys.sorted())")
        for own in ["libexec/cordon", "share/doc/cordon"] {
            #expect(!FileManager.default.fileExists(atPath: "\(root)/\(own)"), "\(own) left behind")
        }
    }

    /// The installed `cordon` finds the installed cordon-init (PREFIX/libexec/cordon, beside its
    /// bin directory) and runs a sandbox with it; made group-writable, the same file is refused
    /// by name, which shows that this file, not another one, was the one used.
    @Test(.enabled(if: TestDaemon.isRoot)) func theInstalledCordonRunsASandboxWithTheInstalledInit() throws {
        let stage = try Stage("install-run")
        let root = try Self.install(stage)
        for sub in ["config", "state", "run"] {
            try FileManager.default.createDirectory(atPath: "\(stage.dir)/\(sub)", withIntermediateDirectories: true)
        }
        chmod("\(stage.dir)/run", 0o755)
        let locations = ["--config-dir", "\(stage.dir)/config", "--state-dir", "\(stage.dir)/state", "--runtime-dir", "\(stage.dir)/run"]
        let ok = TestDaemon.exec("\(root)/bin/cordon", ["run"] + locations + ["--", "/bin/sh", "-c", "echo inside"])
        #expect(ok.status == 0 && ok.stdout == "inside\n", "\(ok.stderr)")

        let initPath = "\(root)/libexec/cordon/cordon-init"
        chmod(initPath, 0o775)
        let refused = TestDaemon.exec("\(root)/bin/cordon", ["run"] + locations + ["--", "/bin/true"])
        #expect(refused.status == 125)
        #expect(refused.stderr.contains(initPath) && refused.stderr.contains("writable by root only"), "\(refused.stderr)")

        // `cordon scan` runs the cordon-scan installed beside it.
        let scan = TestDaemon.exec("\(root)/bin/cordon", ["scan", "--help"])
        #expect(scan.status == 0 && scan.stdout.contains("--fail-on"), "\(scan.stderr)")
    }

    /// The installed example configuration, copied where cordond reads it, passes the daemon's
    /// own check (the parser-level tests are in ExampleConfigTests).
    @Test(.enabled(if: TestDaemon.isRoot)) func theInstalledExampleConfigurationChecks() throws {
        let stage = try Stage("install-config")
        let root = try Self.install(stage)
        let config = "\(stage.dir)/etc-cordon"
        try FileManager.default.createDirectory(atPath: config, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(root)/share/doc/cordon/examples/cordond.toml", toPath: "\(config)/cordond.toml")
        let r = TestDaemon.exec("\(root)/bin/cordond", ["--config-dir", config, "--check-config"])
        #expect(r.status == 0 && r.stdout.contains("configuration OK"), "\(r.stdout)\(r.stderr)")
    }

    /// Completes a command line with the installed bash completion, the way bash-completion
    /// calls it (extglob on, COMP_* set); returns the candidates.
    static func complete(_ script: String, _ line: String) -> [String] {
        let driver = """
        shopt -s extglob
        source "$1"
        complete -p cordon >/dev/null || exit 3
        COMP_LINE="$2"; read -ra COMP_WORDS <<< "$2"; [[ "$2" == *" " ]] && COMP_WORDS+=("")
        COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMP_POINT=${#COMP_LINE}; COMPREPLY=()
        _cordon cordon "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
        printf '%s\\n' "${COMPREPLY[@]}"
        """
        let r = TestDaemon.exec("/bin/bash", ["-c", driver, "complete", script, line])
        return r.status == 0 ? r.stdout.split(separator: "\n").map(String.init) : ["exit \(r.status): \(r.stderr)"]
    }

    @Test func theInstalledCompletionsLoad() throws {
        let stage = try Stage("install-completion")
        let root = try Self.install(stage)
        let bash = "\(root)/share/bash-completion/completions"
        for tool in ["cordon", "cordond"] {
            let r = TestDaemon.exec("/bin/bash", ["-n", "\(bash)/\(tool)"])
            #expect(r.status == 0 && r.stderr.isEmpty, "\(tool): \(r.stderr)")
        }
        #expect(Self.complete("\(bash)/cordon", "cordon ru") == ["run"])
        #expect(Self.complete("\(bash)/cordon", "cordon run --po") == ["--policy"])
        #expect(Set(Self.complete("\(bash)/cordon", "cordon policy ")).isSuperset(of: ["check", "explain", "score", "diff", "schema"]))
        let daemon = TestDaemon.exec("/bin/bash", ["-c", "shopt -s extglob; source \"$1\"; complete -p cordond", "x", "\(bash)/cordond"])
        #expect(daemon.status == 0 && daemon.stdout.contains("cordond"), "\(daemon.stderr)")

        // zsh and fish check their scripts' syntax where they are installed (CI installs both).
        for (shell, args, path) in [("/usr/bin/zsh", ["-n"], "\(root)/share/zsh/site-functions/_cordon"),
                                    ("/usr/bin/fish", ["--no-execute"], "\(root)/share/fish/vendor_completions.d/cordon.fish")]
        where FileManager.default.fileExists(atPath: shell) {
            let r = TestDaemon.exec(shell, args + [path])
            #expect(r.status == 0 && r.stderr.isEmpty, "\(shell): \(r.stderr)")
        }
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/usr/bin/groff") && FileManager.default.fileExists(atPath: "/usr/bin/man")))
    func theInstalledManPagesRenderWithoutWarnings() throws {
        let stage = try Stage("install-man")
        let root = try Self.install(stage)
        for (page, mustSay) in [("man1/cordon.1", ["cordon run", "--policy", "cordon scan", "--fail-on", "cordon policy check", "cordond(8)"]),
                                ("man8/cordond.8", ["--check-config", "--config-dir", "\(Self.prefix)/share/doc/cordon/examples/cordond.toml", "cordon(1)"])] {
            let path = "\(root)/share/man/\(page)"
            let groff = TestDaemon.exec("/usr/bin/groff", ["-man", "-Tutf8", "-ww", "-z", path])
            #expect(groff.status == 0 && groff.stderr.isEmpty, "\(page): \(groff.stderr)")
            let man = TestDaemon.exec("/usr/bin/env", ["MANWIDTH=200", "/usr/bin/man", "--warnings=all", "-l", path])
            #expect(man.status == 0 && man.stderr.isEmpty, "\(page): \(man.stderr)")
            // man's output is what a reader sees: hyphens may come out as U+2010 or U+2212.
            let text = man.stdout.replacingOccurrences(of: "\u{2010}", with: "-").replacingOccurrences(of: "\u{2212}", with: "-")
            for phrase in mustSay { #expect(text.contains(phrase), "\(page) does not say \(phrase)") }
        }
    }
}
