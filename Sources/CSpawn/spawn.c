// The sandbox child: everything between clone() and execve(). See cspawn.h for why this is C.
//
// Rules for this file: only raw system calls (cs_sys below: no errno, no libc state), no malloc,
// no stdio, no libseccomp/libcap; every failure is reported as (step, index, errno) and ends in
// exit_group. The child may share the supervisor's memory (plan->share_memory): it then runs on
// a stack of its own but with the calling thread's thread pointer, so it must not write any
// thread-local state — errno included, which is why no libc wrapper is called. The sequence
// below is a flat checklist; comments say where the order matters.
#define _GNU_SOURCE
#include "cspawn.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/landlock.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/securebits.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <stddef.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define CS_PATH_MAX 4096

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

// ---------------------------------------------------------------------------------------------
// Raw system calls: the result, or -errno.

#if defined(__x86_64__)
#define CS_CAN_SHARE_MEMORY 1
static inline long cs_sys(long n, long a, long b, long c, long d, long e, long f) {
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

// long cs_clone3_run(struct clone_args *args, size_t size, int (*fn)(void *), void *arg)
// clone3, and in the child (which starts on args->stack) fn(arg) then exit_group. The parent
// gets the pid or -errno. r8/r9 survive the syscall in both processes (rcx/r11 do not).
long cs_clone3_run(struct clone_args *args, size_t size, int (*fn)(void *), void *arg);
__asm__(".text\n"
        ".globl cs_clone3_run\n"
        ".hidden cs_clone3_run\n"
        ".type cs_clone3_run,@function\n"
        "cs_clone3_run:\n"
        "  mov %rdx, %r8\n"
        "  mov %rcx, %r9\n"
        "  mov $435, %eax\n"          // SYS_clone3
        "  syscall\n"
        "  test %rax, %rax\n"
        "  jz 1f\n"
        "  ret\n"
        "1:\n"
        "  xor %ebp, %ebp\n"
        "  mov %r9, %rdi\n"
        "  call *%r8\n"
        "  mov %eax, %edi\n"
        "  mov $231, %eax\n"          // SYS_exit_group
        "  syscall\n"
        "  hlt\n"
        ".size cs_clone3_run, .-cs_clone3_run\n");
#else
// Elsewhere the child always gets a copy of memory (share_memory is ignored), so libc's
// wrapper and its errno are safe to use.
#define CS_CAN_SHARE_MEMORY 0
static inline long cs_sys(long n, long a, long b, long c, long d, long e, long f) {
    long r = syscall(n, a, b, c, d, e, f);
    return r < 0 ? -errno : r;
}
#endif

#define CS_SYS(n, a, b, c, d, e, f) cs_sys((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))
#define sys0(n) CS_SYS(n, 0, 0, 0, 0, 0, 0)
#define sys1(n, a) CS_SYS(n, a, 0, 0, 0, 0, 0)
#define sys2(n, a, b) CS_SYS(n, a, b, 0, 0, 0, 0)
#define sys3(n, a, b, c) CS_SYS(n, a, b, c, 0, 0, 0)
#define sys4(n, a, b, c, d) CS_SYS(n, a, b, c, d, 0, 0)
#define sys5(n, a, b, c, d, e) CS_SYS(n, a, b, c, d, e, 0)
#define sys6(n, a, b, c, d, e, f) CS_SYS(n, a, b, c, d, e, f)

__attribute__((noreturn)) static void cs_exit(int code) {
    for (;;) sys1(SYS_exit_group, code);
}

static long cs_close(int fd) { return sys1(SYS_close, fd); }
static long cs_open(const char *path, int flags, unsigned mode) { return sys4(SYS_openat, AT_FDCWD, path, flags, mode); }

// ---------------------------------------------------------------------------------------------
// Reporting

static void report(const struct cs_plan *p, int step, int index, int err) {
    struct cs_report r = { .step = step, .index = index, .err = err, .has_fd = 0 };
    // SOCK_SEQPACKET: one record per send; a failed send has nobody to tell. sendmsg, not
    // sendto: a report after the seccomp filter (execve failed) must pass it, and every
    // profile must allow sendmsg for the listener's hand-off (SeccompCompiler refuses others).
    struct iovec iov = { .iov_base = &r, .iov_len = sizeof r };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    (void)sys3(SYS_sendmsg, p->chan_fd, &msg, MSG_NOSIGNAL);
}

__attribute__((noreturn)) static void fail(const struct cs_plan *p, int step, int index, long err) {
    report(p, step, index, (int)-err);
    cs_exit(125);
}

/// expr is a raw call's result (or a helper's): negative means -errno.
#define CHECK(expr, step, index) do { long r_ = (long)(expr); if (r_ < 0) fail(p, (step), (index), r_); } while (0)

static long send_fd(int chan, int fd) {
    struct cs_report r = { .step = CS_STEP_NONE, .index = 0, .err = 0, .has_fd = 1 };
    struct iovec iov = { .iov_base = &r, .iov_len = sizeof r };
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    memset(&u, 0, sizeof u);
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                          .msg_controllen = sizeof u.buf };
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    long n = sys3(SYS_sendmsg, chan, &msg, MSG_NOSIGNAL);
    return n < 0 ? n : 0;
}

