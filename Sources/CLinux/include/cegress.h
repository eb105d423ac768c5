// CLinux egress shims. Each is C because Swift's Glibc module hides it or it is a macro:
// SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST live in netfilter headers Swift does not import;
// splice(2), accept4(2) and F_SETPIPE_SZ are GNU extensions (_GNU_SOURCE); prctl is variadic.
#ifndef CEGRESS_H
#define CEGRESS_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The destination a connection had before an nftables `redirect`/DNAT rewrote it:
/// getsockopt(SOL_IP, SO_ORIGINAL_DST) for an AF_INET socket, getsockopt(SOL_IPV6,
/// IP6T_SO_ORIGINAL_DST) for AF_INET6. Fills `out` and returns 0, or -1/errno (ENOENT when
/// conntrack has no entry for the socket).
int cl_original_dst(int fd, struct sockaddr_storage *out);

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
    CL_EGRESS_SETNS = 1, CL_EGRESS_LOOPBACK, CL_EGRESS_ROUTE, CL_EGRESS_TCP, CL_EGRESS_UDP, CL_EGRESS_NFT_SPAWN, CL_EGRESS_NFT_STATUS,
};

/// Prepares a sandbox's network namespace for the egress proxy, from a short-lived thread that
/// enters it (the caller's threads never change namespace): loopback up; a default route for
/// IPv4 through `lo` with source 127.0.0.1 (so connections to any address reach the local
/// nftables `redirect`); a listening TCP socket on 127.0.0.1:`proxy_port` and a UDP socket on
/// 127.0.0.1:53, both living in that namespace; then runs `nft -f -` (at `nft_path`, in that
/// namespace, empty environment) with `ruleset` on its stdin. Returns 0 with *tcp_fd/*udp_fd set
/// (CLOEXEC), or -1 with errno and *failed_step set (and nothing left open).
int cl_egress_netns_setup(int netns_fd, const char *nft_path, const char *ruleset, int proxy_port,
                          int *tcp_fd, int *udp_fd, int *failed_step);

#ifdef __cplusplus
}
#endif
#endif
