// cordon-session: a session's server (docs/daemon.md, "Sessions").
//
// The supervisor starts it as the workload of a sandbox, after every layer is in place (user,
// pid, mount, network namespaces; the cgroup; no capabilities; no_new_privs; Landlock; the
// policy's seccomp filter), executed from cordon-init's descriptor with argv[0]
// "cordon-session". Every command of the session is a child of this process, so it has exactly
// the confinement this process has, by construction: nothing can be added after it started.
//
// Standard input is a SOCK_SEQPACKET socket to cordond. Requests (struct request, then bytes):
//   EXEC  id, nargs, nenv, len; bytes: cwd NUL, search path NUL, nargs args, nenv "K=V" strings,
//         each NUL-terminated; three descriptors (SCM_RIGHTS): the command's stdin, stdout and
//         stderr. The command runs in a process group of its own.
//   KILL  id, sig: signal the command's process group.
// End of file: every command's group is killed and the server exits (cordon-init then kills
// whatever is left and the sandbox ends). Replies (struct reply): READY once (a = protocol),
// STARTED (a = pid in the sandbox), EXITED (a = wait status, with its resource use), FAILED
// (a = errno, b = what: 1 chdir, 2 exec, 3 fork, 4 malformed request, 5 too many commands).
// When a command's leader exits, what is left of its process group is killed. A command may
// signal this server (same uid): stopped, it answers nothing, and cordond ends the session.

#include "sys.h"

enum { REQ_EXEC = 1, REQ_KILL = 2 };
enum { REP_READY = 1, REP_STARTED = 2, REP_EXITED = 3, REP_FAILED = 4 };
enum { WHAT_CHDIR = 1, WHAT_EXEC = 2, WHAT_FORK = 3, WHAT_REQUEST = 4, WHAT_FULL = 5 };
enum { PROTOCOL = 1, MAX_REQUEST = 128 * 1024, MAX_STRINGS = 8192, MAX_COMMANDS = 64, MAX_FDS = 8,
       MAX_PATH = 4096 };
enum { SOL_SOCKET = 1, SCM_RIGHTS = 1, MSG_CTRUNC = 0x8, MSG_TRUNC = 0x20, MSG_CMSG_CLOEXEC = 0x40000000,
       POLLIN = 1, POLLERR = 8, POLLHUP = 16, SIG_SETMASK = 2, SA_NOCLDSTOP = 1, SA_RESTORER = 0x04000000,
       O_CLOEXEC = 02000000, F_DUPFD_CLOEXEC = 1030, CLOSE_RANGE_CLOEXEC = 4 };

struct request { u32 type, id, nargs, nenv, len, sig; };
struct reply { u32 type, id; i32 a, b; i64 utime_us, stime_us, maxrss_kb; };
struct iovec_ { void *base; u64 len; };
struct msghdr_ { void *name; u32 namelen; struct iovec_ *iov; u64 iovlen; void *control; u64 controllen; i32 flags; };
struct cmsghdr_ { u64 len; i32 level, type; };
struct pollfd_ { i32 fd; short events, revents; };
struct sigaction_ { void (*handler)(int); u64 flags; void (*restorer)(void); u64 mask; };

// The kernel returns from a handler through rt_sigreturn, called by this trampoline.
void session_restorer(void);
#if defined(__x86_64__)
__asm__(".text\n.globl session_restorer\n.type session_restorer,@function\n"
        "session_restorer:\n  mov $15, %eax\n  syscall\n  hlt\n.size session_restorer, .-session_restorer\n");
#elif defined(__aarch64__)
__asm__(".text\n.globl session_restorer\n.type session_restorer,%function\n"
        "session_restorer:\n  mov x8, #139\n  svc #0\n  brk #0\n.size session_restorer, .-session_restorer\n");
#endif

// SIGCHLD only interrupts ppoll (it is blocked everywhere else): the handler has nothing to do.
static void on_child(int sig) { (void)sig; }

struct command { u32 id; i32 pid; i32 live; i32 failed; };
static struct command commands[MAX_COMMANDS];
static char buffer[MAX_REQUEST + sizeof(struct request) + 8];
static char *strings[MAX_STRINGS + 4];  // cwd, search, args, NULL, env, NULL

