// epoll: every registered target with its events mask and data.
//
// A target is a (file, fd number) pair: registered under the number the program used, even
// if that number has since been closed or given to another file (which is allowed while the
// file stays open elsewhere). Readiness is not saved: registering polls the target again, so
// a level-triggered target that is ready reports again, and an edge-triggered one that is
// ready reports one edge more than the program may have been waiting for (as after CRIU).
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>

#include "common/error.h"
#include "common/fd.h"
#include "files/event_fds.h"
#include "tracer/proc_parse.h"

namespace ckpt::files {

namespace {

// The descriptors of one process, for finding a target among them.
struct Table {
    std::map<int, const image::Fd*> by_number;
    std::vector<const image::Fd*> descriptions;  // one record per open file description
};

}  // namespace

std::vector<image::EpollTarget> dump_epoll(const image::Fd& epoll, std::string_view fdinfo,
                                           const std::vector<image::Fd>& fds) {
    std::vector<pid_t> holders{epoll.pid};  // the processes that could register its targets
    for (const auto& f : fds)
        if (f.file_id == epoll.file_id && std::find(holders.begin(), holders.end(), f.pid) == holders.end())
            holders.push_back(f.pid);
    std::map<pid_t, Table> tables;
    for (const auto& f : fds) {
        Table& t = tables[f.pid];
        t.by_number[f.fd] = &f;
        if (f.dup_of < 0) t.descriptions.push_back(&f);
    }

    std::vector<image::EpollTarget> out;
    std::map<int, uint32_t> seen;  // targets met per fd number: kcmp tells same-number targets apart by order
    for (auto line : proc::fdinfo_lines(fdinfo, "tfd:")) {
        std::string l(line);
        int tfd = -1;
        unsigned events = 0;
        unsigned long long data = 0;
        if (std::sscanf(l.c_str(), "tfd: %d events: %x data: %llx", &tfd, &events, &data) != 3)
            fail("process {} fd {} (epoll): malformed fdinfo line '{}'", epoll.pid, epoll.fd, l);
        kcmp_epoll_slot slot{static_cast<uint32_t>(epoll.fd), static_cast<uint32_t>(tfd), seen[tfd]++};
        auto is_target = [&](const image::Fd& f) {
            return ::syscall(SYS_kcmp, f.pid, epoll.pid, KCMP_EPOLL_TFD, f.fd, &slot) == 0;
        };
        const image::Fd* found = nullptr;
        for (pid_t p : holders) {
            const Table& t = tables[p];
            if (auto it = t.by_number.find(tfd); it != t.by_number.end() && is_target(*it->second)) {
                found = it->second;
                break;
            }
            for (const image::Fd* f : t.descriptions)
                if (f->fd != tfd && is_target(*f)) {
                    found = f;
                    break;
                }
            if (found) break;
        }
        if (!found) {
            for (const auto& f : fds)
                if (f.dup_of < 0 && std::find(holders.begin(), holders.end(), f.pid) == holders.end() && is_target(f))
                    fail("process {} fd {} (epoll) watches a file registered as fd {} that only process {} holds "
                         "(as fd {}), which does not hold the epoll: not supported yet",
                         epoll.pid, epoll.fd, tfd, f.pid, f.fd);
            fail("process {} fd {} (epoll) watches a file registered as fd {} that no process of the tree holds "
                 "any more (something else keeps it open): it cannot be registered again",
                 epoll.pid, epoll.fd, tfd);
        }
        image::EpollTarget t;
        t.file_id = epoll.file_id;
        t.pid = found->pid;
        t.tfd = tfd;
        t.target_file_id = found->file_id;
        t.events = events;
        t.data = data;
        out.push_back(t);
    }
    return out;
}

int open_epoll(uint32_t) {
    int fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) fail_errno("cannot create an epoll");
    return fd;
}

void register_epoll_target(int epfd, int target_fd, const image::EpollTarget& t) {
    epoll_event ev{};
    ev.events = t.events;
    ev.data.u64 = t.data;
    if (target_fd == t.tfd) {
        if (::epoll_ctl(epfd, EPOLL_CTL_ADD, t.tfd, &ev) != 0)
            fail_errno("cannot register fd {} in epoll fd {} (events {:#x})", t.tfd, epfd, t.events);
        return;
    }
    // The number it was registered under holds something else now (or nothing): the target
    // goes there for the moment of registering, and whatever was there comes back.
    UniqueFd ep;
    if (epfd == t.tfd) {
        ep.reset(::fcntl(epfd, F_DUPFD_CLOEXEC, 0));
        if (!ep) fail_errno("cannot duplicate epoll fd {}", epfd);
        epfd = ep.get();
    }
    int occupant_flags = ::fcntl(t.tfd, F_GETFD);
    UniqueFd occupant;
    if (occupant_flags >= 0) {
        occupant.reset(::fcntl(t.tfd, F_DUPFD_CLOEXEC, 0));
        if (!occupant) fail_errno("cannot set fd {} aside to register an epoll target there", t.tfd);
    }
    if (::dup2(target_fd, t.tfd) < 0) fail_errno("cannot put an epoll target at fd {}", t.tfd);
    int rc = ::epoll_ctl(epfd, EPOLL_CTL_ADD, t.tfd, &ev);
    int err = errno;
    if (occupant) {
        if (::dup2(occupant.get(), t.tfd) < 0 || ::fcntl(t.tfd, F_SETFD, occupant_flags) != 0)
            fail_errno("cannot put fd {} back after registering an epoll target there", t.tfd);
    } else {
        ::close(t.tfd);
    }
    errno = err;
    if (rc != 0)
        fail_errno("cannot register the file of fd {} as fd {} in an epoll (events {:#x})", target_fd, t.tfd, t.events);
}

}  // namespace ckpt::files
