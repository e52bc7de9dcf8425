#include "tracer/frozen_tree.h"

#include <dirent.h>
#include <signal.h>
#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <chrono>
#include <sstream>

#include "common/error.h"
#include "common/interrupt.h"
#include "common/fs.h"
#include "common/log.h"
#include "tracer/proc_parse.h"

namespace ckpt::tracer {

namespace {

// Children hang off the thread that forked them: the union over every thread.
std::vector<pid_t> children_of(pid_t pid) {
    std::set<pid_t> out;
    std::string dir = fmt::format("/proc/{}/task", pid);
    DIR* d = ::opendir(dir.c_str());
    // Frozen processes do not go away: missing children would be left out of the image.
    if (!d) fail_errno("cannot list the threads of process {} to find its children", pid);
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        std::string text;
        try {
            text = read_file(fmt::format("{}/{}/children", dir, e->d_name));
        } catch (const Error&) {
            continue;  // a thread that exited meanwhile
        }
        std::istringstream in(text);
        pid_t c;
        while (in >> c) out.insert(c);
    }
    ::closedir(d);
    return {out.begin(), out.end()};
}

// A vfork() parent waits for its child's exec or exit in a sleep that ptrace cannot
// interrupt: freezing it would hang until then. Found before the parent is seized. The
// usual vfork child (posix_spawn in gcc, make, shells) execs within microseconds: it is
// given kVforkWait to do so, and only one that stays longer refuses the dump.
constexpr auto kVforkWait = std::chrono::milliseconds(500);

void refuse_vfork(pid_t pid) {
    auto vforked = [&]() -> pid_t {
        for (pid_t c : children_of(pid))
            if (::syscall(SYS_kcmp, pid, c, KCMP_VM, 0, 0) == 0) return c;
        return 0;
    };
    const auto until = std::chrono::steady_clock::now() + kVforkWait;
    for (pid_t c = vforked(); c != 0; c = vforked()) {
        if (std::chrono::steady_clock::now() >= until)
            fail("process {} is a vfork() child of process {} that has not called exec yet (they share "
                 "their memory): not supported yet", c, pid);
        interrupt::check();
        ::usleep(1000);
    }
}

std::optional<proc::Stat> stat_of(pid_t pid) {
    try {
        return proc::parse_stat(read_file(fmt::format("/proc/{}/stat", pid)));
    } catch (const Error&) {
        return std::nullopt;
    }
}

}  // namespace

FrozenTree::FrozenTree(pid_t root) : root_(root) {
    try {
        refuse_vfork(root);
        procs_.push_back(std::make_unique<FrozenProcess>(root));
        order_.emplace_back(root, 0);
        // A frozen process forks no more, but a subreaper in the tree may still be handed
        // orphans: repeat until one pass over every frozen process finds nobody new.
        for (bool changed = true; changed;) {
            changed = false;
            for (size_t i = 0; i < procs_.size(); ++i) {
                pid_t parent = procs_[i]->pid();
                for (pid_t c : children_of(parent)) {
                    if (contains(c)) continue;
                    add(c, parent);
                    changed = true;
                }
            }
        }
    } catch (...) {
        release();
        throw;
    }
    // Depth first, children by pid: a parent always comes before its children.
    std::map<pid_t, std::vector<pid_t>> kids;
    for (const auto& [p, pp] : order_)
        if (p != root_) kids[pp].push_back(p);
    std::vector<std::pair<pid_t, pid_t>> sorted;
    std::function<void(pid_t, pid_t)> walk = [&](pid_t p, pid_t pp) {
        sorted.emplace_back(p, pp);
        auto& ks = kids[p];
        std::sort(ks.begin(), ks.end());
        for (pid_t k : ks) walk(k, p);
    };
    walk(root_, 0);
    order_ = std::move(sorted);
    std::vector<std::unique_ptr<FrozenProcess>> procs;
    for (const auto& [p, pp] : order_) {
        auto it = std::find_if(procs_.begin(), procs_.end(), [p](const auto& f) { return f && f->pid() == p; });
        if (it != procs_.end()) procs.push_back(std::move(*it));
    }
    procs_ = std::move(procs);
    log::debug("froze a tree of {} processes and {} zombies under {}", procs_.size(), zombies_.size(), root_);
}

void FrozenTree::add(pid_t pid, pid_t parent) {
    auto zombie = [&](const proc::Stat& st) {
        zombies_.push_back({pid, st.ppid, st.pgrp, st.session, st.exit_signal, st.exit_code, st.comm});
        order_.emplace_back(pid, parent);
    };
    auto st = stat_of(pid);
    if (!st) return;  // gone (reaped) before we looked
    if (st->state == 'Z' || st->state == 'X') {
        // /proc shows a process whose main thread exited as a zombie while others still run.
        std::string dir = fmt::format("/proc/{}/task", pid);
        if (DIR* d = ::opendir(dir.c_str())) {
            size_t live = 0;
            while (dirent* e = ::readdir(d)) {
                if (e->d_name[0] == '.') continue;
                auto t = stat_of(static_cast<pid_t>(std::atoi(e->d_name)));
                if (t && t->state != 'Z' && t->state != 'X') ++live;
            }
            ::closedir(d);
            if (live > 0)
                fail("process {}: its main thread has exited while {} other thread(s) still run: not supported yet",
                     pid, live);
        }
        return zombie(*st);
    }
    refuse_vfork(pid);
    try {
        procs_.push_back(std::make_unique<FrozenProcess>(pid));
    } catch (const Error&) {
        // It may have exited between the listing and the seize.
        auto again = stat_of(pid);
        if (!again) return;
        if (again->state == 'Z' || again->state == 'X') return zombie(*again);
        throw;
    }
    order_.emplace_back(pid, parent);
}

bool FrozenTree::contains(pid_t pid) const {
    return std::any_of(order_.begin(), order_.end(), [pid](const auto& e) { return e.first == pid; });
}

std::vector<pid_t> FrozenTree::pids() const {
    std::vector<pid_t> out;
    for (const auto& e : order_) out.push_back(e.first);
    return out;
}

void FrozenTree::kill_on_release() {
    kill_ = true;
    for (auto& p : procs_) p->kill_on_release();
}

void FrozenTree::release() {
    // All at once, while every process is still frozen: if ckpt dies meanwhile, none of
    // them runs on beside a complete image.
    if (released_) return;
    released_ = true;
    if (kill_)
        for (auto& p : procs_) ::kill(p->pid(), SIGKILL);
    // Leaves first: a parent released before its children could run and see them frozen.
    for (auto it = procs_.rbegin(); it != procs_.rend(); ++it) (*it)->release();
}

FrozenTree::~FrozenTree() { release(); }

}  // namespace ckpt::tracer
