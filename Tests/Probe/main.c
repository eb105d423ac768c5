// cordon-probe: attempts one operation from inside a sandbox and prints what happened, so that the
// integration tests can tell "refused" from "allowed". Calls are made with arguments that fail
// harmlessly when allowed (EFAULT, EBADF, EINVAL…), bubblewrap's try-syscall technique; the tests
// also check the sandbox's denial log, which tells a seccomp refusal from a missing capability.
//
// Output: one line "OP: ok" or "OP: errno NAME". Exit 0 unless the arguments are wrong.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static const char *errno_name(int e) {
    switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case ENOTDIR: return "ENOTDIR";
    case EINVAL: return "EINVAL";
    case ENOTTY: return "ENOTTY";
    case EROFS: return "EROFS";
    case ENOSYS: return "ENOSYS";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
    case ESOCKTNOSUPPORT: return "ESOCKTNOSUPPORT";
    case ENETUNREACH: return "ENETUNREACH";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ENXIO: return "ENXIO";
    case EXDEV: return "EXDEV";
    case EMFILE: return "EMFILE";
    case EFBIG: return "EFBIG";
    case ENOSPC: return "ENOSPC";
    default: return "EOTHER";
    }
}

static int result(const char *op, long r) {
    if (r < 0) printf("%s: errno %s\n", op, errno_name(errno));
    else printf("%s: ok\n", op);
    fflush(stdout);
    return 0;
}

static long try_clone(unsigned long flags) {
    long pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid((pid_t)pid, NULL, 0);
    return pid;
}

static long try_socket(const char *family, const char *type) {
    int f = !strcmp(family, "unix") ? AF_UNIX : !strcmp(family, "inet") ? AF_INET
          : !strcmp(family, "inet6") ? AF_INET6 : !strcmp(family, "packet") ? AF_PACKET
          : !strcmp(family, "netlink") ? AF_NETLINK : !strcmp(family, "vsock") ? AF_VSOCK : -1;
    int t = !strcmp(type, "stream") ? SOCK_STREAM : !strcmp(type, "dgram") ? SOCK_DGRAM
          : !strcmp(type, "raw") ? SOCK_RAW : !strcmp(type, "seqpacket") ? SOCK_SEQPACKET : -1;
    if (f < 0 || t < 0) { fprintf(stderr, "bad socket family/type\n"); exit(2); }
    return socket(f, t | SOCK_CLOEXEC, 0);
}

