// CLinux egress shims. Each is C because Swift's Glibc module hides it or it is a macro:
// splice(2), accept4(2) and F_SETPIPE_SZ are GNU extensions (_GNU_SOURCE); prctl and syscall
// (bpf(2) has no libc wrapper) are variadic; netlink and BPF programs are built from macros.
#ifndef CEGRESS_H
#define CEGRESS_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/// splice(in, NULL, out, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK): bytes moved, 0 at EOF,
/// or -1/errno.
ssize_t cl_splice(int in, int out, size_t len);

/// accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK): the connection's fd or -1/errno.
int cl_accept_nonblock(int fd);

/// fcntl(fd, F_SETPIPE_SZ, size): the pipe's new capacity or -1/errno.
int cl_pipe_set_size(int fd, int size);

/// prctl(PR_SET_NAME, name): names the calling thread (truncated to 15 bytes) for /proc and
/// `top -H`. 0 or -1/errno.
int cl_set_thread_name(const char *name);

/// What cl_egress_netns_setup reports when a step fails.
enum cl_egress_step {
    CL_EGRESS_SETNS = 1, CL_EGRESS_LOOPBACK, CL_EGRESS_CONGESTION, CL_EGRESS_RULE, CL_EGRESS_ROUTE, CL_EGRESS_TCP, CL_EGRESS_UDP,
    CL_EGRESS_SOCKMAP, CL_EGRESS_PROGRAM, CL_EGRESS_ATTACH,
};

/// Prepares a sandbox's network namespace for the egress proxy, from a short-lived thread that
/// enters it (the caller's threads never change namespace):
/// - loopback up, and a congestion control without pacing as the namespace's default (its TCP
///   runs only over loopback, between the workload and the proxy);
/// - a routing rule sending IPv4 TCP, and only TCP, to a table whose one route makes every
///   address local (`local 0.0.0.0/0 dev lo src 127.0.0.1`): a TCP connection to anywhere is
///   delivered inside the namespace, while UDP and ICMP beyond 127.0.0.0/8 have no route;
/// - a listening TCP socket on 127.0.0.1:`proxy_port` and a UDP socket on 127.0.0.1:53, both
///   living in that namespace;
/// - an sk_lookup BPF program attached to the namespace that hands every TCP connection to an
///   address outside 127.0.0.0/8 to that listener, unchanged (its local address is the
///   destination the client dialled), and drops it when the listener is gone.
/// Returns 0 with *tcp_fd, *udp_fd and *link_fd set (CLOEXEC; the program stays attached while
/// *link_fd is open), or -1 with errno and *failed_step set (and nothing left open).
int cl_egress_netns_setup(int netns_fd, int proxy_port, int *tcp_fd, int *udp_fd, int *link_fd, int *failed_step);

/// setns(netns_fd, CLONE_NEWNET) for the calling thread only (Swift's Glibc hides setns, a GNU
/// extension). Threads it starts afterwards start in that namespace, and sockets it creates
/// live there. 0 or -1/errno.
int cl_enter_netns(int netns_fd);

/// The type of the route the kernel would use for a TCP connection from the calling thread's
/// network namespace to `address` (`family` AF_INET: 4 bytes, AF_INET6: 16, network order) on
/// `port`, as `ip route get ADDRESS ipproto tcp dport PORT` asks it (RTM_GETROUTE): RTN_UNICAST,
/// RTN_LOCAL, RTN_BROADCAST, RTN_MULTICAST ... Returns the type (>= 0); -2 with errno set to the
/// kernel's answer when it has no route (ENETUNREACH, EHOSTUNREACH, EINVAL for a blackhole ...);
/// -1 with errno when it could not be asked or its answer not read (EMFILE, EPROTO ...). One
/// netlink socket per call; the kernel answers within sendto, so this never waits.
int cl_route_type(int family, const void *address, unsigned short port);

#ifdef __cplusplus
}
#endif
#endif
