/* Benchmark target: NFDS descriptors of mixed kinds: a quarter eventfds, a quarter timerfds
 * (armed, 1000 s), one epoll watching half of them (eventfds and timerfds alternately, up
 * to NFDS/2 targets), the rest eventfds again. Creates READY_FILE, then sleeps.
 * usage: fds NFDS READY_FILE */
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <unistd.h>

int main(int argc, char** argv) {
    if (argc != 3) return 2;
    int n = atoi(argv[1]);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < (rlim_t)n + 16) return 3;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) return 1;
    struct itimerspec its = {{0, 0}, {1000, 0}};
    int targets = 0;
    for (int i = 1; i < n; ++i) {
        int fd = (i % 4 == 1) ? timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC) : eventfd((unsigned)i, EFD_CLOEXEC);
        if (fd < 0) return 1;
        if (i % 4 == 1 && timerfd_settime(fd, 0, &its, NULL) != 0) return 1;
        if (targets < n / 2 && i % 2 == 1) {
            struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (unsigned)i};
            if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) return 1;
            ++targets;
        }
    }
    FILE* f = fopen(argv[2], "w");
    if (!f) return 1;
    fclose(f);
    for (;;) pause();
}
