// An image in memory: every record of meta.img, grouped by type, in file order.
#pragma once

#include <vector>

#include "image/format.h"

namespace ckpt::image {

struct Image {
    Header header;
    std::vector<Process> processes;
    std::vector<Thread> threads;
    std::vector<Vma> vmas;
    std::vector<PageRun> page_runs;
    std::vector<Fd> fds;
    std::vector<EventFd> eventfds;
    std::vector<SignalFd> signalfds;
    std::vector<TimerFd> timerfds;
    std::vector<EpollTarget> epoll_targets;
    std::vector<FileLock> file_locks;
    End end;
};

}  // namespace ckpt::image
