// CLinux event-loop shims, for CordonSystem's EventLoop. C because Swift's Glibc module has
// neither <sys/epoll.h> nor <sys/eventfd.h>, and because
// `struct epoll_event` is packed on x86_64 (12 bytes), a layout Swift cannot declare: the ready
// list is copied into an unpacked struct here.
#ifndef CLOOP_H
#define CLOOP_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// One ready descriptor: the token it was registered with and the EPOLL* bits reported.
struct cl_ready {
    uint64_t token;
    uint32_t events;
};

/// The EPOLL* bits the loop uses (the header's enum is not importable either).
enum {
    CL_EPOLLIN = 0x001, CL_EPOLLOUT = 0x004, CL_EPOLLERR = 0x008, CL_EPOLLHUP = 0x010,
};

/// epoll_create1(EPOLL_CLOEXEC): the epoll fd or -1/errno.
int cl_epoll_create(void);
/// epoll_ctl(epfd, EPOLL_CTL_ADD / _MOD / _DEL, fd, {events, .data.u64 = token}) for op 0 / 1 / 2
/// (level-triggered: no EPOLLET is ever added). 0 or -1/errno.
int cl_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t token);
/// epoll_wait into `ready` (at most `max`, at most 256): the count, 0 on timeout, or -1/errno.
int cl_epoll_wait(int epfd, struct cl_ready *ready, int max, int timeout_ms);

/// eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK): the fd or -1/errno.
int cl_eventfd(void);


#ifdef __cplusplus
}
#endif
#endif
