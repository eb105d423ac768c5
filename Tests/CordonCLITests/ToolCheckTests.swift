import CordonConfig
import CordonJSON
import CordonTools
import Foundation
import Testing

/// `cordon tool check`: a manifest's policy must load and its fallbacks must exist (one level:
/// two tools may back each other up); every problem carries its file and line; `--json` says
/// the same; the exit status is 1 when anything is wrong.
struct ToolCheckTests {
    static let productsDir: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent
    }()

    static func scratch() throws -> String {
        let dir = NSTemporaryDirectory() + "cordon-tool-check-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: "\(dir)/cfg/tools", withIntermediateDirectories: true)
        try """
            [tool]
            kind = "mcp"
            description = "Current time"
            command = ["/usr/bin/python3", "-m", "mcp_server_time"]
            policy = "python-tool"
            fallbacks = ["clock"]
            """.write(toFile: "\(dir)/cfg/tools/time.toml", atomically: true, encoding: .utf8)
        return dir
    }

    static let clock = """
        [tool]
        kind = "command"
        description = "The date"
        argv = ["/usr/bin/date", "-u"]
        input_schema = { type = "object" }
        policy = "%POLICY%"
        fallbacks = ["time.get_current_time", "%FALLBACK%"]
        """

    @Test func aGoodPairBackingEachOtherUpPasses() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.clock.replacingOccurrences(of: "%POLICY%", with: "default").replacingOccurrences(of: ", \"%FALLBACK%\"", with: "")
            .write(toFile: "\(dir)/clock.toml", atomically: true, encoding: .utf8)
        let store = ToolStore(configDir: "\(dir)/cfg", policies: PolicyStore(configDir: "\(dir)/cfg"))
        let clock = try store.load(path: "\(dir)/clock.toml").get()
        let time = try store.load(path: "\(dir)/cfg/tools/time.toml").get()
        #expect(store.manifestPaths() == ["\(dir)/cfg/tools/time.toml"])
        #expect(store.check([clock, time]).isEmpty)
    }

    @Test func anUnknownPolicyAndFallbackAreNamedWithTheirLines() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.clock.replacingOccurrences(of: "%POLICY%", with: "defualt").replacingOccurrences(of: "%FALLBACK%", with: "tme")
            .write(toFile: "\(dir)/clock.toml", atomically: true, encoding: .utf8)
        let store = ToolStore(configDir: "\(dir)/cfg", policies: PolicyStore(configDir: "\(dir)/cfg"))
        let clock = try store.load(path: "\(dir)/clock.toml").get()
        let time = try store.load(path: "\(dir)/cfg/tools/time.toml").get()
        let problems = store.check([clock, time])["clock"] ?? []
        #expect(problems.map { "\($0.line ?? 0) \($0.keyPath)" } == ["6 tool.policy", "7 tool.fallbacks[1]"], "\(problems)")
        #expect(problems.last?.message.contains("did you mean 'time'") == true)
    }

    /// `lock` names a requirements file beside the manifest: read with it (its text is part of
    /// the manifest, so a changed lock is a changed tool), its problems the manifest's, with the
    /// lock's file and line.
    @Test func aLockIsReadBesideTheManifestAndItsProblemsNamed() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let manifest = """
            [tool]
            kind = "command"
            description = "Fetches"
            argv = ["/usr/bin/python3", "-c", "import requests"]
            input_schema = { type = "object" }
            policy = "python-tool"
            lock = "web.lock"
            """
        try manifest.write(toFile: "\(dir)/cfg/tools/web.toml", atomically: true, encoding: .utf8)
        let store = ToolStore(configDir: "\(dir)/cfg", policies: PolicyStore(configDir: "\(dir)/cfg"))
        // No lock file yet: the manifest does not load, and says which file it looked for.
        guard case .failure(let missing) = store.load(path: "\(dir)/cfg/tools/web.toml") else { Issue.record("loaded without its lock"); return }
        #expect(missing.diagnostics.first?.keyPath == "tool.lock" && missing.diagnostics.first?.line == 7
                && missing.diagnostics.first?.message.contains("\(dir)/cfg/tools/web.lock") == true, "\(missing)")
        // A lock with a bad line: its file and line.
        try "idna==3.10\nrequests==2.32.3 --hash=sha256:abc\n".write(toFile: "\(dir)/cfg/tools/web.lock", atomically: true, encoding: .utf8)
        guard case .failure(let bad) = store.load(path: "\(dir)/cfg/tools/web.toml") else { Issue.record("loaded a bad lock"); return }
        #expect(bad.diagnostics.first?.message.hasPrefix("\(dir)/cfg/tools/web.lock:2:") == true, "\(bad)")
        // A good one: its text is in the manifest; another text is another manifest.
        try "idna==3.10\n".write(toFile: "\(dir)/cfg/tools/web.lock", atomically: true, encoding: .utf8)
        let first = try store.load(path: "\(dir)/cfg/tools/web.toml").get()
        #expect(first.lock == "web.lock" && first.lockText == "idna==3.10\n" && first.hasRequirements)
        try "idna==3.11\n".write(toFile: "\(dir)/cfg/tools/web.lock", atomically: true, encoding: .utf8)
        #expect(try store.load(path: "\(dir)/cfg/tools/web.toml").get() != first)
        // The lock is not taken for a manifest.
        #expect(store.manifestPaths().allSatisfy { $0.hasSuffix(".toml") })
    }

    /// The shipped manifests (tools/*.toml) pass `cordon tool check` together, with the shipped
    /// policies they name and nothing in the config directory.
    @Test func theShippedManifestsPass() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.removeItem(atPath: "\(dir)/cfg/tools/time.toml")
        let manifests = try FileManager.default.contentsOfDirectory(atPath: "\(repo)/tools").filter { $0.hasSuffix(".toml") }.sorted()
        #expect(manifests == ["fetch.toml", "git.toml", "python.toml", "time.toml"])
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "\(Self.productsDir)/cordon")
        p.arguments = ["tool", "check", "--config-dir", "\(dir)/cfg"] + manifests.map { "\(repo)/tools/\($0)" }
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(text)")
        for line in ["fetch.toml: ok (fetch: kind mcp, policy mcp-fetch)", "git.toml: ok (git: kind mcp, policy mcp-git)",
                     "python.toml: ok (python: kind command, policy python-tool)", "time.toml: ok (time: kind mcp, policy mcp-time)"] {
            #expect(text.contains("/tools/\(line)\n"), "\(text)")
        }
    }

    @Test func theCommandSaysSoInTextAndJSONWithItsStatus() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.clock.replacingOccurrences(of: "%POLICY%", with: "default").replacingOccurrences(of: "%FALLBACK%", with: "nosuch")
            .write(toFile: "\(dir)/clock.toml", atomically: true, encoding: .utf8)
        func run(_ args: [String]) throws -> (Int32, String) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "\(Self.productsDir)/cordon")
            p.arguments = ["tool", "check", "--config-dir", "\(dir)/cfg"] + args
            let out = Pipe()
            p.standardOutput = out
            try p.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return (p.terminationStatus, String(decoding: data, as: UTF8.self))
        }
        let (status, text) = try run(["\(dir)/clock.toml", "\(dir)/cfg/tools/time.toml"])
        #expect(status == 1)
        #expect(text.contains("clock.toml:7: error: tool.fallbacks[1]: no tool \"nosuch\""), "\(text)")
        #expect(text.contains("time.toml: ok (time: kind mcp, policy python-tool)"), "\(text)")
        let (jsonStatus, json) = try run(["--json", "\(dir)/clock.toml"])
        #expect(jsonStatus == 1)
        let reports = try JSON.parse(json)
        #expect(reports.arrayValue?.first?["ok"] == .bool(false))
        #expect(reports.arrayValue?.first?["errors"]?.arrayValue?.first?["line"] == .int(7))
        // time.toml alone: its fallback is not installed.
        let (aloneStatus, alone) = try run(["\(dir)/cfg/tools/time.toml"])
        #expect(aloneStatus == 1 && alone.contains("no tool \"clock\""), "\(alone)")
        try Self.clock.replacingOccurrences(of: "%POLICY%", with: "default").replacingOccurrences(of: ", \"%FALLBACK%\"", with: "")
            .write(toFile: "\(dir)/clock.toml", atomically: true, encoding: .utf8)
        let (okStatus, ok) = try run(["\(dir)/clock.toml", "\(dir)/cfg/tools/time.toml"])
        #expect(okStatus == 0, "\(ok)")
    }
}
