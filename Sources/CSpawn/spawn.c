// The sandbox child: everything between clone() and execve(). See cspawn.h for why this is C.
//
// Rules for this file: only raw system calls and async-signal-safe libc functions; no malloc, no
// stdio, no libseccomp/libcap; every failure is reported as (step, index, errno) and ends in
// _exit. The sequence below is a flat checklist; comments say where the order matters.
#define _GNU_SOURCE
#include "cspawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <linux/capability.h>
#include <linux/landlock.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/securebits.h>
#include <linux/filter.h>
#include <linux/openat2.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define CS_PATH_MAX 4096

// ---------------------------------------------------------------------------------------------
// Reporting

static void report(const struct cs_plan *p, int step, int index, int err) {
    struct cs_report r = { .step = step, .index = index, .err = err, .has_fd = 0 };
    // SOCK_SEQPACKET: one record per send; a failed send has nobody to tell.
    (void)send(p->chan_fd, &r, sizeof r, MSG_NOSIGNAL);
}

__attribute__((noreturn)) static void fail(const struct cs_plan *p, int step, int index) {
    report(p, step, index, errno);
    _exit(125);
}

#define CHECK(expr, step, index) do { if ((expr) < 0) fail(p, (step), (index)); } while (0)

static int send_fd(int chan, int fd) {
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
    return sendmsg(chan, &msg, MSG_NOSIGNAL) < 0 ? -1 : 0;
}

// ---------------------------------------------------------------------------------------------
// Small async-signal-safe helpers

static size_t cs_strlen(const char *s) { size_t n = 0; while (s[n]) n++; return n; }

/// buf = a + b; returns -1 (ENAMETOOLONG) when it does not fit.
static int join(char *buf, const char *a, const char *b) {
    size_t la = cs_strlen(a), lb = cs_strlen(b);
    if (la + lb + 1 > CS_PATH_MAX) { errno = ENAMETOOLONG; return -1; }
    memcpy(buf, a, la);
    memcpy(buf + la, b, lb + 1);
    return 0;
}

static int write_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) { if (errno == EINTR) continue; return -1; }
        data += n; len -= (size_t)n;
    }
    return 0;
}

static int mkdir_ok(const char *path, unsigned mode) {
    if (mkdir(path, mode) < 0 && errno != EEXIST) return -1;
    return 0;
}

static int touch(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0444);
    if (fd < 0) return errno == EEXIST ? 0 : -1;
    close(fd);
    return 0;
}