/// Receives exactly `count` descriptors in one message from the parent (it sends nothing else
/// this way). EOF (the parent gave up or died) ends the child; anything else is -EPROTO.
static long receive_fds(int chan, int *fds, size_t count) {
    if (count > CS_MAX_CGROUP_FILES) return -EINVAL;
    char byte;
    struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
    union { char buf[CMSG_SPACE(sizeof(int) * CS_MAX_CGROUP_FILES)]; struct cmsghdr align; } u;
    memset(&u, 0, sizeof u);
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
    long n;
    do { n = sys3(SYS_recvmsg, chan, &msg, MSG_CMSG_CLOEXEC); } while (n == -EINTR);
    if (n == 0) cs_exit(125);
    if (n < 0) return n;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    size_t got = 0;
    if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
        got = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    if (got > 0) memcpy(fds, CMSG_DATA(c), got * sizeof(int));
    if (got != count || (msg.msg_flags & MSG_CTRUNC)) {
        for (size_t i = 0; i < got && i < CS_MAX_CGROUP_FILES; i++) cs_close(fds[i]);
        return -EPROTO;
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Small helpers (each returns 0 or -errno)

static size_t cs_strlen(const char *s) { size_t n = 0; while (s[n]) n++; return n; }

/// buf = a + b.
static long join(char *buf, const char *a, const char *b) {
    size_t la = cs_strlen(a), lb = cs_strlen(b);
    if (la + lb + 1 > CS_PATH_MAX) return -ENAMETOOLONG;
    memcpy(buf, a, la);
    memcpy(buf + la, b, lb + 1);
    return 0;
}

/// "prefix" followed by the decimal digits of v (v >= 0) into buf (at least 48 bytes).
static void with_number(char *buf, const char *prefix, long v) {
    size_t at = cs_strlen(prefix);
    memcpy(buf, prefix, at);
    char digits[24];
    int n = 0;
    do { digits[n++] = (char)('0' + v % 10); v /= 10; } while (v > 0);
    while (n > 0) buf[at++] = digits[--n];
    buf[at] = 0;
}

static long write_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        long n = sys3(SYS_write, fd, data, len);
        if (n == -EINTR) continue;
        if (n < 0) return n;
        data += n; len -= (size_t)n;
    }
    return 0;
}

static long cs_lstat(const char *path, struct stat *st) {
    return sys4(SYS_newfstatat, AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW);
}

/// A mount point that already exists is fine even where nothing may be created (a read-only
/// bind, a host directory the sandbox's root cannot write): only its kind is checked.
static long existing_mount_point(const char *path, long err, int directory) {
    if (err != -EROFS && err != -EACCES && err != -EPERM) return err;
    struct stat st;
    if (cs_lstat(path, &st) < 0) return err;
    int is_dir = S_ISDIR(st.st_mode);
    if (S_ISLNK(st.st_mode) || is_dir != directory) return -ENOTDIR;
    return 0;
}

static long mkdir_ok(const char *path, unsigned mode) {
    long r = sys3(SYS_mkdirat, AT_FDCWD, path, mode);
    if (r == -EEXIST) return 0;
    return r < 0 ? existing_mount_point(path, r, 1) : 0;
}

/// A file mount point: created empty (mknod: no descriptor opened for writing), or already there.
static long touch(const char *path) {
    long r = sys4(SYS_mknodat, AT_FDCWD, path, S_IFREG | 0444, 0);
    if (r == -EEXIST) return 0;
    return r < 0 ? existing_mount_point(path, r, 0) : 0;
}

/// Mount flags the kernel locks on a mount that came from a more privileged namespace: a
/// remount inside our user namespace must repeat them or it fails with EPERM.
static unsigned long locked_flags(const char *path) {
    struct statfs s;
    if (sys2(SYS_statfs, path, &s) < 0) return 0;
    unsigned long f = 0;
    if (s.f_flags & ST_NOSUID) f |= MS_NOSUID;
    if (s.f_flags & ST_NODEV) f |= MS_NODEV;
    if (s.f_flags & ST_NOEXEC) f |= MS_NOEXEC;
    if (s.f_flags & ST_RDONLY) f |= MS_RDONLY;
    if (s.f_flags & ST_NOATIME) f |= MS_NOATIME;
    if (s.f_flags & ST_NODIRATIME) f |= MS_NODIRATIME;
    if (s.f_flags & ST_RELATIME) f |= MS_RELATIME;
    return f;
}

static long cs_mount(const char *src, const char *target, const char *type, unsigned long flags, const void *data) {
    return sys5(SYS_mount, src, target, type, flags, data);
}

static long remount_bind(const char *path, unsigned long flags) {
    return cs_mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | flags | locked_flags(path), NULL);
}

// ---------------------------------------------------------------------------------------------
// Mount plan

