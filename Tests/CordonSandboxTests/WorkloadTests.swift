import Foundation
import Testing

/// Real workloads under the default policy (acceptance 2).
@Suite(.enabled(if: Harness.isRoot, "needs root: real sandboxes"))
struct WorkloadTests {
    @Test func pythonPrints() {
        let r = Harness.run(["python3", "-c", "print(1)"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.output == "1")
        #expect(r.reason == "exited")
        #expect(r.record["exitCode"] as? Int == 0)
    }

    @Test func shellListsRoot() {
        let r = Harness.run(["sh", "-c", "ls /"])
        #expect(r.status == 0, "\(r.stderr)")
        let entries = Set(r.output.split(separator: "\n").map(String.init))
        #expect(entries.isSuperset(of: ["usr", "bin", "etc", "tmp", "work", "proc", "dev"]))
        // Nothing of the host's root beyond the policy: no /root, /home, /var, /srv, /boot.
        #expect(entries.isDisjoint(with: ["root", "home", "var", "srv", "boot", "mnt", "run"]), "\(entries)")
    }

    @Test func compiledCProgram() {
        // gcc itself runs under the default seccomp profile; the program it builds then runs too.
        let script = "printf '#include <stdio.h>\\nint main(void){puts(\"compiled ok\");return 3;}\\n' > a.c && gcc -o a a.c && ./a"
        let r = Harness.run(["sh", "-c", script])
        #expect(r.status == 3, "\(r.stderr)")
        #expect(r.output == "compiled ok")
    }

    @Test func pythonStandardModules() {
        let code = "import json, sqlite3, ssl; c = sqlite3.connect(':memory:'); print(json.dumps(c.execute('select 41+1').fetchone()[0]), ssl.create_default_context().verify_mode == ssl.CERT_REQUIRED)"
        let r = Harness.run(["python3", "-c", code])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.output == "42 True")
        #expect(r.denied.isEmpty, "denied: \(r.denied)")
    }

    @Test func pythonThreadsAndSubprocess() {
        let code = "import threading, subprocess; t = threading.Thread(target=print, args=('thread',)); t.start(); t.join(); print(subprocess.run(['echo', 'child'], capture_output=True, text=True).stdout.strip())"
        let r = Harness.run(["python3", "-c", code])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.output == "thread\nchild")
    }

    @Test func stdinIsStreamed() {
        let r = Harness.run(["sh", "-c", "tr a-z A-Z"], stdin: "hello sandbox\n")
        #expect(r.status == 0)
        #expect(r.output == "HELLO SANDBOX")
    }

    @Test func exitStatusAndSignalArePropagated() {
        #expect(Harness.run(["sh", "-c", "exit 7"]).status == 7)
        let killed = Harness.run(["sh", "-c", "kill -TERM $$"])
        #expect(killed.status == 128 + 15)
        #expect(killed.record["signalName"] as? String == "SIGTERM")
        #expect(killed.reason == "signaled")
    }

    @Test func resultRecordHasEveryField() {
        let r = Harness.run(["true"])
        for key in ["reason", "exitCode", "wallTimeSeconds", "cpuUserSeconds", "cpuSystemSeconds", "peakMemoryBytes",
                    "denied", "policy", "policyHash", "layers", "stdoutBytes", "stderrBytes"] {
            #expect(r.record[key] != nil, "missing \(key) in \(r.record)")
        }
        let layers = r.record["layers"] as? [String: Any] ?? [:]
        #expect((layers["landlockABI"] as? Int ?? 0) > 0, "Landlock not applied: \(layers)")
        #expect((layers["seccompInstructions"] as? Int ?? 0) > 0)
        #expect(layers["namespaces"] as? [String] == ["user", "pid", "mount", "ipc", "uts", "network", "cgroup"])
    }
}
