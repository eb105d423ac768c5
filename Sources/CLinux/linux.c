// See clinux.h for why each of these is C.
#define _GNU_SOURCE
#include "clinux.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/landlock.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

struct cl_landlock_attr {  // struct landlock_ruleset_attr as of ABI 6
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

int cl_landlock_create_ruleset(uint64_t handled_fs, uint64_t handled_net, uint64_t scoped) {
    struct cl_landlock_attr a = { handled_fs, handled_net, scoped };
    // Older kernels reject a struct larger than they know unless the tail is zero; pass the
    // smallest size that carries what is set.
    size_t size = scoped ? 24 : handled_net ? 16 : 8;
    return (int)syscall(SYS_landlock_create_ruleset, &a, size, 0);
}

int cl_landlock_abi(void) {
    return (int)syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
}

int cl_memfd(const char *name) { return memfd_create(name, MFD_CLOEXEC); }

int cl_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }

int cl_open_pty(int *master, int *slave) {
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0) return -1;
    char name[128];
    if (grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, name, sizeof name) != 0) {
        int saved = errno;
        close(m);
        errno = saved;
        return -1;
    }
    int s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) {
        int saved = errno;
        close(m);
        errno = saved;
        return -1;
    }
    *master = m;
    *slave = s;
    return 0;
}

int cl_signalfd_for(const int *signals, int count, sigset_t *old) {
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < count; i++) sigaddset(&set, signals[i]);
    pthread_sigmask(SIG_BLOCK, &set, old);
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

int cl_signalfd_next(int fd) {
    struct signalfd_siginfo info;
    ssize_t n;
    do { n = read(fd, &info, sizeof info); } while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof info ? (int)info.ssi_signo : 0;
}

long cl_fs_type(const char *path) {
    struct statfs s;
    if (statfs(path, &s) < 0) return -1;
    return (long)s.f_type;
}

int cl_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

int cl_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int cl_pidfd_wait(int pidfd, int *wait_status, int options) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int r;
    do { r = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED | options); } while (r < 0 && errno == EINTR);
    if (r < 0) return -1;
    if (info.si_pid == 0) { *wait_status = -1; return 0; }  // WNOHANG, still running
    switch (info.si_code) {
    case CLD_EXITED: *wait_status = (info.si_status & 0xff) << 8; break;
    case CLD_KILLED: *wait_status = info.si_status & 0x7f; break;
    case CLD_DUMPED: *wait_status = (info.si_status & 0x7f) | 0x80; break;
    default: *wait_status = 0; break;
    }
    return 0;
}

ssize_t cl_recv_with_fd(int sock, void *buf, size_t len, int *fd) {
    *fd = -1;
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
                          .msg_controllen = sizeof u.b };
    ssize_t n;
    do { n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); } while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
            c->cmsg_len >= CMSG_LEN(sizeof(int))) {
            memcpy(fd, CMSG_DATA(c), sizeof(int));
        }
    }
    return n;
}

int cl_send_fds(int sock, const int *fds, size_t count) {
    if (count == 0) { errno = EINVAL; return -1; }
    char byte = 0;
    return cl_send_message(sock, &byte, 1, fds, count);
}

int cl_send_message(int sock, const void *buf, size_t len, const int *fds, size_t count) {
    if (count > CL_SEND_MAX_FDS || len == 0) { errno = EINVAL; return -1; }
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    union { char b[CMSG_SPACE(sizeof(int) * CL_SEND_MAX_FDS)]; struct cmsghdr align; } u;
    memset(&u, 0, sizeof u);
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (count > 0) {
        msg.msg_control = u.b;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * count);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * count);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * count);
    }
    ssize_t n;
    do { n = sendmsg(sock, &msg, MSG_NOSIGNAL); } while (n < 0 && errno == EINTR);
    if (n == 0) errno = EIO;  // nothing sent, and no errno to say why
    if (n >= 0 && (size_t)n != len) { errno = EMSGSIZE; return -1; }
    return n < 0 ? -1 : 0;
}