/// Mount flags the kernel locks on a mount that came from a more privileged namespace: a
/// remount inside our user namespace must repeat them or it fails with EPERM.
static unsigned long locked_flags(const char *path) {
    struct statvfs s;
    if (statvfs(path, &s) < 0) return 0;
    unsigned long f = 0;
    if (s.f_flag & ST_NOSUID) f |= MS_NOSUID;
    if (s.f_flag & ST_NODEV) f |= MS_NODEV;
    if (s.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
    if (s.f_flag & ST_RDONLY) f |= MS_RDONLY;
    if (s.f_flag & ST_NOATIME) f |= MS_NOATIME;
    if (s.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
    if (s.f_flag & ST_RELATIME) f |= MS_RELATIME;
    return f;
}

static int remount_bind(const char *path, unsigned long flags) {
    return mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | flags | locked_flags(path), NULL);
}

// ---------------------------------------------------------------------------------------------
// Mount plan

static int do_mount_op(const struct cs_plan *p, const struct cs_mount_op *op, char *path) {
    if (join(path, p->root_mountpoint, op->target) < 0) return -1;
    unsigned long extra = MS_NOSUID | MS_NODEV | ((op->flags & CS_MF_NOEXEC) ? MS_NOEXEC : 0);
    switch (op->kind) {
    case CS_MOUNT_DIR:
        if (mkdir_ok(path, op->mode) < 0) return -1;
        if ((op->flags & CS_MF_CHOWN) && chown(path, p->uid, p->gid) < 0) return -1;
        return 0;
    case CS_MOUNT_BIND: {
        // Open the source without following any symlink and mount from the descriptor, so a
        // path the workload's owner controls cannot be swapped between check and mount. The
        // open happens here, in our mount namespace: a descriptor opened by the parent would
        // name a mount of the host namespace, which bind refuses.
        struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_NO_SYMLINKS };
        int src_fd = (int)syscall(SYS_openat2, AT_FDCWD, op->data, &how, sizeof how);
        if (src_fd < 0 && errno == ENOSYS) src_fd = open(op->data, O_PATH | O_CLOEXEC | O_NOFOLLOW);
        if (src_fd < 0) return (errno == ENOENT && (op->flags & CS_MF_OPTIONAL)) ? 0 : -1;
        if (op->flags & CS_MF_ISDIR) { if (mkdir_ok(path, 0755) < 0) return -1; }
        else if (touch(path) < 0) return -1;
        char src[32] = "/proc/self/fd/";
        char digits[16];
        int fd = src_fd, n = 0;
        do { digits[n++] = (char)('0' + fd % 10); fd /= 10; } while (fd > 0);
        size_t at = cs_strlen(src);
        while (n > 0) src[at++] = digits[--n];
        src[at] = 0;
        int r = mount(src, path, NULL, MS_BIND, NULL);
        close(src_fd);
        if (r < 0) return -1;
        // A fresh bind inherits the source's flags; the remount applies ours.
        unsigned long flags = extra;
        if (op->flags & CS_MF_READONLY) flags |= MS_RDONLY;
        if (op->flags & CS_MF_DEVICE) flags &= ~(unsigned long)MS_NODEV;
        return remount_bind(path, flags);
    }
    case CS_MOUNT_TMPFS:
        if (mkdir_ok(path, 0755) < 0) return -1;
        if (mount("tmpfs", path, "tmpfs", extra, op->data) < 0) return -1;
        if ((op->flags & CS_MF_CHOWN) && chown(path, p->uid, p->gid) < 0) return -1;
        return 0;
    case CS_MOUNT_SYMLINK:
        return symlink(op->data, path) < 0 && errno != EEXIST ? -1 : 0;
    case CS_MOUNT_FILE: {
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, op->mode);
        if (fd < 0) return -1;
        int r = write_all(fd, op->data, op->data_len);
        close(fd);
        return r;
    }
    case CS_MOUNT_PROC:
        if (mkdir_ok(path, 0555) < 0) return -1;
        return mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    case CS_MOUNT_MASK: {
        struct stat st;
        if (lstat(path, &st) < 0) return (errno == ENOENT && (op->flags & CS_MF_OPTIONAL)) ? 0 : -1;
        if (S_ISDIR(st.st_mode))
            return mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                         "size=0,mode=0555");
        char null_path[CS_PATH_MAX];
        if (join(null_path, p->root_mountpoint, "/dev/null") < 0) return -1;
        return mount(null_path, path, NULL, MS_BIND, NULL);
    }
    case CS_MOUNT_READONLY: {
        struct stat st;
        if (lstat(path, &st) < 0) return (errno == ENOENT && (op->flags & CS_MF_OPTIONAL)) ? 0 : -1;
        if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0) return -1;
        return remount_bind(path, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
    }
    case CS_MOUNT_DEVPTS:
        if (mkdir_ok(path, 0755) < 0) return -1;
        return mount("devpts", path, "devpts", MS_NOSUID | MS_NOEXEC,
                     "newinstance,ptmxmode=0666,mode=0620");
    default:
        errno = EINVAL;
        return -1;
    }
}

