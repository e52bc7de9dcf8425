#include "files/event_fds.h"

#include <set>

#include "common/error.h"
#include "common/fs.h"

namespace ckpt::files {

bool is_event_fd(image::FdKind k) {
    return k == image::FdKind::EventFd || k == image::FdKind::Epoll || k == image::FdKind::SignalFd ||
           k == image::FdKind::TimerFd || k == image::FdKind::Inotify;
}

void dump_event_fds(const std::vector<image::Fd>& fds, image::Image& state, const FdInfoTexts& texts) {
    std::set<uint32_t> done;
    for (const auto& f : fds) {
        if (!is_event_fd(f.kind) || !done.insert(f.file_id).second) continue;
        // A timerfd's time left is read again, next to the clock it is measured from.
        auto known = f.kind == image::FdKind::TimerFd ? texts.end() : texts.find({f.pid, f.fd});
        std::string info = known != texts.end() ? known->second : read_file(fmt::format("/proc/{}/fdinfo/{}", f.pid, f.fd));
        try {
            switch (f.kind) {
                case image::FdKind::EventFd: state.eventfds.push_back(dump_eventfd(info, f.file_id)); break;
                case image::FdKind::SignalFd: state.signalfds.push_back(dump_signalfd(info, f.file_id)); break;
                case image::FdKind::TimerFd: state.timerfds.push_back(dump_timerfd(info, f.file_id)); break;
                case image::FdKind::Inotify: {
                    auto watches = dump_inotify(f, info);
                    state.inotify_watches.insert(state.inotify_watches.end(), watches.begin(), watches.end());
                    break;
                }
                case image::FdKind::Epoll: {
                    auto targets = dump_epoll(f, info, fds);
                    state.epoll_targets.insert(state.epoll_targets.end(), targets.begin(), targets.end());
                    break;
                }
                default: break;
            }
        } catch (const Error& e) {
            if (f.kind == image::FdKind::Epoll || f.kind == image::FdKind::Inotify) throw;  // names process and fd already
            fail("process {} fd {} ({}): {}", f.pid, f.fd, f.path, e.what());
        }
    }
}

EventFds::EventFds(const image::Image& img) : img_(img) {
    for (const auto& r : img.eventfds) eventfds_[r.file_id] = &r;
    for (const auto& r : img.signalfds) signalfds_[r.file_id] = &r;
    for (const auto& r : img.timerfds) timerfds_[r.file_id] = &r;
    for (const auto& t : img.epoll_targets) targets_by_pid_.emplace(t.pid, &t);
    for (const auto& w : img.inotify_watches) watches_[w.file_id].push_back(&w);
}

int EventFds::open(const image::Fd& rec) const {
    auto state = [&](const auto& by_id) {
        auto it = by_id.find(rec.file_id);
        if (it == by_id.end()) fail("process {} fd {} ({}): the image has no record of its state", rec.pid, rec.fd, rec.path);
        return it->second;
    };
    try {
        switch (rec.kind) {
            case image::FdKind::EventFd: return open_eventfd(*state(eventfds_), rec.open_flags);
            case image::FdKind::SignalFd: return open_signalfd(*state(signalfds_), rec.open_flags);
            case image::FdKind::TimerFd: return open_timerfd(*state(timerfds_), rec.open_flags);
            case image::FdKind::Epoll: return open_epoll(rec.open_flags);
            case image::FdKind::Inotify: {
                auto it = watches_.find(rec.file_id);
                return open_inotify(rec.open_flags, it == watches_.end() ? std::vector<const image::InotifyWatch*>{} : it->second);
            }
            default: break;
        }
    } catch (const Error& e) {
        fail("process {} fd {} ({}): {}", rec.pid, rec.fd, rec.path, e.what());
    }
    fail("process {} fd {} ({}): not an event descriptor", rec.pid, rec.fd, rec.path);
}

void EventFds::register_epoll_targets(pid_t pid) const {
    auto [begin, end] = targets_by_pid_.equal_range(pid);
    if (begin == end) return;
    std::map<uint32_t, int> number_of;  // file_id -> an fd number of this process
    std::map<int, uint32_t> file_at;    // fd number -> file_id
    for (const auto& f : img_.fds) {
        if (f.pid != pid) continue;
        number_of.emplace(f.file_id, f.fd);
        file_at[f.fd] = f.file_id;
    }
    for (auto it = begin; it != end; ++it) {
        const image::EpollTarget& t = *it->second;
        auto ep = number_of.find(t.file_id);
        auto target = number_of.find(t.target_file_id);
        if (ep == number_of.end() || target == number_of.end())
            fail("process {}: an epoll target (fd {}) names descriptions the process does not hold", pid, t.tfd);
        auto at = file_at.find(t.tfd);
        int target_fd = at != file_at.end() && at->second == t.target_file_id ? t.tfd : target->second;
        try {
            register_epoll_target(ep->second, target_fd, t);
        } catch (const Error& e) {
            fail("process {} fd {} (epoll): {}", pid, ep->second, e.what());
        }
    }
}

}  // namespace ckpt::files
