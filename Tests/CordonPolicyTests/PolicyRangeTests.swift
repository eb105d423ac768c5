import Testing
@testable import CordonPolicy

/// Every numeric key has a range (`PolicyRange`): its bounds are accepted, a value past them is
/// refused with the file, line, key, value and range — never accepted and trapped on later.
struct PolicyRangeTests {
    func errors(_ text: String) -> [String] {
        do { _ = try PolicyParser.parse(text: text, source: "test.toml", defaultName: "t"); return [] }
        catch { return error.diagnostics.map(\.description) }
    }

    static let durationRange = "is out of range 1ms...8760h (365 days)"

    @Test(arguments: [
        // Issue 14, finding 8: these passed `policy check`, then trapped in formatDuration.
        ("[limits]\nwall_time = 9223372036854775807", "test.toml:2: limits.wall_time: 9223372036854775807 \(durationRange)"),
        ("[limits]\ncpu_time = \"3000000000000000s\"", "test.toml:2: limits.cpu_time: \"3000000000000000s\" \(durationRange)"),
        ("[limits]\ncpu_time = 1e300", "test.toml:2: limits.cpu_time: 1e+300 \(durationRange)"),
        ("[limits]\nwall_time = inf", "test.toml:2: limits.wall_time: inf \(durationRange)"),
        ("[limits]\nwall_time = nan", "test.toml:2: limits.wall_time: nan \(durationRange)"),
        ("[limits]\nwall_time = \"8760.001h\"", "test.toml:2: limits.wall_time: \"8760.001h\" \(durationRange)"),
        ("[limits]\nwall_time = 31536001", "test.toml:2: limits.wall_time: 31536001 \(durationRange)"),
        // Below the resolution explain prints (it printed "0us", which check refused).
        ("[limits]\nwall_time = \"0.0000001s\"", "test.toml:2: limits.wall_time: \"0.0000001s\" \(durationRange)"),
        ("[limits]\nwall_time = 0.0000001", "test.toml:2: limits.wall_time: 1e-07 \(durationRange)"),
        ("[limits]\ncpu_time = \"999us\"", "test.toml:2: limits.cpu_time: \"999us\" \(durationRange)"),
        ("[limits]\ncpu_time = \"0s\"", "test.toml:2: limits.cpu_time: \"0s\" \(durationRange)"),
        ("[limits]\ncpu_time = -5", "test.toml:2: limits.cpu_time: -5 \(durationRange)"),
        ("[limits]\nmemory = 1048575", "test.toml:2: limits.memory: 1048575 is out of range 1M...1024T"),
        ("[limits]\nmemory = \"1025T\"", "test.toml:2: limits.memory: \"1025T\" is out of range 1M...1024T"),
        ("[limits]\nmemory = 9223372036854775807", "test.toml:2: limits.memory: 9223372036854775807 is out of range 1M...1024T"),
        ("[limits]\nmemory = -1", "test.toml:2: limits.memory: -1 is out of range 1M...1024T"),
        ("[limits]\noutput = \"99999999999999999999999T\"", "test.toml:2: limits.output: \"99999999999999999999999T\" is out of range 0...1024T"),
        ("[limits]\nfile_size = 1125899906842625", "test.toml:2: limits.file_size: 1125899906842625 is out of range 0...1024T"),
        ("[filesystem]\nworkdir_size = 0", "test.toml:2: filesystem.workdir_size: 0 is out of range 4K...1024T"),
        ("[filesystem]\ntmpfs = [{ path = \"/t\", size = \"4095\" }]", "test.toml:2: filesystem.tmpfs[0].size: \"4095\" is out of range 4K...1024T"),
        ("[filesystem]\ntmpfs = [{ path = \"/t\", size = \"0.5T\", mode = \"10000\" }]",
         "test.toml:2: filesystem.tmpfs[0].mode: expected an octal mode like \"1777\", found \"10000\""),
        ("[limits]\ncpu = 4096.5", "test.toml:2: limits.cpu: expected a number of cores between 0.01 and 4096, found 4096.5"),
        ("[limits]\ncpu = 0.001", "test.toml:2: limits.cpu: expected a number of cores between 0.01 and 4096, found 0.001"),
        ("[limits]\ncpu = nan", "test.toml:2: limits.cpu: expected a number of cores between 0.01 and 4096, found nan"),
        ("[limits]\ncpu = 0", "test.toml:2: limits.cpu: expected a number of cores between 0.01 and 4096, found 0"),
        ("[limits]\npids = 4194305", "test.toml:2: limits.pids: 4194305 is out of range 1...4194304"),
        ("[limits]\nopen_files = 1048577", "test.toml:2: limits.open_files: 1048577 is out of range 3...1048576"),
        ("[process]\ngroup = -1", "test.toml:2: process.group: -1 is out of range 0...65535"),
    ])
    func outOfRange(_ c: (String, String)) {
        #expect(errors(c.0) == [c.1])
    }