static long do_mount_op(const struct cs_plan *p, const struct cs_mount_op *op, char *path) {
    long r = join(path, p->root_mountpoint, op->target);
    if (r < 0) return r;
    unsigned long extra = MS_NOSUID | MS_NODEV | ((op->flags & CS_MF_NOEXEC) ? MS_NOEXEC : 0);
    switch (op->kind) {
    case CS_MOUNT_DIR:
        if ((r = mkdir_ok(path, op->mode)) < 0) return r;
        if (op->flags & CS_MF_CHOWN) return sys5(SYS_fchownat, AT_FDCWD, path, p->uid, p->gid, 0);
        return 0;
    case CS_MOUNT_BIND: {
        // Open the source without following any symlink and mount from the descriptor, so a
        // path the workload's owner controls cannot be swapped between check and mount. The
        // open happens here, in our mount namespace: a descriptor opened by the parent would
        // name a mount of the host namespace, which bind refuses.
        struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_NO_SYMLINKS };
        long src_fd = sys4(SYS_openat2, AT_FDCWD, op->data, &how, sizeof how);
        if (src_fd == -ENOSYS) src_fd = cs_open(op->data, O_PATH | O_CLOEXEC | O_NOFOLLOW, 0);
        if (src_fd < 0) return (src_fd == -ENOENT && (op->flags & CS_MF_OPTIONAL)) ? 0 : src_fd;
        r = (op->flags & CS_MF_ISDIR) ? mkdir_ok(path, 0755) : touch(path);
        if (r < 0) { cs_close((int)src_fd); return r; }
        char src[48];
        with_number(src, "/proc/self/fd/", src_fd);
        r = cs_mount(src, path, NULL, MS_BIND, NULL);
        cs_close((int)src_fd);
        if (r < 0) return r;
        // A fresh bind inherits the source's flags; the remount applies ours.
        unsigned long flags = extra;
        if (op->flags & CS_MF_READONLY) flags |= MS_RDONLY;
        if (op->flags & CS_MF_DEVICE) flags &= ~(unsigned long)MS_NODEV;
        return remount_bind(path, flags);
    }
    case CS_MOUNT_TMPFS:
        if ((r = mkdir_ok(path, 0755)) < 0) return r;
        if ((r = cs_mount("tmpfs", path, "tmpfs", extra, op->data)) < 0) return r;
        if (op->flags & CS_MF_CHOWN) return sys5(SYS_fchownat, AT_FDCWD, path, p->uid, p->gid, 0);
        return 0;
    case CS_MOUNT_SYMLINK:
        r = sys3(SYS_symlinkat, op->data, AT_FDCWD, path);
        return r < 0 && r != -EEXIST ? r : 0;
    case CS_MOUNT_FILE: {
        long fd = cs_open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, op->mode);
        if (fd < 0) return fd;
        r = write_all((int)fd, op->data, op->data_len);
        cs_close((int)fd);
        return r;
    }
    case CS_MOUNT_PROC:
        if ((r = mkdir_ok(path, 0555)) < 0) return r;
        return cs_mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    case CS_MOUNT_MASK: {
        struct stat st;
        if ((r = cs_lstat(path, &st)) < 0) return (r == -ENOENT && (op->flags & CS_MF_OPTIONAL)) ? 0 : r;
        if (S_ISDIR(st.st_mode))
            return cs_mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                            "size=0,mode=0555");
        char null_path[CS_PATH_MAX];
        if ((r = join(null_path, p->root_mountpoint, "/dev/null")) < 0) return r;
        return cs_mount(null_path, path, NULL, MS_BIND, NULL);
    }
    case CS_MOUNT_READONLY: {
        struct stat st;
        if ((r = cs_lstat(path, &st)) < 0) return (r == -ENOENT && (op->flags & CS_MF_OPTIONAL)) ? 0 : r;
        if ((r = cs_mount(path, path, NULL, MS_BIND | MS_REC, NULL)) < 0) return r;
        return remount_bind(path, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
    }
    case CS_MOUNT_ATTACH:
        // An idmapped, detached mount the parent made (it alone may: idmapping needs the host's
        // privilege over the file system); moving it in needs only ours over this namespace.
        if (op->fd < 0) return (op->flags & CS_MF_OPTIONAL) ? 0 : -EBADF;
        r = (op->flags & CS_MF_ISDIR) ? mkdir_ok(path, 0755) : touch(path);
        if (r < 0) return r;
        r = sys5(SYS_move_mount, op->fd, "", AT_FDCWD, path, MOVE_MOUNT_F_EMPTY_PATH);
        cs_close(op->fd);
        return r;
    case CS_MOUNT_DEVPTS:
        if ((r = mkdir_ok(path, 0755)) < 0) return r;
        return cs_mount("devpts", path, "devpts", MS_NOSUID | MS_NOEXEC,
                        "newinstance,ptmxmode=0666,mode=0620");
    default:
        return -EINVAL;
    }
}

static void build_root(const struct cs_plan *p) {
    char path[CS_PATH_MAX];
    // Nothing we mount may propagate back to the host.
    CHECK(cs_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), CS_STEP_MOUNT_PRIVATE, 0);
    CHECK(cs_mount("tmpfs", p->root_mountpoint, "tmpfs", MS_NOSUID | MS_NODEV, p->root_options),
          CS_STEP_ROOT_TMPFS, 0);
    for (size_t i = 0; i < p->mount_count; i++)
        CHECK(do_mount_op(p, &p->mounts[i], path), CS_STEP_MOUNT, (int)i);

    // pivot_root(".", ".") stacks the old root under the new one; detaching it leaves only the
    // new tree reachable (the pivot_root(2) idiom that needs no put_old directory).
    CHECK(sys1(SYS_chdir, p->root_mountpoint), CS_STEP_PIVOT_ROOT, 0);
    CHECK(sys2(SYS_pivot_root, ".", "."), CS_STEP_PIVOT_ROOT, 1);
    CHECK(sys2(SYS_umount2, ".", MNT_DETACH), CS_STEP_PIVOT_ROOT, 2);
    CHECK(sys1(SYS_chdir, "/"), CS_STEP_PIVOT_ROOT, 3);
    if (p->root_readonly)
        CHECK(cs_mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL),
              CS_STEP_ROOT_READONLY, 0);
}

