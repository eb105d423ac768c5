import ArgumentParser
import CordonConfig
import CordonDaemon
import CordonRPC
import CordonSystem
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// `cordond`: parsed by swift-argument-parser like `cordon`, so that its completions and its
/// man page (`make install`: cordond(8)) are generated from the options it really takes.
struct CordondCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cordond",
        abstract: "Cordon's sandbox supervisor: runs the tasks submitted on its socket, each in a fresh sandbox.",
        discussion: """
        Runs in the foreground as root (systemd: cordond.service and cordond.socket). Reads \
        DIR/cordond.toml from the config directory ($CORDON_CONFIG, else /etc/cordon if it \
        exists, else the built-in defaults only); the options below override the file. An \
        example with every key is installed as share/doc/cordon/examples/cordond.toml.

        SIGTERM or SIGINT drains (no new tasks; running ones get tasks.drain_timeout, then are \
        cancelled) and exits 0. Exit status 1: the daemon could not start; 2: the configuration \
        is wrong (the message names the file, line and key).
        """,
        version: "cordond \(cordonVersion)"
    )

    @Option(name: .customLong("config-dir"), help: ArgumentHelp("Config directory: cordond.toml, policies/, profiles/ (absolute).", valueName: "DIR"))
    var configDir: String?

    @Option(name: .customLong("state-dir"), help: ArgumentHelp("State directory (absolute; overrides the file's, default /var/lib/cordon).", valueName: "DIR"))
    var stateDir: String?

    @Option(name: .customLong("runtime-dir"), help: ArgumentHelp("Runtime directory (absolute; overrides the file's, default /run/cordon).", valueName: "DIR"))
    var runtimeDir: String?

    @Option(name: .customLong("socket"), help: ArgumentHelp("The socket to listen on (absolute; default RUNTIME/cordon.sock).", valueName: "PATH"))
    var socket: String?

    @Flag(name: .customLong("check-config"), help: "Check the configuration, print the socket and state directory, and exit.")
    var checkConfig = false

    func validate() throws {
        // cordond works from / (below): a relative path would mean something else there.
        for (flag, value) in [("--config-dir", configDir), ("--state-dir", stateDir), ("--runtime-dir", runtimeDir), ("--socket", socket)] {
            if let value, !value.hasPrefix("/") { throw ValidationError("\(flag): \(value): give an absolute path") }
        }
    }

    func run() throws {
        guard getuid() == 0 else { fail("must run as root (it creates namespaces, cgroups and uid mappings)", status: 1) }

        var config: DaemonConfig
        do { config = try DaemonConfig.load(configDir: try Locations(configDir: configDir).absoluteConfigDir()) }
        catch { fail("\(error)") }
        if let stateDir { config.stateDir = stateDir }
        if let runtimeDir { config.runtimeDir = runtimeDir }
        if let socket { config.socketPath = socket }
        if checkConfig {
            FileDescriptorIO.writeAll(1, "cordond: configuration OK (socket \(config.socket), state \(config.stateDir))\n")
            Glibc.exit(0)
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
        Glibc.exit(daemon.run())
    }
}

func fail(_ message: String, status: Int32 = 2) -> Never {
    FileDescriptorIO.writeAll(2, "cordond: \(message)\n")
    exit(status)
}

CordondCommand.main()
