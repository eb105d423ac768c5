// CSpawn: the only code that runs between clone() and execve().
//
// Why C: after clone() from a multi-threaded Swift process only async-signal-safe code may run
// (no allocation, no locks, no runtime). Everything is planned in Swift and handed to one entry
// point, cs_spawn(), as a flat plan of plain C values. The child reports a failure as
// (step, index, errno) over a SOCK_SEQPACKET channel and calls _exit; it never returns.
#ifndef CSPAWN_H
#define CSPAWN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/// One step of the mount plan, executed in order inside the child's mount namespace, with
/// `target` relative to the new root (written as an absolute sandbox path, e.g. "/usr").
enum cs_mount_kind {
    CS_MOUNT_DIR = 1,      // mkdir target (mode)
    CS_MOUNT_BIND = 2,     // bind the host path `data` onto target
    CS_MOUNT_TMPFS = 3,    // tmpfs at target, `data` is the option string ("size=64m,mode=1777")
    CS_MOUNT_SYMLINK = 4,  // symlink target -> data
    CS_MOUNT_FILE = 5,     // create target with content `data` (data_len bytes), mode
    CS_MOUNT_PROC = 6,     // procfs of the new pid namespace at target
    CS_MOUNT_MASK = 7,     // hide target: /dev/null over a file, an empty read-only tmpfs over a dir
    CS_MOUNT_READONLY = 8, // bind target onto itself read-only (e.g. /proc/sys)
    CS_MOUNT_DEVPTS = 9,   // a new devpts instance at target (ptmx mode 0666)
    CS_MOUNT_ATTACH = 10,  // move the detached mount `fd` (made by the parent) onto target
};

/// Flags of a mount step.
enum {
    CS_MF_READONLY = 1 << 0,
    CS_MF_NOEXEC = 1 << 1,
    CS_MF_ISDIR = 1 << 2,      // BIND: the mount point is a directory (else a file)
    CS_MF_CHOWN = 1 << 3,      // DIR/TMPFS: owned by the workload's uid/gid
    CS_MF_OPTIONAL = 1 << 4,   // MASK/READONLY/BIND: skip when the path does not exist
    CS_MF_DEVICE = 1 << 5,     // BIND of a device node: the mount keeps device access
};

struct cs_mount_op {
    int kind;
    int flags;
    unsigned mode;
    const char *target;
    const char *data;
    size_t data_len;
    int fd;                   // ATTACH: the detached mount (-1: an optional source was missing)
};

/// At most this many ATTACH steps in one plan (the child keeps their descriptors open until it
/// has mounted them).
#define CS_MAX_ATTACH 64

struct cs_landlock_rule {
    const char *path;         // sandbox path, opened O_PATH after pivot_root
    uint64_t access;
};

struct cs_rlimit {
    int resource;
    uint64_t soft;
    uint64_t hard;
};

/// The steps the child reports on failure; the Swift side names them.
enum cs_step {
    CS_STEP_NONE = 0,
    CS_STEP_WAIT_PARENT,
    CS_STEP_ID_MAP,
    CS_STEP_SETSID,
    CS_STEP_MOUNT_PRIVATE,
    CS_STEP_ROOT_TMPFS,
    CS_STEP_MOUNT,            // index = mount op
    CS_STEP_PIVOT_ROOT,
    CS_STEP_ROOT_READONLY,
    CS_STEP_HOSTNAME,
    CS_STEP_LOOPBACK,
    CS_STEP_FORK,
    CS_STEP_STDIO,
    CS_STEP_CHDIR,
    CS_STEP_RLIMIT,           // index = rlimit
    CS_STEP_CAP_BOUNDING,
    CS_STEP_SECUREBITS,
    CS_STEP_SETGROUPS,
    CS_STEP_SETGID,
    CS_STEP_SETUID,
    CS_STEP_CAPSET,
    CS_STEP_AMBIENT,
    CS_STEP_NO_NEW_PRIVS,
    CS_STEP_LANDLOCK_RULE,    // index = rule
    CS_STEP_LANDLOCK_RESTRICT,
    CS_STEP_SECCOMP,
    CS_STEP_SEND_LISTENER,
    CS_STEP_EXEC,
    CS_STEP_INIT_SIGNALS,
    CS_STEP_CGROUP,           // index = cgroup file
    CS_STEP_CGROUP_NS,
    CS_STEP_INIT_EXEC,
};

/// What the child sends over the channel.
struct cs_report {
    int32_t step;
    int32_t index;
    int32_t err;
    int32_t has_fd;           // 1: a seccomp listener fd rides along (SCM_RIGHTS)
};

/// What init writes to status_fd when the workload has ended.
struct cs_status {
    int32_t wait_status;      // as from wait4
    int32_t reserved;
    int64_t utime_us;         // CPU time of everything init reaped
    int64_t stime_us;
    int64_t maxrss_kb;
};

/// The most cgroup v1 hierarchies a sandbox joins.
#define CS_MAX_CGROUP_FILES 8