int cl_seccomp_notif_recv(int listener, struct seccomp_notif *req) {
    memset(req, 0, sizeof *req);  // the kernel insists on a zeroed buffer
    return ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, req);
}

int cl_seccomp_notif_respond_errno(int listener, uint64_t id, int err) {
    struct seccomp_notif_resp resp;
    memset(&resp, 0, sizeof resp);
    resp.id = id;
    resp.error = err ? -err : 0;
    resp.val = 0;
    resp.flags = err ? 0 : SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    return ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

int cl_seccomp_notif_id_valid(int listener, uint64_t id) {
    return ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id);
}

int cl_seccomp_notif_sizes_ok(void) {
    struct seccomp_notif_sizes s;
    if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &s) < 0) return 0;
    return s.seccomp_notif == sizeof(struct seccomp_notif) &&
           s.seccomp_notif_resp == sizeof(struct seccomp_notif_resp);
}

int cl_get_winsize(int fd, unsigned short *rows, unsigned short *cols) {
    struct winsize w;
    if (ioctl(fd, TIOCGWINSZ, &w) < 0) return -1;
    *rows = w.ws_row;
    *cols = w.ws_col;
    return 0;
}

int cl_set_winsize(int fd, unsigned short rows, unsigned short cols) {
    struct winsize w = { .ws_row = rows, .ws_col = cols, .ws_xpixel = 0, .ws_ypixel = 0 };
    return ioctl(fd, TIOCSWINSZ, &w);
}

/// Whether /proc/PID/cgroup names a cgroup path ending in `suffix` ("/cordon/s12").
static int pid_in_cgroup(long pid, const char *suffix) {
    char path[64] = "/proc/";
    char digits[24];
    int n = 0, at = 6;
    do { digits[n++] = (char)('0' + pid % 10); pid /= 10; } while (pid > 0);
    while (n > 0) path[at++] = digits[--n];
    memcpy(path + at, "/cgroup", sizeof "/cgroup");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[4096];
    ssize_t got = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (got <= 0) return 0;
    buf[got] = 0;
    size_t len = strlen(suffix);
    for (char *line = buf; *line; ) {
        char *end = strchr(line, '\n');
        size_t l = end ? (size_t)(end - line) : strlen(line);
        if (l >= len && memcmp(line + l - len, suffix, len) == 0) return 1;
        if (!end) break;
        line = end + 1;
    }
    return 0;
}

/// SIGKILLs every process listed in DIR/cgroup.procs (async-signal-safe: no allocation). Each
/// pid is pinned with a pidfd and checked to still be in the cgroup, so a pid reused by an
/// unrelated process is never signalled.
static void guardian_kill_all(const char *dir) {
    char path[4096];
    size_t n = strlen(dir);
    if (n + sizeof "/cgroup.procs" > sizeof path) return;
    memcpy(path, dir, n);
    memcpy(path + n, "/cgroup.procs", sizeof "/cgroup.procs");
    // The cgroup's path below its hierarchy: the last two components ("/cordon/s12").
    const char *suffix = dir + n;
    int slashes = 0;
    while (suffix > dir && slashes < 2) { suffix--; if (*suffix == '/') slashes++; }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char buf[4096];
    long pid = 0;
    int in_number = 0;
    ssize_t got;
    while ((got = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i <= got; i++) {
            if (i < got && buf[i] >= '0' && buf[i] <= '9') { pid = pid * 10 + (buf[i] - '0'); in_number = 1; continue; }
            if (in_number && pid > 1) {
                int pfd = cl_pidfd_open((pid_t)pid);
                if (pfd >= 0) {
                    if (pid_in_cgroup(pid, suffix)) cl_pidfd_send_signal(pfd, SIGKILL);
                    close(pfd);
                }
            }
            pid = 0;
            in_number = 0;
        }
    }
    close(fd);
}

