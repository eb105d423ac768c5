// See cloop.h for why these are C.
#include "cloop.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

_Static_assert(CL_EPOLLIN == EPOLLIN && CL_EPOLLOUT == EPOLLOUT && CL_EPOLLERR == EPOLLERR && CL_EPOLLHUP == EPOLLHUP,
               "EPOLL* bits");

int cl_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int cl_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t token) {
    static const int ops[] = {EPOLL_CTL_ADD, EPOLL_CTL_MOD, EPOLL_CTL_DEL};
    if (op < 0 || op > 2) {
        errno = EINVAL;
        return -1;
    }
    struct epoll_event event = {.events = events, .data.u64 = token};
    return epoll_ctl(epfd, ops[op], fd, &event);
}

int cl_epoll_wait(int epfd, struct cl_ready *ready, int max, int timeout_ms) {
    struct epoll_event events[256];
    if (max > 256) max = 256;
    if (max < 1) {
        errno = EINVAL;
        return -1;
    }
    int n = epoll_wait(epfd, events, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        ready[i].token = events[i].data.u64;
        ready[i].events = events[i].events;
    }
    return n;
}

int cl_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }
