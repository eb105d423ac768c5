import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Two network namespaces a test makes (the egress tests, the model gateway's hosted-provider
/// tests), joined by a veth pair. `supervisor` is where
/// `cordon` runs, so its egress engine dials from there; `servers` is the network beyond it and
/// holds the test servers' addresses on its loopback. TEST-NET-3 on the link; a default route from
/// the supervisor's namespace into the servers' one, so everything the engine dials stays in these
/// two namespaces. Nothing is added to the host's own interfaces or routes: the host's addresses
/// are the engine's own, which it refuses behind a name by design.
public final class EgressNetwork: Sendable {
    public static let prefix = "cordon-sbx-"
    public static let supervisorLink = "203.0.113.1"
    public static let serversLink = "203.0.113.2"

    private static let made = Mutex(0)
    public let supervisor: String
    public let servers: String

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// Makes the namespaces, the link and the route, with `addresses` (/32 each) on the servers'
    /// loopback. Everything made so far goes again if a step fails.
    public init(serving addresses: [String]) throws {
        Self.removeLeftovers()
        // Several suites of one test process make networks at once: a number of its own each
        // (the pid stays last: `removeLeftovers` reads it).
        let n = Self.made.withLock { n -> Int in n += 1; return n }
        supervisor = "\(Self.prefix)sup\(n)-\(getpid())"
        servers = "\(Self.prefix)net\(n)-\(getpid())"
        var steps: [[String]] = [
            ["netns", "add", supervisor], ["netns", "add", servers],
            ["-n", supervisor, "link", "add", "veth0", "type", "veth", "peer", "name", "veth0", "netns", servers],
        ]
        for (ns, address) in [(supervisor, Self.supervisorLink), (servers, Self.serversLink)] {
            steps += [["-n", ns, "link", "set", "lo", "up"], ["-n", ns, "addr", "add", "\(address)/24", "dev", "veth0"],
                      ["-n", ns, "link", "set", "veth0", "up"]]
        }
        steps += addresses.map { ["-n", servers, "addr", "add", "\($0)/32", "dev", "lo"] }
        steps.append(["-n", supervisor, "route", "add", "default", "via", Self.serversLink])
        for step in steps {
            let r = Self.ip("/usr/sbin/ip", step)
            guard r.status == 0 else {
                close()
                throw Failure(description: "ip \(step.joined(separator: " ")): \(r.stderr)")
            }
        }
    }

    /// `argv` run in the supervisor's namespace. nsenter joins the network namespace only:
    /// `ip netns exec` would also mount a fresh /sys, hiding the cgroup hierarchy cordon needs.
    public func inSupervisor(_ argv: [String]) -> (path: String, arguments: [String]) {
        ("/usr/bin/nsenter", ["--net=/run/netns/\(supervisor)", "--"] + argv)
    }

    /// `argv` run in the servers' namespace (the pid is the command's: `ip netns exec` execs it).
    public func inServers(_ argv: [String]) -> (path: String, arguments: [String]) {
        ("/usr/sbin/ip", ["netns", "exec", servers] + argv)
    }

    /// Removes both namespaces; the veth pair and the addresses go with them once the last
    /// process inside has exited.
    public func close() {
        for ns in [supervisor, servers] where FileManager.default.fileExists(atPath: "/run/netns/\(ns)") {
            _ = Self.ip("/usr/sbin/ip", ["netns", "del", ns])
        }
    }

    /// Namespaces of an earlier run that died before its cleanup (its pid is gone).
    public static func removeLeftovers() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []
        for name in names where name.hasPrefix(prefix) {
            guard let pid = name.split(separator: "-").last.flatMap({ Int32($0) }), pid != getpid(),
                  kill(pid, 0) != 0, errno == ESRCH else { continue }
            _ = Self.ip("/usr/sbin/ip", ["netns", "del", name])
        }
    }

    /// `ip ARGS`: its status and stderr.
    static func ip(_ path: String, _ args: [String]) -> (status: Int32, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = args
        let err = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = err
        do { try process.run() } catch { return (-1, "\(error)") }
        let e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: e, as: UTF8.self))
    }
}
