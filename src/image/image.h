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
    std::vector<InotifyWatch> inotify_watches;
    std::vector<Memfd> memfds;
    std::vector<SysvShm> sysv_shms;
    std::vector<UnixSocket> unix_sockets;
    std::vector<InetSocket> inet_sockets;
    std::vector<Pty> ptys;
    End end;
};

// The vectors of records that describe kernel objects beyond processes, memory and fds, with
// their names in `ckpt info --json`: the one list the dump writes, the reader fills and info
// shows, so a new kind of record cannot be collected and then forgotten by one of them.
template <typename ImageT, typename F>
void for_each_object_records(ImageT& img, F&& f) {
    f("eventfds", img.eventfds);
    f("signalfds", img.signalfds);
    f("timerfds", img.timerfds);
    f("epoll_targets", img.epoll_targets);
    f("inotify_watches", img.inotify_watches);
    f("memfds", img.memfds);
    f("sysv_shms", img.sysv_shms);
    f("unix_sockets", img.unix_sockets);
    f("inet_sockets", img.inet_sockets);
    f("ptys", img.ptys);
    f("file_locks", img.file_locks);
}

}  // namespace ckpt::image