/// What the guardian runs on: its stack, then its arguments and a copy of the directory names
/// (the caller's strings are freed once it returns). One mapping, unmapped by the caller once it
/// has reaped the guardian; if the caller dies first it stays mapped for the guardian, which
/// holds the address space.
struct guardian_args { int pipe_read, keep_fd; size_t count; const char *dirs[CL_GUARDIAN_MAX_DIRS]; };
#define GUARDIAN_STACK (64 * 1024)
#define GUARDIAN_REGION (GUARDIAN_STACK + 16 * 1024)

/// The guardian: async-signal-safe only, and it shares the caller's memory and thread pointer,
/// so until the caller is gone it makes no call that can fail and set errno (read blocks with
/// every signal blocked; setsid and close_range on its own descriptor table succeed). All
/// signals stay blocked, so a Ctrl-C aimed at the caller's process group cannot stop the
/// cleanup. It holds no descriptor but its two.
static int guardian_main(void *arg) {
    const struct guardian_args *a = arg;
    setsid();
    int lo = a->pipe_read < a->keep_fd ? a->pipe_read : a->keep_fd;
    int hi = a->pipe_read < a->keep_fd ? a->keep_fd : a->pipe_read;
    if (lo < 0) lo = hi;
    if (lo > 0) syscall(SYS_close_range, 0U, (unsigned)lo - 1, 0U);
    if (hi > lo + 1) syscall(SYS_close_range, (unsigned)lo + 1, (unsigned)hi - 1, 0U);
    syscall(SYS_close_range, (unsigned)hi + 1, ~0U, 0U);
    char b;
    ssize_t n;
    // Raw read: glibc's wrapper is a cancellation point that writes to the calling thread's
    // descriptor, which here is the caller's.
    do { n = syscall(SYS_read, a->pipe_read, &b, 1); } while (n < 0 && errno == EINTR);
    if (n == 1) _exit(0);  // the caller cleaned up
    // The caller is gone. Its sandbox dies with it (PDEATHSIG); kill whatever is left in the
    // cgroups anyway, then remove each directory once it is empty: up to 10 s.
    struct timespec tick = { 0, 5 * 1000 * 1000 };
    for (size_t i = 0; i < a->count; i++) {
        for (int attempt = 0; attempt < 2000; attempt++) {
            if (attempt % 20 == 0) guardian_kill_all(a->dirs[i]);
            if (rmdir(a->dirs[i]) == 0 || errno == ENOENT) break;
            if (errno != EBUSY) break;
            nanosleep(&tick, NULL);
        }
    }
    _exit(0);
}