    /// Both ends of every range, in each spelling.
    @Test(arguments: [
        "[limits]\nmemory = 1048576", "[limits]\nmemory = \"1M\"", "[limits]\nmemory = 1125899906842624", "[limits]\nmemory = \"1024TiB\"",
        "[limits]\noutput = 0", "[limits]\nfile_size = \"0\"", "[limits]\noutput = \"1024T\"", "[limits]\nfile_size = 1125899906842624",
        "[filesystem]\nworkdir_size = 4096", "[filesystem]\nworkdir_size = \"1024T\"",
        "[filesystem]\ntmpfs = [{ path = \"/t\", size = \"4K\", mode = \"0\" }, { path = \"/u\", size = 1125899906842624, mode = \"7777\" }]",
        "[limits]\nwall_time = \"1ms\"", "[limits]\nwall_time = 0.001", "[limits]\ncpu_time = \"8760h\"", "[limits]\ncpu_time = 31536000",
        "[limits]\nwall_time = 31536000.0", "[limits]\nwall_time = \"525600m\"", "[limits]\nwall_time = \"1000us\"",
        "[limits]\ncpu = 0.01", "[limits]\ncpu = 4096", "[limits]\ncpu = 4096.0", "[limits]\ncpu = 1",
        "[limits]\npids = 1", "[limits]\npids = 4194304", "[limits]\nopen_files = 3", "[limits]\nopen_files = 1048576",
        "[process]\nuser = 0\ngroup = 65535", "[process]\nuser = 65535\ngroup = 0",
    ])
    func bounds(_ text: String) {
        #expect(errors(text) == [])
    }

    @Test func durationsAreKeptToTheMicrosecond() throws {
        let p = try PolicyParser.parse(text: "[limits]\nwall_time = \"1.0000004s\"\ncpu_time = 2.0000006", source: "t", defaultName: "t")
        #expect(p.limits.wallTimeSeconds == 1)
        #expect(p.limits.cpuTimeSeconds == 2.000001)
        #expect(p.limits.cpuTimeSeconds.map(Units.formatDuration) == "2000001us")
    }

    /// A parent with a value out of range is refused by name: before, the merged policy's hash
    /// (its explanation) trapped in every command that loaded a child, and in cordond.
    @Test func aParentOutOfRangeIsNamed() {
        do {
            _ = try PolicyParser.parse(text: "[policy]\nextends = [\"parent\"]\n", source: "child.toml", defaultName: "child",
                                       resolve: { _, _ in ("[limits]\ncpu_time = \"3000000000000000s\"\n", "parent.toml") })
            Issue.record("parsed")
        } catch {
            #expect(error.description == "parent.toml:2: limits.cpu_time: \"3000000000000000s\" \(Self.durationRange)")
        }
    }

    @Test func quantizingIsIdempotentOverTheRange() {
        var micros: Int64 = 1000
        while micros <= 31_536_000_000_000 {
            for n in [micros, micros + 1, micros * 7 / 3 + 1] {
                let seconds = Double(n) / 1e6
                #expect(PolicyRange.quantize(seconds: seconds) == seconds, "\(n)us")
                #expect(Units.parseDuration(Units.formatDuration(seconds)) == seconds, "\(n)us")
            }
            micros = micros * 3 + 1
        }
    }
}

/// `Units.format*` are total: whatever a caller hands them (the parser's ranges notwithstanding),
/// they return text and never trap.
struct UnitFormattingTests {
    @Test(arguments: [Double.infinity, -.infinity, .nan, -.nan, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
                      .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .leastNormalMagnitude, 0, -0.0, -1, 1e-7, 0.5e-6,
                      3e15, 9.223372036854775807e18, 9.223372036854775e12, 9.2233720368547e12, -9.223372036854775e12, 1e300, -1e300])
    func formatDurationIsTotal(_ seconds: Double) {
        let text = Units.formatDuration(seconds)
        #expect(!text.isEmpty)
        // Up to 2^53 microseconds (285 years), the printout reads back to the same microsecond.
        if let micros = Int64(exactly: (seconds * 1e6).rounded()), micros >= 0, micros <= 1 << 53 {
            #expect(Units.parseDuration(text).map { ($0 * 1e6).rounded() } == Double(micros), "\(seconds) -> \(text)")
        }
    }

    @Test func formatDurationSpellings() {
        #expect(Units.formatDuration(.infinity) == "inf")
        #expect(Units.formatDuration(.nan) == "nan")
        #expect(Units.formatDuration(1e300) == "1e+300s")
        #expect(Units.formatDuration(0.0000001) == "0s")
        #expect(Units.formatDuration(-1.5) == "-1500ms")
        #expect(Units.formatDuration(31_536_000) == "365d")
        #expect(Units.formatDuration(86_400) == "1d" && Units.formatDuration(86_401) == "86401s" && Units.formatDuration(0) == "0s")
        #expect(Units.parseDuration("7d") == 604_800 && Units.parseDuration("1.5d") == 129_600 && Units.parseDuration("d") == nil)
        #expect(Units.formatDuration(0.001) == "1ms")
        #expect(Units.formatDuration(1.000001) == "1000001us")
    }

    @Test(arguments: [UInt64.max, UInt64.max - 1, 1 << 63, 1 << 53, (1 << 53) + 1, 1 << 50, (1 << 50) - 1, 0, 1, 1023, 1024, 1536] as [UInt64])
    func formatSizeIsTotal(_ bytes: UInt64) {
        let text = Units.formatSize(bytes)
        #expect(!text.isEmpty)
        if bytes <= 1 << 53 { #expect(Units.parseSize(text) == bytes, "\(bytes) -> \(text)") }
    }

    @Test func hugeSpellingsAreNotNumbers() {
        let digits = String(repeating: "9", count: 400)
        #expect(Units.parseSize(digits) == nil)
        #expect(Units.parseSize("99999999999999999999999T") == nil)
        #expect(Units.parseDuration(digits) == nil)
        #expect(Units.parseDuration(String(repeating: "9", count: 306) + "h") == nil)
        #expect(Units.formatSize(1 << 50) == "1024T")
    }
}