struct cs_plan {
    int clone_flags;          // CLONE_NEW* flags
    int sync_fd;              // read end: the parent writes one byte to release the child
    int chan_fd;              // child end of the report channel (SOCK_SEQPACKET)
    int status_fd;            // write end: init writes a struct cs_status
    int stdio[3];             // fds that become the workload's 0, 1, 2
    int set_ctty;             // make stdio[0] the controlling terminal (--tty)

    // cgroup v1: how many "tasks" files the parent sends over chan_fd (SCM_RIGHTS, opened by
    // it as root) once it has created the cgroup, which it does while the child builds its
    // root; the child then writes "0" to each, moving itself. A task moving only itself skips
    // the global threadgroup lock, and with it the RCU grace period (often 10 ms) that a write
    // of its pid by the parent to cgroup.procs costs.
    size_t cgroup_task_files;
    int cgroup_fd;            // cgroup v2: clone3 CLONE_INTO_CGROUP this directory fd (-1: none)
    int new_cgroup_ns;        // unshare(CLONE_NEWCGROUP) once in the sandbox's cgroup

    const char *root_mountpoint;   // host directory the new root tmpfs is mounted on
    const char *root_options;      // tmpfs options for the root
    const struct cs_mount_op *mounts;
    size_t mount_count;
    int root_readonly;             // remount / read-only once built

    const char *hostname;
    int loopback_up;

    const struct cs_rlimit *rlimits;
    size_t rlimit_count;

    uid_t uid;                // workload uid/gid inside the user namespace
    gid_t gid;
    int cap_last;             // highest capability number the kernel knows
    uint64_t keep_caps;       // capabilities the workload keeps (bit n = cap n)

    int landlock_fd;          // ruleset fd created by the parent, -1 when unsupported
    const struct cs_landlock_rule *landlock_rules;
    size_t landlock_rule_count;

    const void *seccomp_filter;    // struct sock_filter array
    size_t seccomp_len;            // number of instructions
    unsigned seccomp_flags;        // SECCOMP_FILTER_FLAG_*; NEW_LISTENER sends the fd over chan_fd

    // cordon-init, opened by the supervisor: once the workload is cloned, init executes it from
    // this descriptor (the sandbox's tree cannot reach the host's copy); the workload waits on a
    // gate until cordon-init has set itself up.
    int init_exec_fd;
    // Nonzero: the workload is cordon-init's session server (Sources/cordon-init), executed from
    // init_exec_fd with argv and envp once it is as confined as any workload; Landlock allows
    // executing that one file (the sandbox's tree cannot reach it) and nothing else new.
    int workload_is_init;
    // Share the supervisor's memory until the child executes (CLONE_VM): no page tables copied,
    // no copy-on-write faults in the supervisor. 0: a copy, as fork does (also on architectures
    // without the clone trampoline, where the flag is ignored).
    int share_memory;
    // Filled in by cs_spawn when memory is shared: the workload's own stack in that memory.
    void *workload_stack;
    size_t workload_stack_size;

    const char *cwd;
    const char *exec_path_search;  // PATH used to find argv[0] when it has no '/'
    char *const *argv;
    char *const *envp;
};

/// Clones the sandbox's init with plan->clone_flags | CLONE_PIDFD. Returns the pid (and the pidfd
/// through `pidfd`) or -1 with errno set. The child blocks until the parent writes to the sync
/// pipe; it never returns from this function.
///
/// With plan->share_memory the child runs on a stack of its own in this process's memory and
/// reads the plan from there: everything the plan points to must stay valid, and `*region` must
/// be passed to cs_spawn_release, only once the report channel reached EOF (both the workload
/// and init have executed, or died) or the child was reaped. `*region` is NULL otherwise.
pid_t cs_spawn(const struct cs_plan *plan, int *pidfd, void **region);

/// Frees the child's stack region of a cs_spawn (NULL: nothing to free).
void cs_spawn_release(void *region);

/// A user namespace whose only ids are those of `uid_map` and `gid_map` (lines "inside outside
/// count"), for an idmapped mount (mount_setattr's userns_fd). A child is cloned into a new user
/// namespace and waits while the maps are written; its namespace is opened and the child let go
/// and reaped. Returns an O_CLOEXEC descriptor of the namespace, or -errno. In C because the
/// child must run between clone and exit without touching the caller's thread state.
long cs_idmap_userns(const char *uid_map, const char *gid_map);

/// Learning mode (`cordon run --learn`): forks a child that keeps the caller's namespaces,
/// credentials and cwd, sets no_new_privs, installs plan->seccomp_filter with a new listener,
/// sends the listener over plan->chan_fd and executes plan->argv (searching
/// plan->exec_path_search). Only argv, envp, exec_path_search, chan_fd and seccomp_filter/len
/// are used. Returns the pid and its pidfd, or -1 with errno set.
pid_t cs_learn_spawn(const struct cs_plan *plan, int *pidfd);

/// 1 when the seccomp program `filter` (`len` instructions) allows system call `nr` of this
/// architecture whatever its arguments; 0 when it refuses it, decides by an argument, or reads
/// something this check does not model. The workload installs its filter before the gate only
/// when this holds for every call it makes until execve.
int cs_filter_allows(const void *filter, size_t len, unsigned nr);

#ifdef __cplusplus
}
#endif
#endif