pid_t cl_guardian_start(int pipe_read, int keep_fd, const char *const *dirs, size_t count, void **region) {
    *region = NULL;
    size_t bytes = 0;
    for (size_t i = 0; i < count; i++) bytes += strlen(dirs[i]) + 1;
    if (count > CL_GUARDIAN_MAX_DIRS || sizeof(struct guardian_args) + bytes > GUARDIAN_REGION - GUARDIAN_STACK) {
        errno = E2BIG;
        return -1;
    }
    char *mem = mmap(NULL, GUARDIAN_REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (mem == MAP_FAILED) return -1;
    (void)mprotect(mem, 4096, PROT_NONE);  // a guard page under the stack
    struct guardian_args *a = (struct guardian_args *)(mem + GUARDIAN_STACK);
    a->pipe_read = pipe_read;
    a->keep_fd = keep_fd;
    a->count = count;
    char *text = (char *)(a + 1);
    for (size_t i = 0; i < count; i++) {
        size_t l = strlen(dirs[i]) + 1;
        memcpy(text, dirs[i], l);
        a->dirs[i] = text;
        text += l;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    // CLONE_VM: no copy of the caller's page tables (a fork of a 30 MB supervisor cost more
    // than the rest of the guardian's life), its own descriptor table. No exit signal: nobody
    // is told when it ends; the caller reaps it with __WALL (or init does).
    int pid = clone(guardian_main, mem + GUARDIAN_STACK, CLONE_VM, a);
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        munmap(mem, GUARDIAN_REGION);
        errno = saved;
        return -1;
    }
    *region = mem;
    return (pid_t)pid;
}

void cl_guardian_release(void *region) {
    if (region) munmap(region, GUARDIAN_REGION);
}

#include <malloc.h>
int cl_malloc_trim(void) { return malloc_trim(0); }
int cl_malloc_arena_max(int arenas) { return mallopt(M_ARENA_MAX, arenas); }

int cl_open_tree_clone(const char *path, uint32_t *uid, uint32_t *gid, int *is_dir, uint32_t *mode) {
    struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_NO_SYMLINKS };
    int src = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
    if (src < 0 && errno == ENOSYS) src = open(path, O_PATH | O_CLOEXEC | O_NOFOLLOW);
    if (src < 0) return -1;
    struct stat st;
    if (fstat(src, &st) < 0) { int e = errno; close(src); errno = e; return -1; }
    *uid = st.st_uid;
    *gid = st.st_gid;
    *is_dir = S_ISDIR(st.st_mode) ? 1 : 0;
    *mode = st.st_mode;
    int tree = (int)syscall(SYS_open_tree, src, "", AT_EMPTY_PATH | OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    int e = errno;
    close(src);
    errno = e;
    return tree;
}

int cl_open_tree_clone_fd(int fd, uint32_t *uid, uint32_t *gid, int *is_dir, uint32_t *mode) {
    struct stat st;
    if (fstat(fd, &st) < 0) return -1;
    *uid = st.st_uid;
    *gid = st.st_gid;
    *is_dir = S_ISDIR(st.st_mode) ? 1 : 0;
    *mode = st.st_mode;
    return (int)syscall(SYS_open_tree, fd, "", AT_EMPTY_PATH | OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
}

int cl_thread_become_fs(uint32_t uid, uint32_t gid, const uint32_t *groups, int count) {
    if (count < 0 || count > 65536) { errno = EINVAL; return -1; }
    gid_t list[count > 0 ? count : 1];
    for (int i = 0; i < count; i++) list[i] = groups[i];
    if (syscall(SYS_setgroups, (size_t)count, list) < 0) return -1;
    // setfsgid and setfsuid return the previous id and report no error: read back to check.
    syscall(SYS_setfsgid, gid);
    if ((uint32_t)syscall(SYS_setfsgid, (gid_t)-1) != gid) { errno = EPERM; return -1; }
    syscall(SYS_setfsuid, uid);
    if ((uint32_t)syscall(SYS_setfsuid, (uid_t)-1) != uid) { errno = EPERM; return -1; }
    // Every capability of this thread goes too (capabilities are per thread): a nonzero fsuid
    // already drops the file-system ones, but CAP_SYS_PTRACE would still see /proc entries
    // hidepid hides from the caller. The thread ends after its one open.
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &header, data) < 0) return -1;
    return 0;
}

int cl_open_directory_nofollow(const char *path) {
    struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC, .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
    return (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
}

_Static_assert(CL_O_PATH == O_PATH, "CL_O_PATH is not this system's O_PATH");

static void *close_thread(void *arg) {
    close((int)(intptr_t)arg);
    return NULL;
}

int cl_close_in_background(int fd) {
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) return -1;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, PTHREAD_STACK_MIN > 65536 ? PTHREAD_STACK_MIN : 65536);
    // Nothing of ours is delivered to it: every signal blocked, as in the threads we start.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    int r = pthread_create(&t, &attr, close_thread, (void *)(intptr_t)fd);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return r == 0 ? 0 : -1;
}

