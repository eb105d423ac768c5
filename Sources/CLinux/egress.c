// See cegress.h for why each of these is C.
#define _GNU_SOURCE
#include "cegress.h"

// net/if.h before any linux/ header, so that linux/if.h leaves its definitions alone.
#include <net/if.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <linux/bpf.h>
#include <linux/fib_rules.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

ssize_t cl_splice(int in, int out, size_t len) {
    return splice(in, NULL, out, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
}

int cl_accept_nonblock(int fd) { return accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK); }

int cl_pipe_set_size(int fd, int size) { return fcntl(fd, F_SETPIPE_SZ, size); }

int cl_set_thread_name(const char *name) { return prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0); }

int cl_enter_netns(int netns_fd) { return setns(netns_fd, CLONE_NEWNET); }

// ---------------------------------------------------------------------------------------------
// The sandbox's network namespace

static int close_keeping_errno(int fd, int rc) {
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

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
    return close_keeping_errno(s, rc);
}

/// A netlink request under construction: header, family header, attributes.
struct nl_request {
    struct nlmsghdr h;
    char body[128];
};

static void nl_begin(struct nl_request *req, unsigned short type, const void *family_header, size_t size) {
    memset(req, 0, sizeof *req);
    req->h.nlmsg_type = type;
    req->h.nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK;
    req->h.nlmsg_seq = 1;
    memcpy(NLMSG_DATA(&req->h), family_header, size);
    req->h.nlmsg_len = NLMSG_LENGTH(size);
}

static void nl_attr(struct nl_request *req, unsigned short type, const void *data, size_t size) {
    struct rtattr *a = (struct rtattr *)((char *)req + NLMSG_ALIGN(req->h.nlmsg_len));
    a->rta_type = type;
    a->rta_len = (unsigned short)RTA_LENGTH(size);
    memcpy(RTA_DATA(a), data, size);
    req->h.nlmsg_len = NLMSG_ALIGN(req->h.nlmsg_len) + RTA_ALIGN(a->rta_len);
}

/// Sends the request to the kernel and waits for its acknowledgement: 0, or -1/errno.
static int nl_send(struct nl_request *req) {
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (s < 0) return -1;
    struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
    int rc = -1;
    if (sendto(s, req, req->h.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) == (ssize_t)req->h.nlmsg_len) {
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
    return close_keeping_errno(s, rc);
}

/// The routing table that holds the TCP-only "every address is local" route.
enum { EGRESS_TABLE = 100, EGRESS_RULE_PRIORITY = 100 };

/// `ip rule add ipproto tcp lookup 100 priority 100` (IPv4): TCP, and only TCP, consults the
/// table with the any-address local route; UDP and ICMP find no route past 127.0.0.0/8.
static int tcp_rule(void) {
    struct fib_rule_hdr r = { .family = AF_INET, .action = FR_ACT_TO_TBL };
    struct nl_request req;
    nl_begin(&req, RTM_NEWRULE, &r, sizeof r);
    unsigned table = EGRESS_TABLE, priority = EGRESS_RULE_PRIORITY;
    unsigned char proto = IPPROTO_TCP;
    nl_attr(&req, FRA_TABLE, &table, sizeof table);
    nl_attr(&req, FRA_PRIORITY, &priority, sizeof priority);
    nl_attr(&req, FRA_IP_PROTO, &proto, sizeof proto);
    return nl_send(&req);
}

/// `ip route add local 0.0.0.0/0 dev lo src 127.0.0.1 table 100`: a TCP connection to any
/// address is delivered in this namespace, where the sk_lookup program hands it to the proxy.
static int tcp_local_route(void) {
    struct rtmsg r = { .rtm_family = AF_INET, .rtm_table = RT_TABLE_UNSPEC, .rtm_protocol = RTPROT_STATIC,
                       .rtm_scope = RT_SCOPE_HOST, .rtm_type = RTN_LOCAL };
    struct nl_request req;
    nl_begin(&req, RTM_NEWROUTE, &r, sizeof r);
    unsigned table = EGRESS_TABLE, oif = if_nametoindex("lo");
    struct in_addr src = { .s_addr = htonl(INADDR_LOOPBACK) };
    nl_attr(&req, RTA_TABLE, &table, sizeof table);
    nl_attr(&req, RTA_OIF, &oif, sizeof oif);
    nl_attr(&req, RTA_PREFSRC, &src, sizeof src);
    return nl_send(&req);
}

/// The namespace's default congestion control: a loss-based one without pacing. The host's
/// default is chosen for real networks (BBR paces every flow, with a timer per burst); this
/// namespace carries only loopback hops between the workload and the proxy, where pacing only
/// throttles. The proxy's upstream connections keep the host's choice. Sockets made afterwards
/// (the proxy's listener, so its accepted connections, and the workload's) take this one.
static int loopback_congestion_control(void) {
    int fd = open("/proc/sys/net/ipv4/tcp_congestion_control", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    // reno is always built in; cubic, the kernel's usual default, is preferred when present.
    int rc = write(fd, "cubic", 5) == 5 || write(fd, "reno", 4) == 4 ? 0 : -1;
    return close_keeping_errno(fd, rc);
}

static int bound_socket(int type, int port, int listening) {
    int s = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    // The listener answers from whatever address the client dialled, which no interface holds:
    // without IP_TRANSPARENT the kernel finds no route for the SYN-ACK and drops the SYN.
    int one = 1;
    if (listening && setsockopt(s, SOL_IP, IP_TRANSPARENT, &one, sizeof one) != 0) return close_keeping_errno(s, -1);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                             .sin_addr = { .s_addr = htonl(INADDR_LOOPBACK) } };
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || (listening && listen(s, 256) != 0)) return close_keeping_errno(s, -1);
    return s;
}

