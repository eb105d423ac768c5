// cordon-init: pid 1 of every sandbox.
//
// The supervisor's child builds the sandbox while sharing the supervisor's memory (no copy of a
// large, multi-threaded process per sandbox), starts the workload, then executes this program
// from a descriptor, so that what stays in the sandbox for its whole life is this small static
// program and nothing of the supervisor's memory.
//
// Freestanding on purpose: no libc, no start-up code, no thread-local storage. It runs after
// pivot_root (no dynamic loader or library is reachable) and must cost next to nothing to
// execute: _start below calls init_main directly.
//
// Contract (see CSpawn): started with every signal blocked; environment CORDON_WORKLOAD_PID (the
// workload, a child of this process) and CORDON_STATUS_FD (a pipe to the supervisor), and
// CORDON_GATE_FD (a pipe the workload waits on: this program writes one byte to it once it has
// set itself up, so the workload never runs before this program is pid 1); CORDON_SESSION=1 when
// the workload is a session's server (which it resumes whenever it is stopped). When the
// workload ends it kills what is left in the pid namespace, reaps it, writes a struct cs_status
// (same layout as cspawn.h) to the pipe and exits 0.
//
// Started as argv[0] "cordon-session" it is instead a session's server, the workload itself,
// exactly as confined as any workload: see session.c.

#include "sys.h"

#if defined(__x86_64__)
__asm__(".text\n"
        ".globl _start\n"
        ".type _start,@function\n"
        "_start:\n"
        "  xor %ebp, %ebp\n"
        "  mov %rsp, %rdi\n"        // argc, argv..., 0, envp..., 0
        "  and $-16, %rsp\n"
        "  call init_main\n"
        "  hlt\n"
        ".size _start, .-_start\n");
#elif defined(__aarch64__)
__asm__(".text\n"
        ".globl _start\n"
        ".type _start,%function\n"
        "_start:\n"
        "  mov x29, #0\n"
        "  mov x30, #0\n"
        "  mov x0, sp\n"
        "  bl init_main\n"
        "  brk #0\n"
        ".size _start, .-_start\n");
#endif

struct status_ { i32 wait_status, reserved; i64 utime_us, stime_us, maxrss_kb; };  // = struct cs_status
struct cap_header_ { u32 version; i32 pid; };
struct cap_data_ { u32 effective, permitted, inheritable; };
struct siginfo_ { i32 signo; i32 rest[31]; };

/// The value of NAME=... in envp as a non-negative number, or -1.
static i64 env_number(char **envp, const char *name) {
    for (; *envp; envp++) {
        const char *e = *envp, *n = name;
        while (*n && *e == *n) { e++; n++; }
        if (*n || *e != '=') continue;
        i64 v = 0;
        for (e++; *e; e++) {
            if (*e < '0' || *e > '9' || v > 100000000) return -1;
            v = v * 10 + (*e - '0');
        }
        return v;
    }
    return -1;
}

static int is_session(const char *name) {
    const char *want = "cordon-session";
    while (*want && *name == *want) { name++; want++; }
    return *want == 0 && *name == 0;
}

static const i32 forwarded[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH,
                                 SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU, SIGALRM, SIGPIPE };

__attribute__((noreturn, used)) void init_main(i64 *sp) {
    i64 argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = (char **)(sp + 1 + argc + 1);
    // A session's server is this program too (one static program to install and trust): the
    // supervisor starts it as the workload, argv[0] "cordon-session".
    if (argc >= 1 && is_session(argv[0])) session_main();
    i64 workload = env_number(envp, "CORDON_WORKLOAD_PID");
    i64 session = env_number(envp, "CORDON_SESSION") == 1;
    i64 status_fd = env_number(envp, "CORDON_STATUS_FD");
    if (workload <= 0 || status_fd < 0) quit(125);
    // First of all: not readable or traceable by the workload, even one running as our uid
    // (the exec made us dumpable again).
    if (sys4(SYS_prctl, PR_SET_DUMPABLE, 0, 0, 0) < 0) quit(125);

    // Nothing but CAP_KILL (to signal the workload, which runs under another uid); no way back
    // to privileges.
    // (Fields are set one by one throughout: an aggregate initializer may become a call to
    // memset, which this program does not have.)
    struct cap_header_ h;
    h.version = 0x20080522;  // _LINUX_CAPABILITY_VERSION_3
    h.pid = 0;
    struct cap_data_ d[2];
    d[0].effective = d[0].permitted = 1u << CAP_KILL;
    d[0].inheritable = 0;
    d[1].effective = d[1].permitted = d[1].inheritable = 0;
    if (sys4(SYS_capset, (i64)&h, (i64)d, 0, 0) < 0) quit(125);
    if (sys4(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0) < 0) quit(125);
    sys4(SYS_prctl, PR_SET_NAME, (i64)"cordon-init", 0, 0);
    // Armed again: the exec may have cleared it (it survives a plain exec, but nothing here
    // depends on that). If the supervisor is already gone the sandbox is swept by its restart.
    sys4(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0);
    // Set up: the workload waiting on the gate may go on now.
    i64 gate = env_number(envp, "CORDON_GATE_FD");
    if (gate < 0) quit(125);
    // If the write fails the workload is gone already (EPIPE; the signal stays blocked) or will
    // see end of file and give up: either way it is reaped below.
    i64 n;
    do { n = sys4(SYS_write, gate, (i64)"g", 1, 0); } while (n == -EINTR);
    sys4(SYS_close, gate, 0, 0, 0);

    struct status_ st;
    st.wait_status = st.reserved = 0;
    st.utime_us = st.stime_us = st.maxrss_kb = 0;
    u64 all = ~0UL;
    int done = 0;
    while (!done) {
        // The workload may have ended before this program started: reap first, then wait.
        for (;;) {
            i32 ws = 0;
            i64 pid = sys4(SYS_wait4, -1, (i64)&ws, WNOHANG | (session ? WUNTRACED : 0), 0);
            if (pid <= 0) break;
            // A session's server stopped by one of its commands (same uid): resumed, so that
            // one command cannot freeze the session's others and cordond's requests.
            if ((ws & 0xff) == 0x7f) {
                if (pid == workload) sys4(SYS_kill, workload, SIGCONT, 0, 0);
                continue;
            }
            if (pid == workload) { st.wait_status = ws; done = 1; }
        }
        if (done) break;
        struct siginfo_ info;
        i64 sig = sys4(SYS_rt_sigtimedwait, (i64)&all, (i64)&info, 0, 8);
        if (sig < 0 || sig == SIGCHLD) continue;
        for (unsigned i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
            if (forwarded[i] == sig) sys4(SYS_kill, workload, sig, 0, 0);
    }
    // The workload is gone: nothing it started may outlive it.
    sys4(SYS_kill, -1, SIGKILL, 0, 0);
    for (;;) {
        i64 r = sys4(SYS_wait4, -1, 0, 0, 0);
        if (r <= 0 && r != -EINTR) break;
    }
    struct rusage_ ru;
    if (sys4(SYS_getrusage, RUSAGE_CHILDREN, (i64)&ru, 0, 0) == 0) {
        st.utime_us = ru.utime.sec * 1000000 + ru.utime.usec;
        st.stime_us = ru.stime.sec * 1000000 + ru.stime.usec;
        st.maxrss_kb = ru.maxrss;
    }
    const char *p = (const char *)&st;
    i64 left = sizeof st;
    while (left > 0) {
        i64 n = sys4(SYS_write, status_fd, (i64)p, left, 0);
        if (n == -EINTR) continue;
        if (n <= 0) break;
        p += n;
        left -= n;
    }
    quit(0);
}
