// See cegress.h for why each of these is C.
#define _GNU_SOURCE
#include "cegress.h"

#include <errno.h>
#include <fcntl.h>
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
