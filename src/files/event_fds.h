// Event descriptors: eventfd, signalfd, timerfd, epoll and inotify, the descriptors event loops are
// made of (libuv, the Go netpoller, glib, Java NIO). Each kind has one file here holding
// its dump half (its state read from /proc/PID/fdinfo, which never consumes anything, so a
// --leave-running target goes on as before) and its restore half (a new object made with
// that state); their records are in image/format.h (EventFd, SignalFd, TimerFd,
// EpollTarget). This header is what the rest of ckpt calls.
//
// Epoll keys each target by (open file, fd number at registration). At dump every target
// line of fdinfo is matched to an open file description of the tree with
// kcmp(KCMP_EPOLL_TFD), and a process that holds both the epoll and the target is chosen to
// register it again at restore, after its fd table is in place (the epoll is the same object
// in every process that shares it, so registering once is enough).
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "image/format.h"
#include "image/image.h"

namespace ckpt::files {

bool is_event_fd(image::FdKind k);

// The fdinfo text of descriptors, by (pid, fd), read once by the dump for those that need it.
using FdInfoTexts = std::map<std::pair<pid_t, int>, std::string>;

// The state records of every event descriptor of `fds` (every process of the tree, file_ids
// assigned), one per open file description, into `state`'s eventfds, signalfds, timerfds,
// epoll_targets and inotify_watches. Refuses (ckpt::Error naming process and fd) an epoll target that no process
// holding the epoll holds.
// `texts` has the fdinfo of some of them already.
void dump_event_fds(const std::vector<image::Fd>& fds, image::Image& state, const FdInfoTexts& texts);

// Restore: the records of an image, found by file_id.
class EventFds {
  public:
    explicit EventFds(const image::Image& img);

    // A new open file description for an Fd record of an event kind, with its state (an epoll
    // comes back empty: register_epoll_targets fills it). The caller owns the fd (O_CLOEXEC).
    int open(const image::Fd& rec) const;

    // Registers the epoll targets process `pid` is in charge of. Its fd table must be in
    // place (every image fd at its number); descriptors at numbers the image leaves free
    // may be ckpt's own and are put back as they were.
    void register_epoll_targets(pid_t pid) const;

  private:
    const image::Image& img_;
    std::map<uint32_t, const image::EventFd*> eventfds_;
    std::map<uint32_t, const image::SignalFd*> signalfds_;
    std::map<uint32_t, const image::TimerFd*> timerfds_;
    std::multimap<pid_t, const image::EpollTarget*> targets_by_pid_;
    std::map<uint32_t, std::vector<const image::InotifyWatch*>> watches_;
};

// The halves of each kind (eventfd.cpp, signalfd.cpp, timerfd.cpp, epoll.cpp).
image::EventFd dump_eventfd(std::string_view fdinfo, uint32_t file_id);
int open_eventfd(const image::EventFd& rec, uint32_t open_flags);
image::SignalFd dump_signalfd(std::string_view fdinfo, uint32_t file_id);
int open_signalfd(const image::SignalFd& rec, uint32_t open_flags);
image::TimerFd dump_timerfd(std::string_view fdinfo, uint32_t file_id);
int open_timerfd(const image::TimerFd& rec, uint32_t open_flags);
// `epoll` is one record of the epoll's description; `fds` every record of the tree.
std::vector<image::EpollTarget> dump_epoll(const image::Fd& epoll, std::string_view fdinfo,
                                           const std::vector<image::Fd>& fds);
int open_epoll(uint32_t open_flags);
std::vector<image::InotifyWatch> dump_inotify(const image::Fd& inotify, std::string_view fdinfo);
int open_inotify(uint32_t open_flags, std::vector<const image::InotifyWatch*> watches);
// Registers `t` in the epoll at fd `epfd` of the calling process; `target_fd` holds the
// target's description (maybe at another number than t.tfd).
void register_epoll_target(int epfd, int target_fd, const image::EpollTarget& t);

}  // namespace ckpt::files
