import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Two network namespaces the egress tests make, joined by a veth pair. `supervisor` is where
/// `cordon` runs, so its egress engine dials from there; `servers` is the network beyond it and
/// holds the test servers' addresses on its loopback. TEST-NET-3 on the link; a default route from
/// the supervisor's namespace into the servers' one, so everything the engine dials stays in these
/// two namespaces. Nothing is added to the host's own interfaces or routes: the host's addresses
/// are the engine's own, which it refuses behind a name by design.
final class EgressNetwork: Sendable {
    static let prefix = "cordon-sbx-"
    static let supervisorLink = "203.0.113.1"
    static let serversLink = "203.0.113.2"

    let supervisor: String
    let servers: String

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Makes the namespaces, the link and the route, with `addresses` (/32 each) on the servers'
    /// loopback. Everything made so far goes again if a step fails.
    init(serving addresses: [String]) throws {
        Self.removeLeftovers()
        supervisor = "\(Self.prefix)sup-\(getpid())"
        servers = "\(Self.prefix)net-\(getpid())"
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
            let r = Harness.exec("/usr/sbin/ip", step)
            guard r.status == 0 else {
                close()
                throw Failure(description: "ip \(step.joined(separator: " ")): \(r.stderr)")
            }
        }
    }

    /// `argv` run in the supervisor's namespace. nsenter joins the network namespace only:
    /// `ip netns exec` would also mount a fresh /sys, hiding the cgroup hierarchy cordon needs.
    func inSupervisor(_ argv: [String]) -> (path: String, arguments: [String]) {
        ("/usr/bin/nsenter", ["--net=/run/netns/\(supervisor)", "--"] + argv)
    }

    /// `argv` run in the servers' namespace (the pid is the command's: `ip netns exec` execs it).
    func inServers(_ argv: [String]) -> (path: String, arguments: [String]) {
        ("/usr/sbin/ip", ["netns", "exec", servers] + argv)
    }

    /// Removes both namespaces; the veth pair and the addresses go with them once the last
    /// process inside has exited.
    func close() {
        for ns in [supervisor, servers] where FileManager.default.fileExists(atPath: "/run/netns/\(ns)") {
            _ = Harness.exec("/usr/sbin/ip", ["netns", "del", ns])
        }
    }

    /// Namespaces of an earlier run that died before its cleanup (its pid is gone).
    static func removeLeftovers() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []
        for name in names where name.hasPrefix(prefix) {
            guard let pid = name.split(separator: "-").last.flatMap({ Int32($0) }), pid != getpid(),
                  kill(pid, 0) != 0, errno == ESRCH else { continue }
            _ = Harness.exec("/usr/sbin/ip", ["netns", "del", name])
        }
    }
}
