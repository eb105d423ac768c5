// See cegress.h for why each of these is C.
#define _GNU_SOURCE
#include "cegress.h"

// net/if.h before any linux/ header, so that linux/if.h leaves its definitions alone.
#include <net/if.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <netinet/in.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

_Static_assert(sizeof(struct sockaddr_in6) <= sizeof(struct sockaddr_storage), "sockaddr sizes");

int cl_original_dst(int fd, struct sockaddr_storage *out) {
    struct sockaddr_storage local;
    socklen_t len = sizeof local;
    if (getsockname(fd, (struct sockaddr *)&local, &len) != 0) return -1;
    memset(out, 0, sizeof *out);
    // A v4 connection accepted on a dual-stack socket has a v4-mapped local address; its
    // conntrack entry is IPv4.
    if (local.ss_family == AF_INET6 && !IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&local)->sin6_addr)) {
        len = sizeof(struct sockaddr_in6);
        return getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, out, &len);
    }
    len = sizeof(struct sockaddr_in);
    return getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, out, &len);
}

ssize_t cl_splice(int in, int out, size_t len) {
    return splice(in, NULL, out, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
}

int cl_accept_nonblock(int fd) { return accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK); }

int cl_pipe_set_size(int fd, int size) { return fcntl(fd, F_SETPIPE_SZ, size); }

int cl_set_thread_name(const char *name) { return prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0); }

// ---------------------------------------------------------------------------------------------
// The sandbox's network namespace


struct egress_setup {
    int netns_fd;
    const char *nft_path;
    const char *ruleset;
    int proxy_port;
    int tcp_fd, udp_fd, step, err;
};

static int loopback_up(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    struct ifreq r;
    memset(&r, 0, sizeof r);
    strncpy(r.ifr_name, "lo", IFNAMSIZ - 1);
    int rc = ioctl(s, SIOCGIFFLAGS, &r);
    if (rc == 0 && !(r.ifr_flags & IFF_UP)) {
        r.ifr_flags |= IFF_UP;
        rc = ioctl(s, SIOCSIFFLAGS, &r);
    }
    int saved = errno;
    close(s);
    errno = saved;
    return rc;
}

/// RTM_NEWROUTE 0.0.0.0/0 dev lo src 127.0.0.1, acknowledged.
static int default_route_via_lo(void) {
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (s < 0) return -1;
    struct {
        struct nlmsghdr h;
        struct rtmsg r;
        char attrs[64];
    } req;
    memset(&req, 0, sizeof req);
    req.h.nlmsg_type = RTM_NEWROUTE;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK;
    req.h.nlmsg_seq = 1;
    req.r.rtm_family = AF_INET;
    req.r.rtm_table = RT_TABLE_MAIN;
    req.r.rtm_protocol = RTPROT_STATIC;
    req.r.rtm_scope = RT_SCOPE_LINK;
    req.r.rtm_type = RTN_UNICAST;
    size_t len = NLMSG_LENGTH(sizeof req.r);
    unsigned oif = if_nametoindex("lo");
    struct in_addr src = { .s_addr = htonl(INADDR_LOOPBACK) };
    struct { unsigned short type; const void *data; size_t size; } attrs[] = {
        { RTA_OIF, &oif, sizeof oif }, { RTA_PREFSRC, &src, sizeof src },
    };
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
        struct rtattr *a = (struct rtattr *)((char *)&req + NLMSG_ALIGN(len));
        a->rta_type = attrs[i].type;
        a->rta_len = (unsigned short)RTA_LENGTH(attrs[i].size);
        memcpy(RTA_DATA(a), attrs[i].data, attrs[i].size);
        len = NLMSG_ALIGN(len) + RTA_ALIGN(a->rta_len);
    }
    req.h.nlmsg_len = (unsigned)len;
    struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
    int rc = -1;
    if (sendto(s, &req, len, 0, (struct sockaddr *)&kernel, sizeof kernel) == (ssize_t)len) {
        char buf[512];
        ssize_t n = recv(s, buf, sizeof buf, 0);
        struct nlmsghdr *h = (struct nlmsghdr *)buf;
        if (n >= (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)) && h->nlmsg_type == NLMSG_ERROR) {
            int e = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
            if (e == 0) rc = 0; else errno = -e;
        } else if (n >= 0) {
            errno = EPROTO;
        }
    }
    int saved = errno;
    close(s);
    errno = saved;
    return rc;
}