static void build_root(const struct cs_plan *p) {
    char path[CS_PATH_MAX];
    // Nothing we mount may propagate back to the host.
    CHECK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), CS_STEP_MOUNT_PRIVATE, 0);
    CHECK(mount("tmpfs", p->root_mountpoint, "tmpfs", MS_NOSUID | MS_NODEV, p->root_options),
          CS_STEP_ROOT_TMPFS, 0);
    for (size_t i = 0; i < p->mount_count; i++)
        CHECK(do_mount_op(p, &p->mounts[i], path), CS_STEP_MOUNT, (int)i);

    // pivot_root(".", ".") stacks the old root under the new one; detaching it leaves only the
    // new tree reachable (the pivot_root(2) idiom that needs no put_old directory).
    CHECK(chdir(p->root_mountpoint), CS_STEP_PIVOT_ROOT, 0);
    CHECK(syscall(SYS_pivot_root, ".", "."), CS_STEP_PIVOT_ROOT, 1);
    CHECK(umount2(".", MNT_DETACH), CS_STEP_PIVOT_ROOT, 2);
    CHECK(chdir("/"), CS_STEP_PIVOT_ROOT, 3);
    if (p->root_readonly)
        CHECK(mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL),
              CS_STEP_ROOT_READONLY, 0);
}

static void bring_up_loopback(const struct cs_plan *p) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(s, CS_STEP_LOOPBACK, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, "lo", 3);
    CHECK(ioctl(s, SIOCGIFFLAGS, &ifr), CS_STEP_LOOPBACK, 1);
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    CHECK(ioctl(s, SIOCSIFFLAGS, &ifr), CS_STEP_LOOPBACK, 2);
    close(s);
}

// ---------------------------------------------------------------------------------------------
// The workload: identity, privileges, confinement, exec

// The id changes are raw syscalls: glibc's wrappers broadcast the change to every thread of the
// process (its "setxid" machinery, with locks), and after a raw clone of a multi-threaded parent
// the child has one thread but glibc's bookkeeping still lists the parent's.
static int set_groups_none(void) { return (int)syscall(SYS_setgroups, 0, NULL); }
static int set_gid(gid_t g) { return (int)syscall(SYS_setresgid, g, g, g); }
static int set_uid(uid_t u) { return (int)syscall(SYS_setresuid, u, u, u); }

/// Closes every descriptor except those in `keep` (unsorted, -1 entries ignored).
static void close_all_but(const int *keep, int n) {
    int sorted[16];
    int m = 0;
    for (int i = 0; i < n && m < 16; i++) {
        if (keep[i] < 0) continue;
        int v = keep[i], j = m++;
        while (j > 0 && sorted[j - 1] > v) { sorted[j] = sorted[j - 1]; j--; }
        sorted[j] = v;
    }
    unsigned next = 0;
    for (int i = 0; i < m; i++) {
        if ((unsigned)sorted[i] > next) syscall(SYS_close_range, next, (unsigned)sorted[i] - 1, 0U);
        next = (unsigned)sorted[i] + 1;
    }
    syscall(SYS_close_range, next, ~0U, 0U);
}

static int cap_set(uint64_t caps) {
    struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    d[0].effective = d[0].permitted = d[0].inheritable = (uint32_t)caps;
    d[1].effective = d[1].permitted = d[1].inheritable = (uint32_t)(caps >> 32);
    return (int)syscall(SYS_capset, &h, d);
}

static void setup_stdio(const struct cs_plan *p) {
    // Move the sources above 2 first so that dup2 onto 0..2 cannot clobber one still needed.
    int moved[3];
    for (int i = 0; i < 3; i++) {
        moved[i] = fcntl(p->stdio[i], F_DUPFD_CLOEXEC, 3);
        CHECK(moved[i], CS_STEP_STDIO, i);
    }
    for (int i = 0; i < 3; i++) CHECK(dup2(moved[i], i), CS_STEP_STDIO, i);
    if (p->set_ctty) {
        // Init leads the sandbox's session; the workload needs its own to take a terminal.
        CHECK(setsid(), CS_STEP_SETSID, 1);
        CHECK(ioctl(0, TIOCSCTTY, 0), CS_STEP_STDIO, 3);
    }
}