static void send_reply(u32 type, u32 id, i32 a, i32 b, const struct rusage_ *ru) {
    struct reply r;
    r.type = type; r.id = id; r.a = a; r.b = b;
    r.utime_us = r.stime_us = r.maxrss_kb = 0;
    if (ru) {
        r.utime_us = ru->utime.sec * 1000000 + ru->utime.usec;
        r.stime_us = ru->stime.sec * 1000000 + ru->stime.usec;
        r.maxrss_kb = ru->maxrss;
    }
    i64 n;
    // One record on a SOCK_SEQPACKET socket: written whole or not at all. cordond gone: quit.
    do { n = sys4(SYS_write, 0, (i64)&r, sizeof r, 0); } while (n == -EINTR);
    if (n != (i64)sizeof r) quit(0);
}

static void set_mask(u64 mask) { sys4(SYS_rt_sigprocmask, SIG_SETMASK, (i64)&mask, 0, 8); }

/// In the child: report (what, errno) on the pipe and end.
__attribute__((noreturn)) static void child_fail(i32 pipe_w, i32 what, i64 err) {
    i32 msg[2];
    msg[0] = what; msg[1] = (i32)-err;
    sys4(SYS_write, pipe_w, (i64)msg, sizeof msg, 0);
    quit(127);
}

static u64 length(const char *s) { u64 n = 0; while (s[n]) n++; return n; }

/// In the child: execve argv[0], along `search` (':'-separated) when it has no '/'.
__attribute__((noreturn)) static void child_exec(i32 pipe_w, char **argv, char **envp, const char *search) {
    const char *file = argv[0];
    for (const char *c = file; *c; c++)
        if (*c == '/') child_fail(pipe_w, WHAT_EXEC, sys4(SYS_execve, (i64)file, (i64)argv, (i64)envp, 0));
    static char path[MAX_PATH];
    int saw_eacces = 0;
    u64 flen = length(file);
    const char *dir = search;
    while (*dir) {
        const char *end = dir;
        while (*end && *end != ':') end++;
        u64 dlen = (u64)(end - dir);
        if (dlen > 0 && dlen + 1 + flen + 1 <= sizeof path) {
            for (u64 i = 0; i < dlen; i++) path[i] = dir[i];
            path[dlen] = '/';
            for (u64 i = 0; i <= flen; i++) path[dlen + 1 + i] = file[i];
            i64 r = sys4(SYS_execve, (i64)path, (i64)argv, (i64)envp, 0);
            if (r == -EACCES) saw_eacces = 1;
            else if (r != -ENOENT && r != -ENOTDIR) child_fail(pipe_w, WHAT_EXEC, r);
        }
        dir = *end ? end + 1 : end;
    }
    child_fail(pipe_w, WHAT_EXEC, saw_eacces ? -EACCES : -ENOENT);
}

static void close_all(const i32 *fds, int count) { for (int i = 0; i < count; i++) sys4(SYS_close, fds[i], 0, 0, 0); }

