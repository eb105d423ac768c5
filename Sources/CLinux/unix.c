#define _GNU_SOURCE
#include "cunix.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static int fill_address(struct sockaddr_un *addr, const char *path) {
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof addr->sun_path) { errno = ENAMETOOLONG; return -1; }
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    memcpy(addr->sun_path, path, n + 1);
    return 0;
}

int cl_unix_listen(const char *path, int backlog, mode_t mode) {
    struct sockaddr_un addr;
    if (fill_address(&addr, path) != 0) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (fchmod(fd, mode & 0777) != 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, backlog) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int cl_unix_connect(const char *path) { return cl_unix_connect_timeout(path, 0); }

/* send_ms > 0: SO_SNDTIMEO before connect, so that neither a connect to a listener whose
   backlog is full nor a send to a peer that stopped reading blocks for ever. */
int cl_unix_connect_timeout(const char *path, int send_ms) {
    struct sockaddr_un addr;
    if (fill_address(&addr, path) != 0) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (send_ms > 0) {
        struct timeval s = { send_ms / 1000, (send_ms % 1000) * 1000 };
        if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &s, sizeof s) != 0) {
            int saved = errno;
            close(fd);
            errno = saved;
            return -1;
        }
    }
    int rc;
    do { rc = connect(fd, (struct sockaddr *)&addr, sizeof addr); } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int cl_unix_accept(int fd) {
    int c;
    do { c = accept4(fd, NULL, NULL, SOCK_CLOEXEC); } while (c < 0 && errno == EINTR);
    return c;
}

int cl_peer_cred(int fd, uint32_t *uid, uint32_t *gid, int32_t *pid) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -1;
    *uid = cred.uid;
    *gid = cred.gid;
    *pid = cred.pid;
    return 0;
}

int cl_peer_groups(int fd, uint32_t *groups, int max) {
    socklen_t len = (socklen_t)(max * (int)sizeof(gid_t));
    // ERANGE: the buffer was too small and the kernel copied nothing (-1, errno ERANGE): the
    // caller must not read the buffer.
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) != 0) return -1;
    return (int)(len / sizeof(gid_t));
}

int cl_tcp_listen_loopback(int port, int *bound) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 64) != 0
        || getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    *bound = ntohs(addr.sin_port);
    return fd;
}

int cl_socket_timeouts(int fd, int recv_ms, int send_ms) {
    struct timeval r = { recv_ms / 1000, (recv_ms % 1000) * 1000 };
    struct timeval s = { send_ms / 1000, (send_ms % 1000) * 1000 };
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &r, sizeof r) != 0) return -1;
    return setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &s, sizeof s);
}