static void exec_workload(const struct cs_plan *p) {
    const char *file = p->argv[0];
    for (const char *c = file; *c; c++) {
        if (*c == '/') {
            execve(file, p->argv, p->envp);
            fail(p, CS_STEP_EXEC, 0);
        }
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
            execve(path, p->argv, p->envp);
            if (errno == EACCES) saw_eacces = 1;
            else if (errno != ENOENT && errno != ENOTDIR) fail(p, CS_STEP_EXEC, 0);
        }
        dir = *end ? end + 1 : end;
    }
    errno = saw_eacces ? EACCES : ENOENT;
    fail(p, CS_STEP_EXEC, 0);
}

__attribute__((noreturn)) static void run_workload(const struct cs_plan *p) {
    sigset_t none;
    sigemptyset(&none);

    setup_stdio(p);
    CHECK(chdir(p->cwd), CS_STEP_CHDIR, 0);
    for (size_t i = 0; i < p->rlimit_count; i++) {
        struct rlimit rl = { .rlim_cur = p->rlimits[i].soft, .rlim_max = p->rlimits[i].hard };
        CHECK(setrlimit(p->rlimits[i].resource, &rl), CS_STEP_RLIMIT, (int)i);
    }

    // Privileges. Order matters: the bounding set and securebits need CAP_SETPCAP, which the
    // uid change below takes away; setuid comes last among the id changes because after it we
    // could no longer setgid.
    for (int c = 0; c <= p->cap_last; c++) {
        if (p->keep_caps & (1ULL << c)) continue;
        CHECK(prctl(PR_CAPBSET_DROP, c, 0, 0, 0), CS_STEP_CAP_BOUNDING, c);
    }
    // A uid-0 execve gains nothing (NOROOT), and that cannot be undone (LOCKED).
    int bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED;
    if (p->keep_caps) bits |= SECBIT_KEEP_CAPS;
    CHECK(prctl(PR_SET_SECUREBITS, bits, 0, 0, 0), CS_STEP_SECUREBITS, 0);
    CHECK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), CS_STEP_AMBIENT, 0);
    CHECK(set_groups_none(), CS_STEP_SETGROUPS, 0);
    CHECK(set_gid(p->gid), CS_STEP_SETGID, 0);
    CHECK(set_uid(p->uid), CS_STEP_SETUID, 0);
    CHECK(cap_set(p->keep_caps), CS_STEP_CAPSET, 0);
    for (int c = 0; c <= p->cap_last; c++) {
        if (!(p->keep_caps & (1ULL << c))) continue;
        CHECK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0), CS_STEP_AMBIENT, c);
    }
    CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), CS_STEP_NO_NEW_PRIVS, 0);

    // Every inherited descriptor above 2 closes at execve; the channel stays usable until then.
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        for (int fd = 3; fd < 65536; fd++) {
            int fl = fcntl(fd, F_GETFD);
            if (fl >= 0) fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
        }
    }

    // Landlock mirrors the mount plan: rules are added here, on paths of the new root.
    if (p->landlock_fd >= 0) {
        for (size_t i = 0; i < p->landlock_rule_count; i++) {
            int fd = open(p->landlock_rules[i].path, O_PATH | O_CLOEXEC);
            if (fd < 0 && errno == ENOENT) continue;
            CHECK(fd, CS_STEP_LANDLOCK_RULE, (int)i);
            struct landlock_path_beneath_attr a = {
                .allowed_access = p->landlock_rules[i].access, .parent_fd = fd };
            CHECK(syscall(SYS_landlock_add_rule, p->landlock_fd, LANDLOCK_RULE_PATH_BENEATH, &a, 0),
                  CS_STEP_LANDLOCK_RULE, (int)i);
            close(fd);
        }
        CHECK(syscall(SYS_landlock_restrict_self, p->landlock_fd, 0), CS_STEP_LANDLOCK_RESTRICT, 0);
    }

    // Seccomp last: every call above is one the filter may refuse.
    if (p->seccomp_len > 0) {
        struct sock_fprog prog = { .len = (unsigned short)p->seccomp_len,
                                   .filter = (struct sock_filter *)p->seccomp_filter };
        long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, p->seccomp_flags, &prog);
        CHECK(fd, CS_STEP_SECCOMP, 0);
        if (p->seccomp_flags & SECCOMP_FILTER_FLAG_NEW_LISTENER) {
            CHECK(send_fd(p->chan_fd, (int)fd), CS_STEP_SEND_LISTENER, 0);
            close((int)fd);
        }
    }

    sigprocmask(SIG_SETMASK, &none, NULL);
    exec_workload(p);
    _exit(127);
}

