// CLinux egress shims. Each is C because Swift's Glibc module hides it or it is a macro:
// SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST live in netfilter headers Swift does not import;
// splice(2), accept4(2) and F_SETPIPE_SZ are GNU extensions (_GNU_SOURCE).
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

#ifdef __cplusplus
}
#endif
#endif