// The child of cl_exit_leaving_teardown: it runs on a stack of its own in our memory, with our
// TLS pointer (never written: only raw system calls that succeed here, no errno), closes its copy
// of every descriptor but the pipe's read end — the caller waits for that before it exits, so no
// reader of our output waits for this child — and waits for that end's EOF: our exit_files,
// which comes after our exit_mm dropped our reference to the memory; the last one is its own.
static int teardown_holder(void *arg) {
    int fd = (int)(intptr_t)arg;
    if (fd > 0) syscall(SYS_close_range, 0U, (unsigned)fd - 1, 0U);
    syscall(SYS_close_range, (unsigned)fd + 1, ~0U, 0U);
    // Its exit (the teardown) yields to anything else that wants the CPU — above all to whoever
    // waits for us, woken on the same CPU just after it.
    struct sched_param idle = { 0 };
    syscall(SYS_sched_setscheduler, 0, SCHED_IDLE, &idle);
    char byte;
    while (syscall(SYS_read, fd, &byte, 1L) > 0) {}
    return 0;
}

static _Alignas(64) char teardown_stack[16384];

// The inode of the initial pid namespace (PROC_PID_INIT_INO), whose init reaps whatever it
// inherits. Elsewhere (a container whose pid 1 is an application) an orphan may stay a zombie.
#define INITIAL_PID_NAMESPACE_INODE 0xEFFFFFFCU

void cl_exit_leaving_teardown(int status) {
    struct stat ns;
    if (stat("/proc/self/ns/pid", &ns) != 0 || ns.st_ino != INITIAL_PID_NAMESPACE_INODE) exit(status);
    int gone[2], ready[2];
    if (pipe2(gone, O_CLOEXEC) != 0) exit(status);
    if (pipe2(ready, O_CLOEXEC) != 0) {
        close(gone[0]);
        close(gone[1]);
        exit(status);
    }
    // Signals stay ours: the child starts with every one blocked (Ctrl-C in its instant of
    // life must not run a handler on our memory or kill it half way), and so do we from here.
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, NULL);
    // The child is reaped by whoever inherits it (its exit signal is SIGCHLD); `gone`'s read end
    // is the one descriptor it keeps, its write end ours until we exit.
    if (clone(teardown_holder, teardown_stack + sizeof teardown_stack, CLONE_VM | SIGCHLD, (void *)(intptr_t)gone[0]) < 0) {
        close(gone[0]);
        close(gone[1]);
    } else {
        // EOF once the child has closed its copies of our descriptors (its copy of `ready`'s
        // write end among them).
        close(ready[1]);
        char byte;
        while (read(ready[0], &byte, 1) < 0 && errno == EINTR) {}
    }
    exit(status);
}

int cl_exists_without_symlinks(const char *path) {
    struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
    int fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

int cl_openat_beneath(int dir, const char *path, int flags, uint32_t mode) {
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC | O_NOFOLLOW),
        .mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
    };
    return (int)syscall(SYS_openat2, dir, path, &how, sizeof how);
}

int cl_access_fd(int fd, int mode) {
    return (int)syscall(SYS_faccessat2, fd, "", mode, AT_EMPTY_PATH | AT_EACCESS);
}

int cl_mount_setattr_idmap(int tree, int userns_fd, int noexec, int readonly) {
    struct mount_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (noexec ? MOUNT_ATTR_NOEXEC : 0)
                  | (readonly ? MOUNT_ATTR_RDONLY : 0);
    attr.attr_clr = readonly ? 0 : MOUNT_ATTR_RDONLY;
    attr.propagation = MS_PRIVATE;
    attr.userns_fd = (uint64_t)userns_fd;
    return (int)syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr);
}

int cl_mount_setattr_readonly(int tree) {
    struct mount_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    attr.propagation = MS_PRIVATE;
    return (int)syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr);
}