/// Starts one command. `data`/`len`: the strings; `fds`: its three streams (closed here).
static void start(const struct request *req, char *data, u32 len, const i32 *fds, int nfds) {
    u32 id = req->id;
    if (nfds != 3 || req->nargs < 1 || req->nargs > MAX_STRINGS || req->nenv > MAX_STRINGS - req->nargs || len == 0 || data[len - 1] != 0) {
        close_all(fds, nfds);
        send_reply(REP_FAILED, id, EINVAL, WHAT_REQUEST, 0);
        return;
    }
    // cwd, search, args, env: exactly nargs + nenv + 2 strings filling `len`.
    u32 want = req->nargs + req->nenv + 2, found = 0;
    for (u32 at = 0; at < len; ) {
        if (found == want) { found++; break; }
        strings[found++] = data + at;
        while (data[at]) at++;
        at++;
    }
    if (found != want) {
        close_all(fds, nfds);
        send_reply(REP_FAILED, id, EINVAL, WHAT_REQUEST, 0);
        return;
    }
    char *cwd = strings[0], *search = strings[1];
    char **argv = strings + 2;
    char **envp = strings + 2 + req->nargs;
    // The arrays end in NULL: argv's end is envp's first, so envp moves up one.
    for (u32 i = req->nenv; i > 0; i--) envp[i] = envp[i - 1];
    envp[0] = 0;
    envp += 1;
    envp[req->nenv] = 0;

    int slot = -1;
    for (int i = 0; i < MAX_COMMANDS; i++) if (!commands[i].live) { slot = i; break; }
    if (slot < 0) {
        close_all(fds, nfds);
        send_reply(REP_FAILED, id, EAGAIN, WHAT_FULL, 0);
        return;
    }
    i32 report[2];
    i64 r = sys4(SYS_pipe2, (i64)report, O_CLOEXEC, 0, 0);
    if (r < 0) {
        close_all(fds, nfds);
        send_reply(REP_FAILED, id, (i32)-r, WHAT_FORK, 0);
        return;
    }
    i64 pid = sys6(SYS_clone, SIGCHLD, 0, 0, 0, 0, 0);
    if (pid == 0) {
        // The command: a process group of its own, its three streams, nothing else open (all
        // else is close-on-exec: the report pipe tells the server the exec happened).
        i64 g = sys4(SYS_setpgid, 0, 0, 0, 0);
        if (g < 0) child_fail(report[1], WHAT_EXEC, g);
        i32 moved[3];
        for (int i = 0; i < 3; i++) {
            i64 m = sys4(SYS_fcntl, fds[i], F_DUPFD_CLOEXEC, 3, 0);
            if (m < 0) child_fail(report[1], WHAT_EXEC, m);
            moved[i] = (i32)m;
        }
        for (int i = 0; i < 3; i++) {
            i64 d = sys4(SYS_dup3, moved[i], i, 0, 0);
            if (d < 0) child_fail(report[1], WHAT_EXEC, d);
        }
        sys4(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC, 0);
        i64 c = sys4(SYS_chdir, (i64)cwd, 0, 0, 0);
        if (c < 0) child_fail(report[1], WHAT_CHDIR, c);
        set_mask(0);
        child_exec(report[1], argv, envp, search);
    }
    sys4(SYS_close, report[1], 0, 0, 0);
    close_all(fds, nfds);
    if (pid < 0) {
        sys4(SYS_close, report[0], 0, 0, 0);
        send_reply(REP_FAILED, id, (i32)-pid, WHAT_FORK, 0);
        return;
    }
    commands[slot].id = id;
    commands[slot].pid = (i32)pid;
    commands[slot].live = 1;
    commands[slot].failed = 0;
    // End of file: the command was executed. Two numbers: it was not (and exits 127).
    // (Set one by one: an aggregate initializer may become a call to memset, which this
    // program does not have.)
    i32 msg[2];
    msg[0] = msg[1] = 0;
    i64 n;
    do { n = sys4(SYS_read, report[0], (i64)msg, sizeof msg, 0); } while (n == -EINTR);
    sys4(SYS_close, report[0], 0, 0, 0);
    if (n == (i64)sizeof msg) {
        commands[slot].failed = 1;
        send_reply(REP_FAILED, id, msg[1], msg[0], 0);
    } else {
        send_reply(REP_STARTED, id, (i32)pid, 0, 0);
    }
}

/// Reaps ended commands: each is reported (unless its start already failed) and what is left
/// of its process group killed.
static void reap(void) {
    for (;;) {
        i32 ws = 0;
        struct rusage_ ru;
        i64 pid = sys4(SYS_wait4, -1, (i64)&ws, WNOHANG, (i64)&ru);
        if (pid <= 0) return;
        for (int i = 0; i < MAX_COMMANDS; i++) {
            if (!commands[i].live || commands[i].pid != pid) continue;
            sys4(SYS_kill, -pid, SIGKILL, 0, 0);
            commands[i].live = 0;
            if (!commands[i].failed) send_reply(REP_EXITED, commands[i].id, ws, 0, &ru);
            break;
        }
    }
}

