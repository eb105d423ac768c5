import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `cordon run` exits without waiting for the kernel to tear down its memory: a child sharing it
/// (CLinux `cl_exit_leaving_teardown`) holds the last reference and exits once the supervisor
/// has. What the caller sees must not change: the workload's status, its output to the last
/// byte and the end of the stream, every time — and the holder must end, reaped by whoever
/// inherits it (here a subreaper standing in for init or a service manager).
@Suite(.enabled(if: Harness.isRoot, "needs root: real sandboxes"), .serialized)
struct ExitTests {
    /// Runs argv as a child subreaper: prints the direct child's exit status, then, for every other
    /// process it inherited and reaped within 5 s, its pid's exit status.
    static let reaper = Harness.compileC("""
        #include <errno.h>
        #include <stdio.h>
        #include <sys/prctl.h>
        #include <sys/wait.h>
        #include <time.h>
        #include <unistd.h>
        int main(int argc, char **argv) {
            (void)argc;
            if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) { perror("prctl"); return 2; }
            pid_t child = fork();
            if (child == 0) { execv(argv[1], argv + 1); _exit(127); }
            int status = 0;
            waitpid(child, &status, 0);
            fprintf(stderr, "child %d\\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
            for (int i = 0; i < 500; i++) {
                pid_t other = waitpid(-1, &status, WNOHANG);
                if (other > 0) { fprintf(stderr, "inherited %d\\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)); continue; }
                if (other < 0 && errno == ECHILD) break;
                struct timespec t = { 0, 10000000 };
                nanosleep(&t, 0);
            }
            return 0;
        }
        """, named: "subreaper", linkStatic: false)

    /// Whether this process is in the initial pid namespace (PROC_PID_INIT_INO), the only place
    /// where `cordon run` leaves a holder (elsewhere pid 1 may be an application that never reaps).
    static var inInitialPidNamespace: Bool {
        var st = stat()
        return stat("/proc/self/ns/pid", &st) == 0 && st.st_ino == 0xEFFF_FFFC
    }

    @Test func theCallerSeesTheSameEndEveryTimeAndTheHolderEnds() {
        let base = ["run", "--policy", Harness.defaultPolicy, "--state-dir", Harness.stateDir, "--runtime-dir", Harness.runtimeDir, "--"]
        for round in 0..<10 {
            let r = Harness.exec(Self.reaper, [Harness.cordon] + base + ["sh", "-c", "printf 'x%s' \"$1\"; exit 7", "sh", "\(round)"], cwd: "/")
            #expect(r.stdout == "x\(round)", "round \(round): \(r.stdout)")
            // The workload's status, then exactly one inherited process — the holder — ended
            // normally (its own status, 0), not killed; outside the initial pid namespace, none.
            let holder = Self.inInitialPidNamespace ? "inherited 0\n" : ""
            #expect(r.stderr == "child 7\n\(holder)", "round \(round): \(r.stderr)")
        }
    }
}