static int bound_socket(int type, int port, int listening) {
    int s = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                             .sin_addr = { .s_addr = htonl(INADDR_LOOPBACK) } };
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || (listening && listen(s, 256) != 0)) {
        int saved = errno;
        close(s);
        errno = saved;
        return -1;
    }
    return s;
}

static int run_nft(const char *path, const char *ruleset) {
    int in[2];
    if (pipe2(in, O_CLOEXEC) != 0) return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    char *const argv[] = { (char *)"nft", (char *)"-f", (char *)"-", NULL };
    char *const envp[] = { NULL };
    pid_t pid;
    int rc = posix_spawn(&pid, path, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    if (rc != 0) { close(in[1]); errno = rc; return -1; }
    size_t len = strlen(ruleset), off = 0;
    while (off < len) {
        ssize_t n = write(in[1], ruleset + off, len - off);
        if (n < 0) { if (errno == EINTR) continue; break; }
        off += (size_t)n;
    }
    close(in[1]);
    int status;
    while (waitpid(pid, &status, 0) < 0) { if (errno != EINTR) return -1; }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) { errno = EINVAL; return -2; }
    return 0;
}

static void *egress_setup_thread(void *arg) {
    struct egress_setup *e = arg;
    e->tcp_fd = e->udp_fd = -1;
#define STEP(expr, s) do { if ((expr) < 0) { e->step = (s); e->err = errno; goto fail; } } while (0)
    STEP(setns(e->netns_fd, CLONE_NEWNET), CL_EGRESS_SETNS);
    STEP(loopback_up(), CL_EGRESS_LOOPBACK);
    STEP(default_route_via_lo(), CL_EGRESS_ROUTE);
    STEP(e->tcp_fd = bound_socket(SOCK_STREAM, e->proxy_port, 1), CL_EGRESS_TCP);
    STEP(e->udp_fd = bound_socket(SOCK_DGRAM, 53, 0), CL_EGRESS_UDP);
    int rc = run_nft(e->nft_path, e->ruleset);
    if (rc == -2) { e->step = CL_EGRESS_NFT_STATUS; e->err = EINVAL; goto fail; }
    STEP(rc, CL_EGRESS_NFT_SPAWN);
#undef STEP
    return NULL;
fail:
    if (e->tcp_fd >= 0) close(e->tcp_fd);
    if (e->udp_fd >= 0) close(e->udp_fd);
    e->tcp_fd = e->udp_fd = -1;
    return NULL;
}

int cl_egress_netns_setup(int netns_fd, const char *nft_path, const char *ruleset, int proxy_port,
                          int *tcp_fd, int *udp_fd, int *failed_step) {
    struct egress_setup e = { .netns_fd = netns_fd, .nft_path = nft_path, .ruleset = ruleset,
                              .proxy_port = proxy_port, .tcp_fd = -1, .udp_fd = -1, .step = 0, .err = 0 };
    pthread_t t;
    int rc = pthread_create(&t, NULL, egress_setup_thread, &e);
    if (rc != 0) { *failed_step = CL_EGRESS_SETNS; errno = rc; return -1; }
    pthread_join(t, NULL);
    if (e.step != 0) { *failed_step = e.step; errno = e.err; return -1; }
    *tcp_fd = e.tcp_fd;
    *udp_fd = e.udp_fd;
    return 0;
}