// ---------------------------------------------------------------------------------------------
// Init: pid 1 of the sandbox

static const int forwarded[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH,
                                 SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU, SIGALRM, SIGPIPE };

__attribute__((noreturn)) static void run_init(const struct cs_plan *p, pid_t workload) {
    // Init keeps nothing but the status pipe, and no capability but CAP_KILL (to signal the
    // workload, which runs under another uid).
    int status_fd = p->status_fd;
    close_all_but(&status_fd, 1);
    if (p->title_area && p->title_len > sizeof "cordon-init") {
        memset(p->title_area, 0, p->title_len);
        memcpy(p->title_area, "cordon-init", sizeof "cordon-init");
    }
    (void)cap_set(1ULL << CAP_KILL);
    (void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);

    sigset_t all;
    sigfillset(&all);
    struct cs_status st;
    memset(&st, 0, sizeof st);
    int workload_done = 0;
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&all, &info);
        if (sig < 0) continue;
        if (sig == SIGCHLD) {
            for (;;) {
                int ws;
                pid_t pid = wait4(-1, &ws, WNOHANG, NULL);
                if (pid <= 0) break;
                if (pid == workload) { st.wait_status = ws; workload_done = 1; }
            }
            if (workload_done) break;
            continue;
        }
        for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
            if (forwarded[i] == sig) (void)kill(workload, sig);
    }
    // The workload is gone: nothing it started may outlive it.
    (void)kill(-1, SIGKILL);
    while (wait4(-1, NULL, 0, NULL) > 0 || errno == EINTR) {}
    struct rusage ru;
    if (getrusage(RUSAGE_CHILDREN, &ru) == 0) {
        st.utime_us = (int64_t)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec;
        st.stime_us = (int64_t)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
        st.maxrss_kb = ru.ru_maxrss;
    }
    (void)write_all(status_fd, (const char *)&st, sizeof st);
    _exit(0);
}

