// CLinux: C shims the Swift parent needs. Each exists because Swift cannot call it directly:
// a variadic function (syscall, prctl, ioctl), a macro (CMSG_*), or a syscall glibc 2.36 does not
// wrap (pidfd_send_signal, landlock_*, seccomp).
#ifndef CLINUX_H
#define CLINUX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <signal.h>
#include <linux/seccomp.h>
#include "cegress.h"  // egress shims (a header of their own; included so the module is rebuilt with them)
#include "cloop.h"    // the event loop's epoll and eventfd, and malloc's arena bound

#ifdef __cplusplus
extern "C" {
#endif

/// landlock_create_ruleset(attr, size, 0); returns the ruleset fd or -1/errno.
int cl_landlock_create_ruleset(uint64_t handled_fs, uint64_t handled_net, uint64_t scoped);
/// The kernel's Landlock ABI version (landlock_create_ruleset with LANDLOCK_CREATE_RULESET_VERSION), or -1/errno.
int cl_landlock_abi(void);

/// statfs(path)->f_type (sys/vfs.h is not in Swift's Glibc module), or -1/errno.
long cl_fs_type(const char *path);

/// Idmapped mounts (open_tree and mount_setattr: system calls glibc 2.36 does not wrap).
/// A detached copy of the mount at `path` (open_tree OPEN_TREE_CLONE, not recursive), reached
/// without following any symlink on the way (openat2 RESOLVE_NO_SYMLINKS); O_CLOEXEC.
/// `*uid`/`*gid` receive the owner of `path` itself, `*is_dir` its kind and `*mode` its mode. The mount's fd, or
/// -1/errno.
int cl_open_tree_clone(const char *path, uint32_t *uid, uint32_t *gid, int *is_dir, uint32_t *mode);
/// The same, of the directory or file `fd` refers to (an O_PATH descriptor opened earlier, by
/// whoever was entitled to open it): the mount made is of exactly that inode, whatever its path
/// names now.
int cl_open_tree_clone_fd(int fd, uint32_t *uid, uint32_t *gid, int *is_dir, uint32_t *mode);

/// Makes the calling thread's file-system identity `uid`/`gid` with supplementary `groups`
/// (`count` of them): setgroups, setfsgid and setfsuid as raw system calls, which change this
/// thread only (glibc's setgroups changes every thread of the process). Leaving fsuid 0 drops
/// the capabilities that override file permissions from this thread's effective set. 0 when all
/// three took (read back), or -1/errno. Only for a thread that ends right after (the credentials
/// are never set back).
int cl_thread_become_fs(uint32_t uid, uint32_t gid, const uint32_t *groups, int count);
/// openat2(AT_FDCWD, path, O_PATH | O_DIRECTORY | O_CLOEXEC) resolving no symlink and no /proc
/// magic link on the way: an O_PATH descriptor of the directory, or -1/errno.
int cl_open_directory_nofollow(const char *path);
/// close(fd) on a detached thread of its own (signals blocked, a small stack): 0, or -1 when
/// no thread could be made (the caller closes it then).
int cl_close_in_background(int fd);
/// exit(status), leaving the teardown of this process's memory to a short-lived child that
/// shares it (CLONE_VM, no descriptors — closed before we exit, so readers of our output see
/// its end with ours — every signal blocked, SCHED_IDLE) and exits once we have: the exit our
/// caller waits for no longer unmaps and frees the address space (`cordon run`'s exit_group to
/// its caller's wait4: 0.59 -> 0.09 ms, medians of 60 traced runs). Only in the initial pid
/// namespace, whose init reaps the orphan; elsewhere, or when no child can be made, a plain
/// exit. Never returns.
__attribute__((noreturn)) void cl_exit_leaving_teardown(int status);
/// Whether `path` names something reached through no symlink at all, its last component
/// included (openat2 O_PATH, RESOLVE_NO_SYMLINKS): 0, or -1/errno (ELOOP: a symlink on the way;
/// ENOENT: a component missing, every one before it a real directory).
int cl_exists_without_symlinks(const char *path);
/// O_PATH (Swift's Glibc module is built without _GNU_SOURCE, so it has no O_PATH); the value
/// is the kernel's, checked against fcntl.h's in linux.c.
#define CL_O_PATH 010000000
/// openat2(dir, path, flags | O_CLOEXEC | O_NOFOLLOW, mode) resolving `path` beneath `dir`
/// only, through no symlink, no /proc magic link and no other mount (RESOLVE_BENEATH |
/// RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV): the fd, or -1/errno.
int cl_openat_beneath(int dir, const char *path, int flags, uint32_t mode);
/// faccessat2(fd, "", mode, AT_EMPTY_PATH | AT_EACCESS): whether the calling thread's
/// file-system identity may `mode` (R_OK, W_OK, X_OK) the inode of `fd`. 0, or -1/errno.
int cl_access_fd(int fd, int mode);

/// mount_setattr on a detached mount: idmapped through `userns_fd`, nosuid, nodev, noexec when
/// asked, writable, private. 0 or -1/errno.
int cl_mount_setattr_idmap(int tree, int userns_fd, int noexec, int readonly);
// A detached mount made read-only, nosuid and nodev, private, without an idmap (its owners are
// whoever they are on the host: unmapped, so unwritable, inside a sandbox's user namespace).
int cl_mount_setattr_readonly(int tree);
/// Copy-on-write workspaces (fsopen, fsconfig, fsmount: system calls glibc 2.36 does not wrap,
/// and fsconfig's FSCONFIG_SET_FD form). A new tmpfs, detached (mounted nowhere), of at most
/// `size` bytes and `inodes` inodes, nosuid and nodev, holding three empty directories: "upper"
/// (mode 0700, root's until the overlay is made), "work", and "lower" (0755: the lower layer of
/// a scratch workspace, which has no host directory). Its mount's fd, or -1/errno with
/// the file system's own words in `why` (`why_len` bytes at most).
int cl_cow_layer(uint64_t size, uint64_t inodes, char *why, size_t why_len);
/// An overlay, detached: lower = `lower` (a detached mount, idmapped and read-only), upper and
/// work = the "upper" and "work" directories of `layer` (from `cl_cow_layer`), whose "upper" is
/// first given to `uid`:`gid` with `mode` (the merged root takes its owner and mode from it).
/// No redirect_dir, metacopy or index: the upper holds whole files, whiteouts and opaque
/// directories only. nosuid, nodev, noexec when asked. Its mount's fd, or -1/errno with the
/// file system's own words in `why`.
int cl_cow_overlay(int lower, int layer, uint32_t uid, uint32_t gid, uint32_t mode, int noexec, char *why, size_t why_len);
/// Whether directory `fd` in an overlay's upper layer is opaque (trusted.overlay.opaque is
/// "y": it replaces the lower layer's directory): 1 or 0, or -1/errno (sys/xattr.h is not in
/// Swift's Glibc module).
int cl_overlay_opaque(int fd);
/// fstatfs(fd): the file system's type, and whether it is read-only (the mount or the
/// superblock), or -1/errno.
long cl_fd_fs_type(int fd, int *readonly);

/// pipe2(2) with flags (a GNU extension Swift's Glibc module hides).
int cl_pipe2(int fds[2], int flags);
/// A new pseudo-terminal pair, both ends O_CLOEXEC (posix_openpt, grantpt, unlockpt, ptsname_r).
int cl_open_pty(int *master, int *slave);

/// Blocks `signals` (count entries) in the calling thread and returns a non-blocking signalfd
/// for them (sys/signalfd.h is not in Swift's Glibc module). `old` receives the previous mask.
int cl_signalfd_for(const int *signals, int count, sigset_t *old);
/// Reads one signal from a signalfd: its number, or 0 when none is pending.
int cl_signalfd_next(int fd);

/// memfd_create(name, MFD_CLOEXEC) (a GNU extension Swift's Glibc module hides).
int cl_memfd(const char *name);

/// pidfd_open(pid, 0), or -1/errno.
int cl_pidfd_open(pid_t pid);

/// pidfd_send_signal(pidfd, sig, NULL, 0).
int cl_pidfd_send_signal(int pidfd, int sig);
/// waitid(P_PIDFD, pidfd, ...): the raw wait status of the child (WIFEXITED etc. apply), or -1/errno.
int cl_pidfd_wait(int pidfd, int *wait_status, int options);

/// Receives one message of at most `len` bytes and up to one fd passed with SCM_RIGHTS
/// (`*fd` = -1 when none). Returns the byte count (0 at EOF) or -1/errno.
ssize_t cl_recv_with_fd(int sock, void *buf, size_t len, int *fd);
/// Sends `count` descriptors (1 … CL_SEND_MAX_FDS) with a one-byte message. 0 or -1/errno.
#define CL_SEND_MAX_FDS 8
int cl_send_fds(int sock, const int *fds, size_t count);
/// Sends one message of `len` bytes with `count` descriptors (0 … CL_SEND_MAX_FDS), whole (a
/// SOCK_SEQPACKET record). 0 or -1/errno.
int cl_send_message(int sock, const void *buf, size_t len, const int *fds, size_t count);

/// Seccomp user notification: receive one (blocks), answer with an errno (0 = let it run).
int cl_seccomp_notif_recv(int listener, struct seccomp_notif *req);
int cl_seccomp_notif_respond_errno(int listener, uint64_t id, int err);
/// 0 while notification `id` is still pending (its task alive and waiting), -1/errno otherwise.
int cl_seccomp_notif_id_valid(int listener, uint64_t id);
/// Checks that the kernel's notification structs match the ones we were compiled with.
int cl_seccomp_notif_sizes_ok(void);

/// Terminal size get/set (ioctl TIOCGWINSZ / TIOCSWINSZ).
int cl_get_winsize(int fd, unsigned short *rows, unsigned short *cols);
int cl_set_winsize(int fd, unsigned short rows, unsigned short cols);

/// Starts a cleanup guardian: a process sharing the caller's memory (not a fork: no page tables
/// copied) that waits until `pipe_read` reaches EOF (the caller died, even by SIGKILL) or reads
/// a byte (the caller cleaned up itself). On EOF it removes each directory of `dirs` (cgroups:
/// retried while their processes die), then exits. `keep_fd` (or -1) stays open in the guardian
/// (a lock it should hold until cleanup is done). Returns the guardian's pid or -1/errno; once
/// the caller has reaped it, `cl_guardian_release(*region)` frees its stack.
#define CL_GUARDIAN_MAX_DIRS 8
pid_t cl_guardian_start(int pipe_read, int keep_fd, const char *const *dirs, size_t count, void **region);
void cl_guardian_release(void *region);

#ifdef __cplusplus
}
#endif
// malloc_trim(0): gives freed heap memory back to the system. A GNU function declared in
// <malloc.h>, which the Glibc module does not export. Returns 1 if memory was released.
int cl_malloc_trim(void);
// mallopt(M_ARENA_MAX, arenas) (<malloc.h> again): at most `arenas` malloc arenas for the whole
// process (glibc's default is 8 per core), so memory one thread freed is found by the next
// instead of staying in an arena of its own. 1 on success, 0 on failure.
int cl_malloc_arena_max(int arenas);

#endif