static void bring_up_loopback(const struct cs_plan *p) {
    long s = sys3(SYS_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(s, CS_STEP_LOOPBACK, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, "lo", 3);
    CHECK(sys3(SYS_ioctl, s, SIOCGIFFLAGS, &ifr), CS_STEP_LOOPBACK, 1);
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    CHECK(sys3(SYS_ioctl, s, SIOCSIFFLAGS, &ifr), CS_STEP_LOOPBACK, 2);
    cs_close((int)s);
}

// ---------------------------------------------------------------------------------------------
// The workload: identity, privileges, confinement, exec

// The id changes are raw syscalls: glibc's wrappers broadcast the change to every thread of the
// process (its "setxid" machinery, with locks), and after a raw clone of a multi-threaded parent
// the child has one thread but glibc's bookkeeping still lists the parent's.
static long set_groups_none(void) { return sys2(SYS_setgroups, 0, NULL); }
static long set_gid(gid_t g) { return sys3(SYS_setresgid, g, g, g); }
static long set_uid(uid_t u) { return sys3(SYS_setresuid, u, u, u); }
static long set_pdeathsig(void) { return sys2(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL); }

/// Closes every descriptor except those in `keep` (unsorted, -1 entries ignored; at most
/// 8 + CS_MAX_ATTACH).
static void close_all_but(const int *keep, int n) {
    int sorted[8 + CS_MAX_ATTACH];
    int m = 0;
    for (int i = 0; i < n && m < 8 + CS_MAX_ATTACH; i++) {
        if (keep[i] < 0) continue;
        int v = keep[i], j = m++;
        while (j > 0 && sorted[j - 1] > v) { sorted[j] = sorted[j - 1]; j--; }
        sorted[j] = v;
    }
    unsigned next = 0;
    for (int i = 0; i < m; i++) {
        if ((unsigned)sorted[i] > next) sys3(SYS_close_range, next, (unsigned)sorted[i] - 1, 0U);
        next = (unsigned)sorted[i] + 1;
    }
    sys3(SYS_close_range, next, ~0U, 0U);
}

static long cap_set(uint64_t caps) {
    struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    d[0].effective = d[0].permitted = d[0].inheritable = (uint32_t)caps;
    d[1].effective = d[1].permitted = d[1].inheritable = (uint32_t)(caps >> 32);
    return sys2(SYS_capset, &h, d);
}

/// Every signal back to its default action (the handlers are the Swift parent's).
static void reset_signal_handlers(void) {
    struct { void *handler; unsigned long flags; void *restorer; uint64_t mask; } dfl = { SIG_DFL, 0, NULL, 0 };
    for (int s = 1; s < 65; s++) {
        if (s == SIGKILL || s == SIGSTOP) continue;
        (void)sys4(SYS_rt_sigaction, s, &dfl, NULL, 8);
    }
}

/// The calling thread's signal mask (the kernel's 64-bit set).
static long set_sigmask(uint64_t mask) { return sys4(SYS_rt_sigprocmask, SIG_SETMASK, &mask, NULL, sizeof mask); }

static void setup_stdio(const struct cs_plan *p) {
    // Move the sources above 2 first so that dup onto 0..2 cannot clobber one still needed.
    long moved[3];
    for (int i = 0; i < 3; i++) {
        moved[i] = sys3(SYS_fcntl, p->stdio[i], F_DUPFD_CLOEXEC, 3);
        CHECK(moved[i], CS_STEP_STDIO, i);
    }
    for (int i = 0; i < 3; i++) CHECK(sys3(SYS_dup3, moved[i], i, 0), CS_STEP_STDIO, i);
    // The copies go: under a low limits.open_files every slot counts (the listener needs one).
    for (int i = 0; i < 3; i++) cs_close((int)moved[i]);
    if (p->set_ctty) {
        // Init leads the sandbox's session; the workload needs its own to take a terminal.
        CHECK(sys0(SYS_setsid), CS_STEP_SETSID, 1);
        CHECK(sys3(SYS_ioctl, 0, TIOCSCTTY, 0), CS_STEP_STDIO, 3);
    }
}

static void exec_workload(const struct cs_plan *p) {
    const char *file = p->argv[0];
    for (const char *c = file; *c; c++) {
        if (*c == '/') fail(p, CS_STEP_EXEC, 0, sys3(SYS_execve, file, p->argv, p->envp));
    }
    char path[CS_PATH_MAX];
    int saw_eacces = 0;
    const char *dir = p->exec_path_search;
    size_t flen = cs_strlen(file);
    while (dir && *dir) {
        const char *end = dir;
        while (*end && *end != ':') end++;
        size_t dlen = (size_t)(end - dir);
        if (dlen > 0 && dlen + 1 + flen + 1 <= sizeof path) {
            memcpy(path, dir, dlen);
            path[dlen] = '/';
            memcpy(path + dlen + 1, file, flen + 1);
            long r = sys3(SYS_execve, path, p->argv, p->envp);
            if (r == -EACCES) saw_eacces = 1;
            else if (r != -ENOENT && r != -ENOTDIR) fail(p, CS_STEP_EXEC, 0, r);
        }
        dir = *end ? end + 1 : end;
    }
    fail(p, CS_STEP_EXEC, 0, saw_eacces ? -EACCES : -ENOENT);
}

/// The workload's own set-up but for the seccomp filter: streams, directory, limits, privileges,
/// Landlock. Our code only, so it may run before cordon-init does (see run_gated_workload).
static void prepare_workload(const struct cs_plan *p) {
    setup_stdio(p);
    CHECK(sys1(SYS_chdir, p->cwd), CS_STEP_CHDIR, 0);
    for (size_t i = 0; i < p->rlimit_count; i++) {
        struct rlimit rl = { .rlim_cur = p->rlimits[i].soft, .rlim_max = p->rlimits[i].hard };
        CHECK(sys4(SYS_prlimit64, 0, p->rlimits[i].resource, &rl, NULL), CS_STEP_RLIMIT, (int)i);
    }

    // Privileges. Order matters: the bounding set and securebits need CAP_SETPCAP, which the
    // uid change below takes away; setuid comes last among the id changes because after it we
    // could no longer setgid.
    for (int c = 0; c <= p->cap_last; c++) {
        if (p->keep_caps & (1ULL << c)) continue;
        CHECK(sys2(SYS_prctl, PR_CAPBSET_DROP, c), CS_STEP_CAP_BOUNDING, c);
    }
    // A uid-0 execve gains nothing (NOROOT), and that cannot be undone (LOCKED).
    int bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED;
    if (p->keep_caps) bits |= SECBIT_KEEP_CAPS;
    CHECK(sys2(SYS_prctl, PR_SET_SECUREBITS, bits), CS_STEP_SECUREBITS, 0);
    CHECK(sys5(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), CS_STEP_AMBIENT, 0);
    CHECK(set_groups_none(), CS_STEP_SETGROUPS, 0);
    CHECK(set_gid(p->gid), CS_STEP_SETGID, 0);
    CHECK(set_uid(p->uid), CS_STEP_SETUID, 0);
    CHECK(cap_set(p->keep_caps), CS_STEP_CAPSET, 0);
    for (int c = 0; c <= p->cap_last; c++) {
        if (!(p->keep_caps & (1ULL << c))) continue;
        CHECK(sys5(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0), CS_STEP_AMBIENT, c);
    }
    CHECK(sys5(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), CS_STEP_NO_NEW_PRIVS, 0);

    // Every inherited descriptor above 2 closes at execve; the channel stays usable until then.
    if (sys3(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        for (int fd = 3; fd < 65536; fd++) {
            long fl = sys2(SYS_fcntl, fd, F_GETFD);
            if (fl >= 0) sys3(SYS_fcntl, fd, F_SETFD, fl | FD_CLOEXEC);
        }
    }

    // Landlock mirrors the mount plan: rules are added here, on paths of the new root.
    if (p->landlock_fd >= 0) {
        for (size_t i = 0; i < p->landlock_rule_count; i++) {
            long fd = cs_open(p->landlock_rules[i].path, O_PATH | O_CLOEXEC, 0);
            if (fd == -ENOENT) continue;
            CHECK(fd, CS_STEP_LANDLOCK_RULE, (int)i);
            struct landlock_path_beneath_attr a = {
                .allowed_access = p->landlock_rules[i].access, .parent_fd = (int)fd };
            CHECK(sys4(SYS_landlock_add_rule, p->landlock_fd, LANDLOCK_RULE_PATH_BENEATH, &a, 0),
                  CS_STEP_LANDLOCK_RULE, (int)i);
            cs_close((int)fd);
        }
        // A session's server: executing (and so reading) its program, by descriptor.
        if (p->workload_is_init) {
            struct landlock_path_beneath_attr a = {
                .allowed_access = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE,
                .parent_fd = p->init_exec_fd };
            CHECK(sys4(SYS_landlock_add_rule, p->landlock_fd, LANDLOCK_RULE_PATH_BENEATH, &a, 0),
                  CS_STEP_LANDLOCK_RULE, (int)p->landlock_rule_count);
        }
        CHECK(sys2(SYS_landlock_restrict_self, p->landlock_fd, 0), CS_STEP_LANDLOCK_RESTRICT, 0);
    }

}

/// The architecture a filter sees in seccomp_data.arch for our own calls.
#if defined(__x86_64__)
#include <linux/audit.h>
#define CS_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#include <linux/audit.h>
#define CS_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/// Whether `f` answers SECCOMP_RET_ALLOW to system call `nr` of our architecture whatever its
/// arguments: the filter run with only the number and the architecture known, as the kernel's
/// action cache runs it. Reading anything else (an argument, the instruction pointer) or an
/// instruction this walk does not know answers no. Classic BPF jumps only forward, so the walk
/// ends within `len` steps.
int cs_filter_allows(const void *filter, size_t len, unsigned nr) {
#ifndef CS_AUDIT_ARCH
    (void)filter; (void)len; (void)nr;
    return 0;  // an architecture this walk does not model: the filter goes on after the gate
#else
    const struct sock_filter *f = filter;
    if (len > BPF_MAXINSNS) return 0;  // the kernel takes no more; the length it gets is 16 bits
    uint32_t a = 0;
    size_t pc = 0;
    while (pc < len) {
        const struct sock_filter *i = &f[pc++];
        switch (i->code) {
        case BPF_LD | BPF_W | BPF_ABS:
            if (i->k == offsetof(struct seccomp_data, nr)) a = nr;
            else if (i->k == offsetof(struct seccomp_data, arch)) a = CS_AUDIT_ARCH;
            else return 0;
            break;
        case BPF_JMP | BPF_JA: pc += i->k; break;
        case BPF_JMP | BPF_JEQ | BPF_K: pc += a == i->k ? i->jt : i->jf; break;
        case BPF_JMP | BPF_JGT | BPF_K: pc += a > i->k ? i->jt : i->jf; break;
        case BPF_JMP | BPF_JGE | BPF_K: pc += a >= i->k ? i->jt : i->jf; break;
        case BPF_JMP | BPF_JSET | BPF_K: pc += (a & i->k) ? i->jt : i->jf; break;
        case BPF_ALU | BPF_AND | BPF_K: a &= i->k; break;
        case BPF_RET | BPF_K: return (i->k & SECCOMP_RET_ACTION_FULL) == SECCOMP_RET_ALLOW;
        default: return 0;
        }
    }
    return 0;
#endif
}

/// Whether the workload may install its filter before it waits on the gate: every call it
/// makes from then until its program runs (the gate's read and close, the listener's hand-off
/// and a failure's report, the signal mask, execve or execveat, exit) passes the filter whatever its
/// arguments, so none of them can wait for an answer from a supervisor that is not yet
/// listening. Then the filter's compilation (the JIT) runs while pid 1 executes cordon-init
/// instead of after it.
static int seccomp_before_gate(const struct cs_plan *p) {
    if (p->seccomp_len == 0) return 0;
    const struct sock_filter *f = (const struct sock_filter *)p->seccomp_filter;
    const unsigned calls[] = { SYS_read, SYS_close, SYS_sendmsg, SYS_rt_sigprocmask, SYS_exit_group,
                               p->workload_is_init ? SYS_execveat : SYS_execve };
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
        if (!cs_filter_allows(f, p->seccomp_len, calls[i])) return 0;
    return 1;
}

/// Installs the seccomp filter and hands its listener to the supervisor.
static void install_seccomp(const struct cs_plan *p) {
    if (p->seccomp_len == 0) return;
    struct sock_fprog prog = { .len = (unsigned short)p->seccomp_len,
                               .filter = (struct sock_filter *)p->seccomp_filter };
    long fd = sys3(SYS_seccomp, SECCOMP_SET_MODE_FILTER, p->seccomp_flags, &prog);
    CHECK(fd, CS_STEP_SECCOMP, 0);
    // Our copy of the listener is close-on-exec (the kernel makes it so): no close here, which
    // a profile refusing close would turn into a wait for the listener's own answer.
    if (p->seccomp_flags & SECCOMP_FILTER_FLAG_NEW_LISTENER)
        CHECK(send_fd(p->chan_fd, (int)fd), CS_STEP_SEND_LISTENER, 0);
}

/// The workload's program (its filter installed: every call before it is one the filter may
/// refuse, the gate's read among them, unless seccomp_before_gate said otherwise).
__attribute__((noreturn)) static void finish_workload(const struct cs_plan *p) {
    set_sigmask(0);
    if (p->workload_is_init)
        fail(p, CS_STEP_EXEC, 0, sys5(SYS_execveat, p->init_exec_fd, "", p->argv, p->envp, AT_EMPTY_PATH));
    exec_workload(p);
    cs_exit(127);
}

/// What the workload needs before it may start: the plan and the two ends of the gate pipe.
struct gated_workload { const struct cs_plan *plan; int gate[2]; };

/// The workload sets itself up while pid 1 executes cordon-init, then waits until cordon-init
/// has replaced pid 1 and set itself up (it writes one byte to the gate): no workload
/// instruction runs while pid 1 still holds or shares the supervisor's memory. End of file
/// without that byte means init never ran: give up.
__attribute__((noreturn)) static void run_gated_workload(const struct gated_workload *w) {
    const struct cs_plan *p = w->plan;
    int gate = w->gate[0];
    cs_close(w->gate[1]);
    // Out of the way of the standard streams set up next (the pipe may have taken 0, 1 or 2).
    if (gate < 3) {
        long moved = sys3(SYS_fcntl, gate, F_DUPFD_CLOEXEC, 3);
        if (moved < 0) cs_exit(125);
        cs_close(gate);
        gate = (int)moved;
    }
    prepare_workload(p);
    int early = seccomp_before_gate(p);
    if (early) install_seccomp(p);
    char c;
    long n;
    do { n = sys3(SYS_read, gate, &c, 1); } while (n == -EINTR);
    if (n != 1) cs_exit(125);
    cs_close(gate);
    if (!early) install_seccomp(p);
    finish_workload(p);
}

static int gated_workload_main(void *w) { run_gated_workload((const struct gated_workload *)w); }

// ---------------------------------------------------------------------------------------------
// Init: pid 1 of the sandbox

/// Replaces init with cordon-init (see Sources/cordon-init): from here on pid 1 is a small static
/// program with nothing of the supervisor's memory. The status pipe survives the exec; the
/// channel and the program's descriptor close with it. `gate` is the write end of the pipe the
/// workload waits on: it survives the exec too, and cordon-init writes to it once it has set
/// itself up, so no workload instruction runs before pid 1 is cordon-init.
__attribute__((noreturn)) static void exec_init(const struct cs_plan *p, long workload, int gate) {
    int keep[] = { p->status_fd, p->chan_fd, p->init_exec_fd, gate };
    close_all_but(keep, 4);
    long r = sys3(SYS_fcntl, p->status_fd, F_SETFD, 0);
    if (r >= 0) r = sys3(SYS_fcntl, gate, F_SETFD, 0);
    if (r >= 0) {
        char pid_var[48], fd_var[48], gate_var[48];
        with_number(pid_var, "CORDON_WORKLOAD_PID=", workload);
        with_number(fd_var, "CORDON_STATUS_FD=", p->status_fd);
        with_number(gate_var, "CORDON_GATE_FD=", gate);
        char *const argv[] = { "cordon-init", NULL };
        char session_var[] = "CORDON_SESSION=1";
        char *const envp[] = { pid_var, fd_var, gate_var, p->workload_is_init ? session_var : NULL, NULL };
        r = sys5(SYS_execveat, p->init_exec_fd, "", argv, envp, AT_EMPTY_PATH);
    }
    // No init: take the workload down with us (everything in the pid namespace dies with pid 1).
    report(p, CS_STEP_INIT_EXEC, 0, (int)-r);
    cs_exit(125);
}

__attribute__((noreturn)) static void run_child(const struct cs_plan *p) {
    // Signal handlers belong to the Swift parent: reset them all (the mask stays full, set by
    // the parent around clone, so nothing is delivered meanwhile).
    reset_signal_handlers();
    // Nothing of the supervisor's but what the plan names: not the other end of the sync pipe
    // (our lifeline), not the guardian's pipe, not the uid-range lock, not the relay ends.
    int keep[8 + CS_MAX_ATTACH] = { p->sync_fd, p->chan_fd, p->status_fd, p->stdio[0], p->stdio[1], p->stdio[2],
                                    p->landlock_fd, p->init_exec_fd };
    int kept = 8;
    for (size_t i = 0; i < p->mount_count && kept < 8 + CS_MAX_ATTACH; i++)
        if (p->mounts[i].kind == CS_MOUNT_ATTACH) keep[kept++] = p->mounts[i].fd;
    close_all_but(keep, kept);
    // If the supervisor dies, so does the sandbox. Armed now and again after the id change,
    // which clears it.
    CHECK(set_pdeathsig(), CS_STEP_INIT_SIGNALS, 0);

    // Wait until the parent has written our uid/gid maps. EOF means the parent gave up or died.
    char go;
    long n;
    do { n = sys3(SYS_read, p->sync_fd, &go, 1); } while (n == -EINTR);
    if (n != 1) cs_exit(125);

    // Become root of the new user namespace (a per-sandbox unprivileged host uid).
    CHECK(set_gid(0), CS_STEP_ID_MAP, 0);
    CHECK(set_uid(0), CS_STEP_ID_MAP, 1);

    // Re-arm the parent-death signal the id change cleared (init's death empties the pid
    // namespace). The parent keeps the sync pipe's write end open for the sandbox's whole life
    // and we hold no copy of it, so a hang-up now means it died while we were unarmed.
    CHECK(set_pdeathsig(), CS_STEP_INIT_SIGNALS, 0);
    struct pollfd lifeline = { .fd = p->sync_fd, .events = POLLIN, .revents = 0 };
    struct timespec now = { 0, 0 };
    if (sys5(SYS_ppoll, &lifeline, 1, &now, NULL, 8) > 0 && (lifeline.revents & (POLLHUP | POLLERR))) cs_exit(125);
    cs_close(p->sync_fd);
    CHECK(set_groups_none(), CS_STEP_SETGROUPS, 0);
    // A new session: no controlling terminal, so no TIOCSTI into the caller's terminal.
    CHECK(sys0(SYS_setsid), CS_STEP_SETSID, 0);

    // The root gets the modes the plan names, not those narrowed by the umask we inherited (a
    // caller's 077 made /etc unreadable to the workload; so did another supervisor thread's
    // umask at our clone, the umask being the process's). The workload gets the caller's back.
    long caller_umask = sys1(SYS_umask, 0);
    build_root(p);
    sys1(SYS_umask, caller_umask);
    if (p->hostname) CHECK(sys2(SYS_sethostname, p->hostname, cs_strlen(p->hostname)), CS_STEP_HOSTNAME, 0);
    if (p->loopback_up) bring_up_loopback(p);

    // Join the sandbox's cgroup before anything runs in it: everything init starts inherits the
    // limits. cgroup v2 placed us there at clone; on v1 the parent creates it meanwhile and
    // sends its "tasks" files, opened as root (the kernel checks the opener's credentials).
    if (p->cgroup_task_files > 0) {
        int files[CS_MAX_CGROUP_FILES];
        CHECK(receive_fds(p->chan_fd, files, p->cgroup_task_files), CS_STEP_CGROUP, 0);
        for (size_t i = 0; i < p->cgroup_task_files; i++) {
            CHECK(sys3(SYS_write, files[i], "0", 1), CS_STEP_CGROUP, (int)i);
            cs_close(files[i]);
        }
    }
    // The cgroup namespace is rooted at the sandbox's cgroup, so /proc/self/cgroup says "/".
    if (p->new_cgroup_ns) CHECK(sys1(SYS_unshare, CLONE_NEWCGROUP), CS_STEP_CGROUP_NS, 0);

    // The workload waits on a gate until cordon-init runs here (see run_gated_workload): the
    // order is by construction, in both modes. `w` lives on this stack, in memory the workload
    // shares or copies; this frame never returns (its next act is execve, which leaves the old
    // memory as it is), so the workload may read it whenever it runs.
    struct gated_workload w = { .plan = p, .gate = { -1, -1 } };
    CHECK(sys2(SYS_pipe2, w.gate, O_CLOEXEC), CS_STEP_FORK, 0);
    long pid;
#if CS_CAN_SHARE_MEMORY
    if (p->share_memory) {
        // The workload runs in this memory (the supervisor's), on a stack of its own below
        // ours. Not CLONE_VFORK: we must execute cordon-init before it may go on.
        struct clone_args args;
        memset(&args, 0, sizeof args);
        args.flags = CLONE_VM;
        args.exit_signal = SIGCHLD;
        args.stack = (uint64_t)(uintptr_t)p->workload_stack;
        args.stack_size = p->workload_stack_size;
        pid = cs_clone3_run(&args, sizeof args, gated_workload_main, &w);
    } else
#endif
    {
        // A copy of memory (fork-like: raw clone with a NULL stack).
        pid = sys5(SYS_clone, SIGCHLD, 0, 0, 0, 0);
        if (pid == 0) run_gated_workload(&w);
    }
    cs_close(w.gate[0]);
    CHECK(pid, CS_STEP_FORK, 0);
    exec_init(p, pid, w.gate[1]);
}

static int child_main(void *plan) { run_child((const struct cs_plan *)plan); }

// ---------------------------------------------------------------------------------------------
// The parent's side

#define CS_STACK (256 * 1024)
#define CS_REGION (2 * CS_STACK)

pid_t cs_spawn(const struct cs_plan *plan, int *pidfd, void **region) {
    int fd = -1;
    *region = NULL;
    // Block every signal across clone: the child must not run a Swift signal handler before it
    // has reset them. It keeps them blocked (init waits for them with sigwaitinfo); the workload
    // unblocks them right before execve.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    long pid;
#if CS_CAN_SHARE_MEMORY
    if (plan->share_memory) {
        // Two stacks (init's above the workload's, a guard page under each) and a copy of the
        // plan struct at the top: the caller's copy lives on its stack, not ours.
        char *mem = mmap(NULL, CS_REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (mem == MAP_FAILED) { int e = errno; pthread_sigmask(SIG_SETMASK, &old, NULL); errno = e; return -1; }
        (void)mprotect(mem, 4096, PROT_NONE);
        (void)mprotect(mem + CS_STACK, 4096, PROT_NONE);
        struct cs_plan *copy = (struct cs_plan *)(mem + CS_REGION - ((sizeof *copy + 63) & ~(size_t)63));
        *copy = *plan;
        copy->workload_stack = mem + 4096;
        copy->workload_stack_size = CS_STACK - 4096;
        // The child reads the plan and runs with the caller's thread pointer; this memory must not
        // be readable by anyone but root while it is shared (commit_creds in the child clears
        // dumpability anyway; this makes it explicit and permanent). Once per process.
        static int made_undumpable;
        if (!__atomic_exchange_n(&made_undumpable, 1, __ATOMIC_RELAXED)) (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        struct clone_args args;
        memset(&args, 0, sizeof args);
        args.flags = (uint64_t)(unsigned)plan->clone_flags | CLONE_VM | CLONE_PIDFD
                     | (plan->cgroup_fd >= 0 ? CLONE_INTO_CGROUP : 0);
        args.pidfd = (uint64_t)(uintptr_t)&fd;
        args.exit_signal = SIGCHLD;
        args.stack = (uint64_t)(uintptr_t)(mem + CS_STACK + 4096);
        args.stack_size = (uint64_t)((char *)copy - (mem + CS_STACK + 4096)) & ~(uint64_t)63;
        args.cgroup = plan->cgroup_fd >= 0 ? (uint64_t)plan->cgroup_fd : 0;
        pid = cs_clone3_run(&args, sizeof args, child_main, copy);
        if (pid < 0) { munmap(mem, CS_REGION); errno = (int)-pid; pid = -1; }
        else *region = mem;
    } else
#endif
    if (plan->cgroup_fd >= 0) {
        // cgroup v2: born in the sandbox's cgroup, no migration at all.
        struct clone_args args;
        memset(&args, 0, sizeof args);
        args.flags = (uint64_t)(unsigned)plan->clone_flags | CLONE_PIDFD | CLONE_INTO_CGROUP;
        args.pidfd = (uint64_t)(uintptr_t)&fd;
        args.exit_signal = SIGCHLD;
        args.cgroup = (uint64_t)plan->cgroup_fd;
        pid = syscall(SYS_clone3, &args, sizeof args);
        if (pid == 0) run_child(plan);
    } else {
        // Raw clone with a NULL stack behaves like fork: the child continues on a copy of this
        // stack. glibc's clone() wrapper would want a separate stack and a function.
        pid = syscall(SYS_clone, (unsigned long)plan->clone_flags | CLONE_PIDFD | SIGCHLD, 0, &fd, 0, 0);
        if (pid == 0) run_child(plan);
    }
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) { errno = saved; return -1; }
    *pidfd = fd;
    return (pid_t)pid;
}

void cs_spawn_release(void *region) {
    if (region) munmap(region, CS_REGION);
}

// ---------------------------------------------------------------------------------------------
// Learning mode

__attribute__((noreturn)) static void run_learner(const struct cs_plan *p) {
    int keep[4] = { 0, 1, 2, p->chan_fd };
    close_all_but(keep, 4);
    reset_signal_handlers();
    CHECK(sys5(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), CS_STEP_NO_NEW_PRIVS, 0);
    struct sock_fprog prog = { .len = (unsigned short)p->seccomp_len,
                               .filter = (struct sock_filter *)p->seccomp_filter };
    long fd = sys3(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    CHECK(fd, CS_STEP_SECCOMP, 0);
    // The filter lets sendmsg through, so the hand-off cannot wait on a listener nobody holds
    // yet; every later call (this close included) waits for the supervisor's answer.
    CHECK(send_fd(p->chan_fd, (int)fd), CS_STEP_SEND_LISTENER, 0);
    cs_close((int)fd);
    set_sigmask(0);
    exec_workload(p);
    cs_exit(127);
}

pid_t cs_learn_spawn(const struct cs_plan *p, int *pidfd) {
    int fd = -1;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    long pid = syscall(SYS_clone, (unsigned long)CLONE_PIDFD | SIGCHLD, 0, &fd, 0, 0);
    if (pid == 0) run_learner(p);
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) { errno = saved; return -1; }
    *pidfd = fd;
    return (pid_t)pid;
}

// ---------------------------------------------------------------------------------------------
// Idmapped mounts: the user namespace that carries the mapping

struct idmap_child { int pipe[2]; };

/// Waits for the parent to close the pipe (the maps are written and the namespace opened), then
/// ends. Raw calls only: with shared memory it runs on the caller's thread pointer.
static int idmap_child_main(void *arg) {
    const struct idmap_child *c = arg;
    cs_close(c->pipe[1]);
    char b;
    long n;
    do { n = sys3(SYS_read, c->pipe[0], &b, 1); } while (n == -EINTR);
    return 0;
}

static long write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    long r = n == (ssize_t)len ? 0 : (n < 0 ? -errno : -EIO);
    close(fd);
    return r;
}

long cs_idmap_userns(const char *uid_map, const char *gid_map) {
    struct idmap_child c;
    if (pipe2(c.pipe, O_CLOEXEC) < 0) return -errno;
    int pidfd = -1;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    long pid;
    char *stack = NULL;
#if CS_CAN_SHARE_MEMORY
    // A small stack in our memory: no page tables copied for a child that only waits.
    stack = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) { int e = errno; pthread_sigmask(SIG_SETMASK, &old, NULL); close(c.pipe[0]); close(c.pipe[1]); return -e; }
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_VM | CLONE_NEWUSER | CLONE_PIDFD;
    args.pidfd = (uint64_t)(uintptr_t)&pidfd;
    args.exit_signal = 0;  // reaped through the pidfd (__WALL), never signalled
    args.stack = (uint64_t)(uintptr_t)stack;
    args.stack_size = 65536;
    pid = cs_clone3_run(&args, sizeof args, idmap_child_main, &c);
#else
    pid = syscall(SYS_clone, (unsigned long)(CLONE_NEWUSER | CLONE_PIDFD), 0, &pidfd, 0, 0);
    if (pid == 0) { idmap_child_main(&c); _exit(0); }
    if (pid < 0) pid = -errno;
#endif
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(c.pipe[0]);
    long result = pid;
    if (pid > 0) {
        char dir[48], path[64];
        with_number(dir, "/proc/", pid);
        join(path, dir, "/uid_map");
        result = write_file(path, uid_map);
        if (result == 0) {
            join(path, dir, "/gid_map");
            result = write_file(path, gid_map);
        }
        if (result == 0) {
            join(path, dir, "/ns/user");
            result = open(path, O_RDONLY | O_CLOEXEC);
            if (result < 0) result = -errno;
        }
    }
    close(c.pipe[1]);  // the child's end of waiting
    if (pid > 0) {
        siginfo_t info;
        while (waitid(P_PIDFD, (id_t)pidfd, &info, WEXITED | __WALL) < 0 && errno == EINTR) {}
        close(pidfd);
    }
    if (stack) munmap(stack, 65536);
    return result;
}