__attribute__((noreturn)) static void run_child(const struct cs_plan *p) {
    // Signal handlers belong to the Swift parent: reset them all (the mask stays full, set by
    // the parent around clone, so nothing is delivered meanwhile).
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP) continue;
        (void)sigaction(s, &dfl, NULL);
    }
    // Nothing of the supervisor's but what the plan names: not the other end of the sync pipe
    // (our lifeline), not the guardian's pipe, not the uid-range lock, not the relay ends.
    int keep[] = { p->sync_fd, p->chan_fd, p->status_fd, p->stdio[0], p->stdio[1], p->stdio[2], p->landlock_fd };
    close_all_but(keep, (int)(sizeof keep / sizeof keep[0]));
    // If the supervisor dies, so does the sandbox. Armed now and again after the id change,
    // which clears it.
    CHECK(prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), CS_STEP_INIT_SIGNALS, 0);

    // Join the sandbox's cgroup first, while our credentials are still the host root's (the
    // cgroup files belong to it): everything init starts inherits the limits.
    for (size_t i = 0; i < p->cgroup_task_count; i++) {
        int fd = open(p->cgroup_tasks[i], O_WRONLY | O_CLOEXEC);
        CHECK(fd, CS_STEP_CGROUP, (int)i);
        CHECK(write(fd, "0", 1), CS_STEP_CGROUP, (int)i);
        close(fd);
    }
    // The cgroup namespace is rooted at the sandbox's cgroup, so /proc/self/cgroup says "/".
    if (p->new_cgroup_ns) CHECK(unshare(CLONE_NEWCGROUP), CS_STEP_CGROUP_NS, 0);

    // Wait until the parent has written our uid/gid maps. EOF means the parent gave up or died.
    char go;
    ssize_t n;
    do { n = read(p->sync_fd, &go, 1); } while (n < 0 && errno == EINTR);
    if (n != 1) _exit(125);

    // Become root of the new user namespace (a per-sandbox unprivileged host uid).
    CHECK(set_gid(0), CS_STEP_ID_MAP, 0);
    CHECK(set_uid(0), CS_STEP_ID_MAP, 1);

    // Re-arm the parent-death signal the id change cleared (init's death empties the pid
    // namespace). The parent keeps the sync pipe's write end open for the sandbox's whole life
    // and we hold no copy of it, so a hang-up now means it died while we were unarmed.
    CHECK(prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), CS_STEP_INIT_SIGNALS, 0);
    struct pollfd lifeline = { .fd = p->sync_fd, .events = POLLIN, .revents = 0 };
    if (poll(&lifeline, 1, 0) > 0 && (lifeline.revents & (POLLHUP | POLLERR))) _exit(125);
    close(p->sync_fd);
    CHECK(set_groups_none(), CS_STEP_SETGROUPS, 0);
    // A new session: no controlling terminal, so no TIOCSTI into the caller's terminal.
    CHECK(setsid(), CS_STEP_SETSID, 0);

    build_root(p);
    if (p->hostname) CHECK(sethostname(p->hostname, cs_strlen(p->hostname)), CS_STEP_HOSTNAME, 0);
    if (p->loopback_up) bring_up_loopback(p);

    pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    CHECK(pid, CS_STEP_FORK, 0);
    if (pid == 0) run_workload(p);
    run_init(p, pid);
}

pid_t cs_spawn(const struct cs_plan *p, int *pidfd) {
    int fd = -1;
    // Block every signal across clone: the child must not run a Swift signal handler before it
    // has reset them. It keeps them blocked (init waits for them with sigwaitinfo); the workload
    // unblocks them right before execve.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    long pid;
    if (p->cgroup_fd >= 0) {
        // cgroup v2: born in the sandbox's cgroup, no migration at all.
        struct clone_args args;
        memset(&args, 0, sizeof args);
        args.flags = (uint64_t)(unsigned)p->clone_flags | CLONE_PIDFD | CLONE_INTO_CGROUP;
        args.pidfd = (uint64_t)(uintptr_t)&fd;
        args.exit_signal = SIGCHLD;
        args.cgroup = (uint64_t)p->cgroup_fd;
        pid = syscall(SYS_clone3, &args, sizeof args);
    } else {
        // Raw clone with a NULL stack behaves like fork: the child continues on a copy of this
        // stack. glibc's clone() wrapper would want a separate stack and a function.
        pid = syscall(SYS_clone, (unsigned long)p->clone_flags | CLONE_PIDFD | SIGCHLD, 0, &fd, 0, 0);
    }
    if (pid == 0) run_child(p);
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) { errno = saved; return -1; }
    *pidfd = fd;
    return (pid_t)pid;
}

// ---------------------------------------------------------------------------------------------
// Learning mode

__attribute__((noreturn)) static void run_learner(const struct cs_plan *p) {
    int keep[4] = { 0, 1, 2, p->chan_fd };
    close_all_but(keep, 4);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < 65; s++) (void)sigaction(s, &dfl, NULL);
    CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), CS_STEP_NO_NEW_PRIVS, 0);
    struct sock_fprog prog = { .len = (unsigned short)p->seccomp_len,
                               .filter = (struct sock_filter *)p->seccomp_filter };
    long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    CHECK(fd, CS_STEP_SECCOMP, 0);
    // The filter lets sendmsg through, so the hand-off cannot wait on a listener nobody holds
    // yet; every later call (this close included) waits for the supervisor's answer.
    CHECK(send_fd(p->chan_fd, (int)fd), CS_STEP_SEND_LISTENER, 0);
    close((int)fd);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    exec_workload(p);
    _exit(127);
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