// What a file system said about a failed fsconfig (its log, read from the context's fd).
static void cl_fs_log(int fs, char *why, size_t why_len) {
    if (!why || why_len == 0) return;
    why[0] = 0;
    size_t used = 0;
    char line[512];
    ssize_t n;
    while (used + 1 < why_len && (n = read(fs, line, sizeof line - 1)) > 0) {
        line[n] = 0;
        int wrote = snprintf(why + used, why_len - used, "%s%s", used ? "; " : "", line);
        if (wrote < 0) break;
        used += (size_t)wrote < why_len - used ? (size_t)wrote : why_len - used - 1;
    }
}

static int cl_fs_fail(int fs, char *why, size_t why_len) {
    int e = errno;
    cl_fs_log(fs, why, why_len);
    close(fs);
    errno = e;
    return -1;
}

int cl_cow_layer(uint64_t size, uint64_t inodes, char *why, size_t why_len) {
    if (why && why_len) why[0] = 0;
    int fs = (int)syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC);
    if (fs < 0) return -1;
    char number[32];
    snprintf(number, sizeof number, "%llu", (unsigned long long)size);
    if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "size", number, 0) < 0) return cl_fs_fail(fs, why, why_len);
    snprintf(number, sizeof number, "%llu", (unsigned long long)inodes);
    if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "nr_inodes", number, 0) < 0) return cl_fs_fail(fs, why, why_len);
    if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "mode", "0700", 0) < 0) return cl_fs_fail(fs, why, why_len);
    if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) return cl_fs_fail(fs, why, why_len);
    int mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
    if (mnt < 0) return cl_fs_fail(fs, why, why_len);
    close(fs);
    if (mkdirat(mnt, "upper", 0700) < 0 || mkdirat(mnt, "work", 0700) < 0 || mkdirat(mnt, "lower", 0755) < 0) {
        int e = errno;
        close(mnt);
        errno = e;
        return -1;
    }
    return mnt;
}

int cl_cow_overlay(int lower, int layer, uint32_t uid, uint32_t gid, uint32_t mode, int noexec, char *why, size_t why_len) {
    if (why && why_len) why[0] = 0;
    int upper = openat(layer, "upper", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (upper < 0) return -1;
    int work = openat(layer, "work", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (work < 0) { int e = errno; close(upper); errno = e; return -1; }
    int result = -1, fs = -1;
    if (fchown(upper, uid, gid) < 0 || fchmod(upper, mode & 07777 & ~(S_ISUID | S_ISGID)) < 0) goto out;
    fs = (int)syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC);
    if (fs < 0) goto out;
    if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_FD, "lowerdir+", NULL, lower) < 0
        || syscall(SYS_fsconfig, fs, FSCONFIG_SET_FD, "upperdir", NULL, upper) < 0
        || syscall(SYS_fsconfig, fs, FSCONFIG_SET_FD, "workdir", NULL, work) < 0
        || syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "redirect_dir", "off", 0) < 0
        || syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "metacopy", "off", 0) < 0
        || syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "index", "off", 0) < 0
        || syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
        cl_fs_fail(fs, why, why_len);
        fs = -1;
        goto out;
    }
    result = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (noexec ? MOUNT_ATTR_NOEXEC : 0));
    if (result < 0) cl_fs_log(fs, why, why_len);
out:
    {
        int e = errno;
        if (fs >= 0) close(fs);
        close(upper);
        close(work);
        errno = e;
    }
    return result;
}

int cl_overlay_opaque(int fd) {
    char flag[4];
    ssize_t n = fgetxattr(fd, "trusted.overlay.opaque", flag, sizeof flag);
    if (n < 0) return (errno == ENODATA || errno == ENOTSUP) ? 0 : -1;
    return n == 1 && flag[0] == 'y' ? 1 : 0;
}

long cl_fd_fs_type(int fd, int *readonly) {
    struct statfs s;
    if (fstatfs(fd, &s) < 0) return -1;
    *readonly = (s.f_flags & ST_RDONLY) ? 1 : 0;
    return (long)s.f_type;
}