static long try_i386_getpid(void) {
    long r;
    // The 32-bit syscall entry (int 0x80), eax = 20 (getpid on i386).
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
    return r;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: cordon-probe OP [ARGS]\n"); return 2; }
    const char *op = argv[1];
    const char *a = argc > 2 ? argv[2] : "";
    const char *b = argc > 3 ? argv[3] : "";

    if (!strcmp(op, "io_uring_setup")) return result(op, syscall(SYS_io_uring_setup, 1, NULL));
    if (!strcmp(op, "clone3")) return result(op, syscall(SYS_clone3, NULL, 0));
    if (!strcmp(op, "clone-newuser")) return result(op, try_clone(CLONE_NEWUSER));
    if (!strcmp(op, "clone-newns")) return result(op, try_clone(CLONE_NEWNS));
    if (!strcmp(op, "clone-newnet")) return result(op, try_clone(CLONE_NEWNET));
    if (!strcmp(op, "clone-plain")) return result(op, try_clone(0));
    if (!strcmp(op, "unshare-user")) return result(op, unshare(CLONE_NEWUSER));
    if (!strcmp(op, "unshare-mount")) return result(op, unshare(CLONE_NEWNS));
    if (!strcmp(op, "unshare-net")) return result(op, unshare(CLONE_NEWNET));
    if (!strcmp(op, "unshare-files")) return result(op, unshare(CLONE_FILES));
    if (!strcmp(op, "setns")) return result(op, setns(-1, 0));
    if (!strcmp(op, "mount")) return result(op, mount("none", "/tmp", "tmpfs", 0, NULL));
    if (!strcmp(op, "umount")) return result(op, umount2("/proc", MNT_DETACH));
    if (!strcmp(op, "fsopen")) return result(op, syscall(SYS_fsopen, "tmpfs", 0));
    if (!strcmp(op, "open_tree")) return result(op, syscall(SYS_open_tree, -1, "/", 0));
    if (!strcmp(op, "move_mount")) return result(op, syscall(SYS_move_mount, -1, "", -1, "", 0));
    if (!strcmp(op, "pivot_root")) return result(op, syscall(SYS_pivot_root, "/tmp", "/tmp"));
    if (!strcmp(op, "chroot")) return result(op, chroot("/tmp"));
    if (!strcmp(op, "ptrace-traceme")) return result(op, ptrace(PTRACE_TRACEME, 0, NULL, NULL));
    if (!strcmp(op, "ptrace-attach")) return result(op, ptrace(PTRACE_ATTACH, (pid_t)atoi(a), NULL, NULL));
    if (!strcmp(op, "process_vm_readv")) return result(op, syscall(SYS_process_vm_readv, getppid(), NULL, 0, NULL, 0, 0));
    if (!strcmp(op, "bpf")) return result(op, syscall(SYS_bpf, 0, NULL, 0));
    if (!strcmp(op, "perf_event_open")) return result(op, syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    if (!strcmp(op, "userfaultfd")) return result(op, syscall(SYS_userfaultfd, 0));
    if (!strcmp(op, "keyctl")) return result(op, syscall(SYS_keyctl, 0, 0, 0, 0, 0));
    if (!strcmp(op, "add_key")) return result(op, syscall(SYS_add_key, NULL, NULL, NULL, 0, 0));
    if (!strcmp(op, "request_key")) return result(op, syscall(SYS_request_key, NULL, NULL, NULL, 0));
    if (!strcmp(op, "kexec_load")) return result(op, syscall(SYS_kexec_load, 0, 0, NULL, 0));
    if (!strcmp(op, "kexec_file_load")) return result(op, syscall(SYS_kexec_file_load, -1, -1, 0, NULL, 0));
    if (!strcmp(op, "init_module")) return result(op, syscall(SYS_init_module, NULL, 0, ""));
    if (!strcmp(op, "finit_module")) return result(op, syscall(SYS_finit_module, -1, "", 0));
    if (!strcmp(op, "delete_module")) return result(op, syscall(SYS_delete_module, "cordon_none", 0));
    if (!strcmp(op, "open_by_handle_at")) return result(op, syscall(SYS_open_by_handle_at, -1, NULL, 0));
    if (!strcmp(op, "tiocsti")) return result(op, syscall(SYS_ioctl, 0, (unsigned long)TIOCSTI, "x"));
    if (!strcmp(op, "tiocsti-high-bits"))
        return result(op, syscall(SYS_ioctl, 0, 0xffffffff00000000UL | (unsigned long)TIOCSTI, "x"));
    if (!strcmp(op, "tioclinux")) return result(op, syscall(SYS_ioctl, 0, (unsigned long)TIOCLINUX, "x"));
    if (!strcmp(op, "ioctl-fionread")) { int n; return result(op, ioctl(0, FIONREAD, &n)); }
    if (!strcmp(op, "socket")) return result(op, try_socket(a, b));
    if (!strcmp(op, "x32-getpid")) return result(op, syscall(0x40000000L | SYS_getpid));
    if (!strcmp(op, "i386-getpid")) { long r = try_i386_getpid(); if (r < 0) { errno = (int)-r; r = -1; } return result(op, r); }
    if (!strcmp(op, "kill")) return result(op, kill((pid_t)atoi(a), 0));
    if (!strcmp(op, "setuid")) return result(op, setuid((uid_t)atoi(a)));
    if (!strcmp(op, "mknod")) return result(op, mknod("/tmp/cordon-dev", S_IFCHR | 0600, makedev(1, 3)));
    if (!strcmp(op, "write")) {
        int fd = open(a, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) close(fd);
        return result(op, fd);
    }
    if (!strcmp(op, "read")) {
        int fd = open(a, O_RDONLY | O_CLOEXEC);
        char buf[1];
        long r = fd;
        if (fd >= 0) { r = read(fd, buf, 1); close(fd); }
        return result(op, r);
    }
    if (!strcmp(op, "exec")) { execl(a, a, (char *)NULL); return result(op, -1); }
    if (!strcmp(op, "connect")) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(b)) };
        inet_pton(AF_INET, a, &sa.sin_addr);
        return result(op, connect(s, (struct sockaddr *)&sa, sizeof sa));
    }
    if (!strcmp(op, "fds")) {
        // Lists open descriptors above 2 (there should be none).
        int any = 0;
        for (int fd = 3; fd < 4096; fd++) {
            if (fcntl(fd, F_GETFD) >= 0) { printf("fd %d open\n", fd); any = 1; }
        }
        if (!any) printf("fds: none\n");
        return 0;
    }
    fprintf(stderr, "cordon-probe: unknown op %s\n", op);
    return 2;
}