__attribute__((noreturn)) static void end_session(void) {
    for (int i = 0; i < MAX_COMMANDS; i++)
        if (commands[i].live) sys4(SYS_kill, -commands[i].pid, SIGKILL, 0, 0);
    quit(0);
}

__attribute__((noreturn)) void session_main(void) {
    // Not readable or traceable by the commands, which run as our uid.
    if (sys4(SYS_prctl, PR_SET_DUMPABLE, 0, 0, 0) < 0) quit(125);
    sys4(SYS_prctl, PR_SET_NAME, (i64)"cordon-session", 0, 0);
    u64 blocked = 1UL << (SIGCHLD - 1);
    set_mask(blocked);
    struct sigaction_ sa;
    sa.handler = on_child;
    sa.flags = SA_NOCLDSTOP | SA_RESTORER;
    sa.restorer = session_restorer;
    sa.mask = 0;
    if (sys4(SYS_rt_sigaction, SIGCHLD, (i64)&sa, 0, 8) < 0) quit(125);
    send_reply(REP_READY, 0, PROTOCOL, 0, 0);

    static char control[sizeof(struct cmsghdr_) + MAX_FDS * sizeof(i32) + 16];
    for (;;) {
        reap();
        struct pollfd_ pfd;
        pfd.fd = 0; pfd.events = POLLIN; pfd.revents = 0;
        u64 open_mask = 0;
        i64 p = sys6(SYS_ppoll, (i64)&pfd, 1, 0, (i64)&open_mask, 8, 0);
        if (p == -EINTR || p == 0) continue;
        if (p < 0) end_session();
        struct iovec_ iov;
        iov.base = buffer; iov.len = sizeof buffer;
        struct msghdr_ m;
        m.name = 0; m.namelen = 0; m.iov = &iov; m.iovlen = 1;
        m.control = control; m.controllen = sizeof control; m.flags = 0;
        i64 n = sys4(SYS_recvmsg, 0, (i64)&m, MSG_CMSG_CLOEXEC, 0);
        if (n == -EINTR || n == -EAGAIN) continue;
        if (n <= 0) end_session();
        // The descriptors that came with it.
        i32 fds[MAX_FDS];
        int nfds = 0;
        for (u64 at = 0; at + sizeof(struct cmsghdr_) <= m.controllen; ) {
            struct cmsghdr_ *c = (struct cmsghdr_ *)(control + at);
            if (c->len < sizeof(struct cmsghdr_) || at + c->len > m.controllen) break;
            if (c->level == SOL_SOCKET && c->type == SCM_RIGHTS) {
                u64 count = (c->len - sizeof(struct cmsghdr_)) / sizeof(i32);
                i32 *in = (i32 *)(c + 1);
                for (u64 i = 0; i < count; i++) {
                    if (nfds < MAX_FDS) fds[nfds++] = in[i];
                    else sys4(SYS_close, in[i], 0, 0, 0);
                }
            }
            at += (c->len + 7) & ~7UL;
        }
        struct request *req = (struct request *)buffer;
        if (n < (i64)sizeof *req || (m.flags & (MSG_TRUNC | MSG_CTRUNC)) || req->len != (u64)n - sizeof *req) {
            close_all(fds, nfds);
            send_reply(REP_FAILED, n >= (i64)sizeof *req ? req->id : 0, EINVAL, WHAT_REQUEST, 0);
            continue;
        }
        if (req->type == REQ_EXEC) {
            start(req, buffer + sizeof *req, req->len, fds, nfds);
        } else if (req->type == REQ_KILL && req->sig >= 1 && req->sig <= 64 && nfds == 0) {
            // Its group, and its first process by pid (which may have left the group; its pid
            // is not reused before it is reaped here).
            for (int i = 0; i < MAX_COMMANDS; i++)
                if (commands[i].live && commands[i].id == req->id) {
                    sys4(SYS_kill, -commands[i].pid, (i64)req->sig, 0, 0);
                    sys4(SYS_kill, commands[i].pid, (i64)req->sig, 0, 0);
                }
        } else {
            close_all(fds, nfds);
            send_reply(REP_FAILED, req->id, EINVAL, WHAT_REQUEST, 0);
        }
    }
}