static int sys_bpf(int cmd, union bpf_attr *attr) { return (int)syscall(__NR_bpf, cmd, attr, sizeof *attr); }

#define INSN(c, d, s, o, i) ((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) })
#define LDX(size, d, s, field) INSN(BPF_LDX | BPF_MEM | (size), d, s, offsetof(struct bpf_sk_lookup, field), 0)

/// The sk_lookup program: a TCP/IPv4 connection to an address outside 127.0.0.0/8 goes to the
/// listener in slot 0 of `sockmap`, or is dropped when that slot is empty or the assignment
/// fails; everything else takes the normal lookup.
static int load_steering_program(int sockmap) {
    enum { PASS = 23, DROP = 25 };
    struct bpf_insn prog[] = {
        /*  0 */ INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_6, BPF_REG_1, 0, 0),
        /*  1 */ LDX(BPF_W, BPF_REG_2, BPF_REG_6, protocol),
        /*  2 */ INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_2, 0, PASS - 3, IPPROTO_TCP),
        /*  3 */ LDX(BPF_W, BPF_REG_2, BPF_REG_6, family),
        /*  4 */ INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_2, 0, PASS - 5, AF_INET),
        // The first octet of local_ip4 (network byte order): the sandbox's own loopback.
        /*  5 */ LDX(BPF_B, BPF_REG_2, BPF_REG_6, local_ip4),
        /*  6 */ INSN(BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_2, 0, PASS - 7, 127),
        /*  7 */ INSN(BPF_ST | BPF_MEM | BPF_W, BPF_REG_10, 0, -4, 0),
        /*  8 */ INSN(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, sockmap),
        /*  9 */ INSN(0, 0, 0, 0, 0),
        /* 10 */ INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, BPF_REG_10, 0, 0),
        /* 11 */ INSN(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, -4),
        /* 12 */ INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem),
        /* 13 */ INSN(BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_0, 0, DROP - 14, 0),
        /* 14 */ INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_7, BPF_REG_0, 0, 0),
        /* 15 */ INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_1, BPF_REG_6, 0, 0),
        /* 16 */ INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, BPF_REG_7, 0, 0),
        /* 17 */ INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_3, 0, 0, 0),
        /* 18 */ INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_sk_assign),
        /* 19 */ INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_8, BPF_REG_0, 0, 0),
        /* 20 */ INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_1, BPF_REG_7, 0, 0),
        /* 21 */ INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_sk_release),
        /* 22 */ INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_8, 0, DROP - 23, 0),
        /* 23 */ INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, SK_PASS),
        /* 24 */ INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
        /* 25 */ INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, SK_DROP),
        /* 26 */ INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
    };
    _Static_assert(sizeof prog / sizeof prog[0] == DROP + 2, "jump targets");
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.prog_type = BPF_PROG_TYPE_SK_LOOKUP;
    a.expected_attach_type = BPF_SK_LOOKUP;
    a.insns = (unsigned long)prog;
    a.insn_cnt = sizeof prog / sizeof prog[0];
    a.license = (unsigned long)"GPL";
    memcpy(a.prog_name, "cordon_egress", sizeof "cordon_egress");
    return sys_bpf(BPF_PROG_LOAD, &a);
}

/// A one-slot sockmap holding `listener`, the steering program over it, and the program
/// attached to the namespace `netns_fd`: the link's fd, or -1/errno with *step set.
static int steer_tcp_to(int listener, int netns_fd, int *step) {
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.map_type = BPF_MAP_TYPE_SOCKMAP;
    a.key_size = 4;
    a.value_size = 4;
    a.max_entries = 1;
    *step = CL_EGRESS_SOCKMAP;
    int map = sys_bpf(BPF_MAP_CREATE, &a);
    if (map < 0) return -1;
    unsigned key = 0, value = (unsigned)listener;
    memset(&a, 0, sizeof a);
    a.map_fd = (unsigned)map;
    a.key = (unsigned long)&key;
    a.value = (unsigned long)&value;
    a.flags = BPF_ANY;
    if (sys_bpf(BPF_MAP_UPDATE_ELEM, &a) != 0) return close_keeping_errno(map, -1);
    *step = CL_EGRESS_PROGRAM;
    int prog = load_steering_program(map);
    close_keeping_errno(map, 0); // the program holds the map
    if (prog < 0) return -1;
    memset(&a, 0, sizeof a);
    a.link_create.prog_fd = (unsigned)prog;
    a.link_create.target_fd = (unsigned)netns_fd;
    a.link_create.attach_type = BPF_SK_LOOKUP;
    *step = CL_EGRESS_ATTACH;
    int link = sys_bpf(BPF_LINK_CREATE, &a);
    return close_keeping_errno(prog, link); // the link holds the program
}

