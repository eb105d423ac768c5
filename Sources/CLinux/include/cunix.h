#ifndef CLINUX_UNIX_H
#define CLINUX_UNIX_H
#include <stdint.h>
#include <sys/types.h>

// Unix stream sockets for cordond's API (sockaddr_un is awkward from Swift). All descriptors are
// close-on-exec. -1 and errno on failure; ENAMETOOLONG for a path that does not fit sun_path.

// A listening socket bound to `path` (which must not exist), created with at most `mode`'s
// permissions (narrowed by the umask as any new file's) without touching the process's umask,
// which every thread shares: the socket's own inode is given `mode` before bind, and Linux
// creates the file from it (unix_bind).
int cl_unix_listen(const char *path, int backlog, mode_t mode);
// A connected client socket.
int cl_unix_connect(const char *path);
int cl_unix_connect_timeout(const char *path, int send_ms);
// accept4 with SOCK_CLOEXEC.
int cl_unix_accept(int fd);
// The peer's credentials as of connect (SO_PEERCRED).
int cl_peer_cred(int fd, uint32_t *uid, uint32_t *gid, int32_t *pid);
// The peer's supplementary groups as of connect (SO_PEERGROUPS): the count stored, or -1
// (ERANGE when more than `max`: nothing was stored).
int cl_peer_groups(int fd, uint32_t *groups, int max);
// A TCP listener on 127.0.0.1:port (port 0: any); its port in *bound.
int cl_tcp_listen_loopback(int port, int *bound);
// Receive/send timeouts in milliseconds (0: none).
int cl_socket_timeouts(int fd, int recv_ms, int send_ms);

#endif
