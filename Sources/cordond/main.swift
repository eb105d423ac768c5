import CordonConfig
import CordonDaemon
import CordonRPC
import CordonSystem
import Logging
#if canImport(Glibc)
import Glibc
#endif

// cordond [--config-dir DIR] [--state-dir DIR] [--runtime-dir DIR] [--socket PATH] [--check-config]
let usage = """
usage: cordond [--config-dir DIR] [--state-dir DIR] [--runtime-dir DIR] [--socket PATH] [--check-config]

Runs in the foreground (systemd: packaging/systemd/cordond.service). Reads DIR/cordond.toml
(default config dir: $CORDON_CONFIG, else /etc/cordon if it exists); the options override it.
SIGTERM or SIGINT drains and exits 0.

"""

func fail(_ message: String, status: Int32 = 2) -> Never {
    FileDescriptorIO.writeAll(2, "cordond: \(message)\n")
    exit(status)
}

var arguments = Array(CommandLine.arguments.dropFirst())
var options: [String: String] = [:]
var checkOnly = false
while !arguments.isEmpty {
    let arg = arguments.removeFirst()
    switch arg {
    case "--help", "-h":
        FileDescriptorIO.writeAll(1, usage)
        exit(0)
    case "--version":
        FileDescriptorIO.writeAll(1, "cordond \(cordonVersion)\n")
        exit(0)
    case "--check-config": checkOnly = true
    case "--config-dir", "--state-dir", "--runtime-dir", "--socket":
        guard let value = arguments.first, !value.hasPrefix("--") else { fail("\(arg) needs a value\n\(usage)") }
        arguments.removeFirst()
        guard value.hasPrefix("/") else { fail("\(arg): \(value): give an absolute path") }
        options[arg] = value
    default:
        fail("unknown option \(arg)\n\(usage)")
    }
}

guard getuid() == 0 else { fail("must run as root (it creates namespaces, cgroups and uid mappings)", status: 1) }

var config: DaemonConfig
do { config = try DaemonConfig.load(configDir: try Locations(configDir: options["--config-dir"]).absoluteConfigDir()) }
catch { fail("\(error)") }
if let dir = options["--state-dir"] { config.stateDir = dir }
if let dir = options["--runtime-dir"] { config.runtimeDir = dir }
if let path = options["--socket"] { config.socketPath = path }
if checkOnly {
    FileDescriptorIO.writeAll(1, "cordond: configuration OK (socket \(config.socket), state \(config.stateDir))\n")
    exit(0)
}

// Each connection, running sandbox and the audit store hold descriptors: use the hard limit.
var files = rlimit()
if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &files) == 0, files.rlim_cur < files.rlim_max {
    files.rlim_cur = files.rlim_max
    _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &files)
}

// Nothing the daemon does may depend on the directory it was started from (a relative name
// must never reach a file a user put there).
guard chdir("/") == 0 else { fail("chdir /: \(SystemError.text(errno))", status: 1) }

LoggingSystem.bootstrap { JournalLogHandler(label: $0) }
let log = Logger(label: "cordond")
let daemon: Daemon
do { daemon = try Daemon(config: config, log: log) } catch { fail("\(error)", status: 1) }
exit(daemon.run())
