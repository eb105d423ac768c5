// cordon-init's raw system calls, shared by pid 1 (init.c) and the session server (session.c).
// Freestanding: no libc, so each call is an instruction and each structure the kernel's layout.
#ifndef CORDON_INIT_SYS_H
#define CORDON_INIT_SYS_H

typedef long i64;
typedef int i32;
typedef unsigned long u64;
typedef unsigned int u32;

#if defined(__x86_64__)
enum { SYS_read = 0, SYS_write = 1, SYS_close = 3, SYS_rt_sigaction = 13, SYS_rt_sigprocmask = 14,
       SYS_sendmsg = 46, SYS_recvmsg = 47, SYS_clone = 56, SYS_execve = 59, SYS_wait4 = 61,
       SYS_kill = 62, SYS_fcntl = 72, SYS_chdir = 80, SYS_getrusage = 98, SYS_setpgid = 109,
       SYS_capset = 126, SYS_rt_sigtimedwait = 128, SYS_prctl = 157, SYS_exit_group = 231,
       SYS_ppoll = 271, SYS_dup3 = 292, SYS_pipe2 = 293, SYS_close_range = 436 };
// Six arguments (unused ones 0: prctl refuses options with stray ones).
static inline i64 sys6(i64 n, i64 a, i64 b, i64 c, i64 d, i64 e, i64 f) {
    i64 ret;
    register i64 r10 __asm__("r10") = d;
    register i64 r8 __asm__("r8") = e;
    register i64 r9 __asm__("r9") = f;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}
#elif defined(__aarch64__)
enum { SYS_dup3 = 24, SYS_fcntl = 25, SYS_chdir = 49, SYS_close = 57, SYS_pipe2 = 59, SYS_read = 63,
       SYS_write = 64, SYS_ppoll = 73, SYS_capset = 91, SYS_exit_group = 94, SYS_kill = 129,
       SYS_rt_sigaction = 134, SYS_rt_sigprocmask = 135, SYS_rt_sigtimedwait = 137,
       SYS_setpgid = 154, SYS_getrusage = 165, SYS_prctl = 167, SYS_sendmsg = 211, SYS_recvmsg = 212,
       SYS_clone = 220, SYS_execve = 221, SYS_wait4 = 260, SYS_close_range = 436 };
static inline i64 sys6(i64 n, i64 a, i64 b, i64 c, i64 d, i64 e, i64 f) {
    register i64 x8 __asm__("x8") = n;
    register i64 x0 __asm__("x0") = a;
    register i64 x1 __asm__("x1") = b;
    register i64 x2 __asm__("x2") = c;
    register i64 x3 __asm__("x3") = d;
    register i64 x4 __asm__("x4") = e;
    register i64 x5 __asm__("x5") = f;
    __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
    return x0;
}
#else
#error "cordon-init: x86_64 and aarch64 only"
#endif

static inline i64 sys4(i64 n, i64 a, i64 b, i64 c, i64 d) { return sys6(n, a, b, c, d, 0, 0); }

enum { SIGHUP = 1, SIGINT = 2, SIGQUIT = 3, SIGKILL = 9, SIGUSR1 = 10, SIGUSR2 = 12, SIGPIPE = 13,
       SIGALRM = 14, SIGTERM = 15, SIGCHLD = 17, SIGCONT = 18, SIGTSTP = 20, SIGTTIN = 21, SIGTTOU = 22,
       SIGWINCH = 28 };
enum { EINTR = 4, EAGAIN = 11, EINVAL = 22, E2BIG = 7, ENOENT = 2, EACCES = 13, ENOTDIR = 20,
       WNOHANG = 1, WUNTRACED = 2, RUSAGE_CHILDREN = -1, CAP_KILL = 5 };
enum { PR_SET_PDEATHSIG = 1, PR_SET_DUMPABLE = 4, PR_SET_NAME = 15, PR_SET_NO_NEW_PRIVS = 38 };

struct timeval_ { i64 sec, usec; };
struct rusage_ { struct timeval_ utime, stime; i64 maxrss; i64 rest[13]; };

__attribute__((noreturn)) static inline void quit(i32 code) {
    for (;;) sys4(SYS_exit_group, code, 0, 0, 0);
}

/// The session server (session.c): started as the workload, as argv[0] "cordon-session".
__attribute__((noreturn)) void session_main(void);

#endif