struct egress_setup {
    int netns_fd, proxy_port;
    int tcp_fd, udp_fd, link_fd, step, err;
};

static void *egress_setup_thread(void *arg) {
    struct egress_setup *e = arg;
    int step = 0;
#define STEP(expr, s) do { if ((expr) < 0) { e->step = (s); e->err = errno; goto fail; } } while (0)
    STEP(setns(e->netns_fd, CLONE_NEWNET), CL_EGRESS_SETNS);
    STEP(loopback_up(), CL_EGRESS_LOOPBACK);
    STEP(loopback_congestion_control(), CL_EGRESS_CONGESTION);
    STEP(tcp_rule(), CL_EGRESS_RULE);
    STEP(tcp_local_route(), CL_EGRESS_ROUTE);
    STEP(e->tcp_fd = bound_socket(SOCK_STREAM, e->proxy_port, 1), CL_EGRESS_TCP);
    STEP(e->udp_fd = bound_socket(SOCK_DGRAM, 53, 0), CL_EGRESS_UDP);
    e->link_fd = steer_tcp_to(e->tcp_fd, e->netns_fd, &step);
    STEP(e->link_fd, step);
#undef STEP
    return NULL;
fail:
    if (e->tcp_fd >= 0) close(e->tcp_fd);
    if (e->udp_fd >= 0) close(e->udp_fd);
    e->tcp_fd = e->udp_fd = e->link_fd = -1;
    return NULL;
}

int cl_egress_netns_setup(int netns_fd, int proxy_port, int *tcp_fd, int *udp_fd, int *link_fd, int *failed_step) {
    struct egress_setup e = { .netns_fd = netns_fd, .proxy_port = proxy_port, .tcp_fd = -1, .udp_fd = -1, .link_fd = -1 };
    pthread_t t;
    int rc = pthread_create(&t, NULL, egress_setup_thread, &e);
    if (rc != 0) { *failed_step = CL_EGRESS_SETNS; errno = rc; return -1; }
    pthread_join(t, NULL);
    if (e.step != 0) { *failed_step = e.step; errno = e.err; return -1; }
    *tcp_fd = e.tcp_fd;
    *udp_fd = e.udp_fd;
    *link_fd = e.link_fd;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Where the supervisor's own namespace routes an address

int cl_route_type(int family, const void *address, unsigned short port) {
    size_t size = family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;
    if (size == 0) { errno = EAFNOSUPPORT; return -1; }
    struct rtmsg r = { .rtm_family = (unsigned char)family, .rtm_dst_len = (unsigned char)(size * 8) };
    struct nl_request req;
    nl_begin(&req, RTM_GETROUTE, &r, sizeof r);
    req.h.nlmsg_flags = NLM_F_REQUEST;
    // The lookup connect(2) makes: TCP to this port (policy rules may select on either), with
    // no mark and the caller's uid, which the kernel takes when RTA_UID is absent.
    unsigned char proto = IPPROTO_TCP;
    unsigned short dport = htons(port);
    nl_attr(&req, RTA_DST, address, size);
    nl_attr(&req, RTA_IP_PROTO, &proto, sizeof proto);
    nl_attr(&req, RTA_DPORT, &dport, sizeof dport);

    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (s < 0) return -1;
    struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
    if (sendto(s, &req, req.h.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) != (ssize_t)req.h.nlmsg_len) return close_keeping_errno(s, -1);
    // rtnetlink handles a request inside sendto: the answer is queued by now, so never wait.
    union { struct nlmsghdr h; char bytes[2048]; } buf;
    ssize_t n = recv(s, &buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) return close_keeping_errno(s, -1);
    close(s);
    if (n < (ssize_t)sizeof buf.h || buf.h.nlmsg_len > (size_t)n || buf.h.nlmsg_seq != req.h.nlmsg_seq) { errno = EPROTO; return -1; }
    if (buf.h.nlmsg_type == NLMSG_ERROR && buf.h.nlmsg_len >= NLMSG_LENGTH(sizeof(struct nlmsgerr))) {
        int e = ((struct nlmsgerr *)NLMSG_DATA(&buf.h))->error;
        if (e >= 0) { errno = EPROTO; return -1; }
        errno = -e;
        return -2;
    }
    if (buf.h.nlmsg_type != RTM_NEWROUTE || buf.h.nlmsg_len < NLMSG_LENGTH(sizeof(struct rtmsg))) { errno = EPROTO; return -1; }
    return ((struct rtmsg *)NLMSG_DATA(&buf.h))->rtm_type;
}
