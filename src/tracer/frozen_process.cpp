#include "tracer/frozen_process.h"

#include <dirent.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "common/error.h"
#include "common/fs.h"
#include "common/interrupt.h"
#include "common/log.h"
#include "tracer/proc_parse.h"
#include "tracer/ptrace.h"

namespace ckpt::tracer {

namespace {

constexpr long kSeizeOptions = PTRACE_O_TRACESYSGOOD | PTRACE_O_SUSPEND_SECCOMP;

std::vector<pid_t> list_tasks(pid_t pid) {
    std::string dir = fmt::format("/proc/{}/task", pid);
    DIR* d = ::opendir(dir.c_str());
    if (!d) fail_errno("cannot list threads of process {}", pid);
    std::vector<pid_t> out;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        out.push_back(static_cast<pid_t>(std::atoi(e->d_name)));
    }
    ::closedir(d);
    // The leader first: images and restore rely on thread 0 being the process itself.
    std::sort(out.begin(), out.end(), [pid](pid_t a, pid_t b) {
        return (a == pid) != (b == pid) ? a == pid : a < b;
    });
    return out;
}

// A thread that exited between the listing and the seize: gone, or a zombie waiting for
// the process (ptrace refuses to attach to those with EPERM). Such a thread is simply not
// part of the image.
bool thread_gone(pid_t pid, pid_t tid) {
    try {
        char st = proc::parse_status(read_file(fmt::format("/proc/{}/task/{}/status", pid, tid))).state;
        return st == 'Z' || st == 'X';
    } catch (const Error&) {
        return true;
    }
}

void check_dumpable(pid_t pid) {
    std::string stat_text;
    try {
        stat_text = read_file(fmt::format("/proc/{}/stat", pid));
    } catch (const Error&) {
        fail("no process with pid {}", pid);
    }
    if (pid == ::getpid()) fail("pid {} is ckpt itself", pid);
    // Field 9 is the task flags: PF_KTHREAD (0x00200000) marks kernel threads.
    auto close = stat_text.rfind(')');
    std::string_view rest(stat_text);
    rest.remove_prefix(close + 2);
    unsigned long flags = 0;
    for (int field = 3; field <= 9; ++field) {
        auto sp = rest.find(' ');
        if (field == 9) flags = std::stoul(std::string(rest.substr(0, sp)));
        rest.remove_prefix(sp + 1);
    }
    if (flags & 0x00200000) fail("pid {} is a kernel thread and cannot be checkpointed", pid);
    auto status = proc::parse_status(read_file(fmt::format("/proc/{}/status", pid)));
    if (status.state == 'Z') fail("pid {} is a zombie", pid);
    if (status.tracer_pid != 0)
        fail("pid {} is already traced by pid {} (a debugger?)", pid, status.tracer_pid);
}

}  // namespace

FrozenProcess::FrozenProcess(pid_t pid) : pid_(pid) {
    check_dumpable(pid);
    try {
        // Threads may be created while we freeze: repeat until a listing brings nothing new.
        std::set<pid_t> seen;
        for (;;) {
            std::vector<pid_t> fresh;
            for (pid_t tid : list_tasks(pid))
                if (!seen.count(tid)) fresh.push_back(tid);
            if (fresh.empty()) break;
            for (pid_t tid : fresh) {
                seen.insert(tid);
                char state = '?';
                try {
                    state = proc::parse_status(read_file(
                                fmt::format("/proc/{}/task/{}/status", pid, tid))).state;
                } catch (const Error&) {
                    continue;  // exited meanwhile
                }
                if (::ptrace(PTRACE_SEIZE, tid, nullptr, kSeizeOptions) != 0) {
                    if (errno == ESRCH || (errno == EPERM && thread_gone(pid, tid))) continue;
                    fail_errno("cannot seize thread {} of process {}", tid, pid);
                }
                threads_.push_back({tid, state});
                // ESRCH: it is exiting; wait_frozen() collects its exit.
                if (::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0 && errno != ESRCH)
                    fail_errno("cannot interrupt thread {}", tid);
            }
            for (size_t i = 0; i < threads_.size(); ++i) {
                if (std::find(fresh.begin(), fresh.end(), threads_[i].tid) != fresh.end())
                    wait_frozen(threads_[i].tid);
            }
        }
        if (threads_.empty() || threads_.front().tid != pid)
            fail("process {} exited while being frozen", pid);
    } catch (...) {
        release();
        throw;
    }
    log::debug("froze process {} with {} threads", pid, threads_.size());
}

void FrozenProcess::wait_frozen(pid_t tid) {
    for (;;) {
        // A thread in vfork() waits for its child's exec or exit in a sleep that
        // PTRACE_INTERRUPT does not break: do not wait for it for ever.
        StopStatus st = wait_tid_for(tid, 10000);
        if (st.timed_out)
            fail("thread {} of process {} did not stop within 10 s (a vfork() waiting for its child's exec?)", tid,
                 pid_);
        interrupt::check();
        if (st.exited) {
            std::erase_if(threads_, [&](const FrozenThread& t) { return t.tid == tid; });
            if (tid == pid_) fail("process {} exited while being frozen", pid_);
            return;
        }
        if (st.event() == PTRACE_EVENT_STOP) return;  // interrupt stop or group stop
        // A signal arrived before our interrupt: let it be delivered as it would have been;
        // the pending interrupt stops the thread right after.
        resume(tid, PTRACE_CONT, st.signal());
    }
}

FrozenProcess::~FrozenProcess() { release(); }

void FrozenProcess::release() {
    if (released_) return;
    released_ = true;
    if (kill_) {
        // Wait until every thread is really gone, so the pid is free for a restore as soon
        // as the parent reaps it.
        ::kill(pid_, SIGKILL);
        // The leader is reported only after every other thread: wait for it last.
        for (auto it = threads_.rbegin(); it != threads_.rend(); ++it) {
            auto& t = *it;
            for (;;) {
                int st;
                pid_t r = ::waitpid(t.tid, &st, __WALL);
                if (r < 0 && errno == EINTR) continue;  // ckpt's own SIGINT etc.: keep going
                if (r != t.tid || WIFEXITED(st) || WIFSIGNALED(st)) break;
                ::ptrace(PTRACE_CONT, t.tid, nullptr, nullptr);
            }
        }
        return;
    }
    for (auto& t : threads_) {
        if (::ptrace(PTRACE_DETACH, t.tid, nullptr, nullptr) != 0 && errno != ESRCH)
            log::error("cannot detach thread {}: {}", t.tid, errno_text(errno));
    }
}

void return_to_interrupt_stop(pid_t tid) {
    if (::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0)
        fail_errno("cannot interrupt thread {}", tid);
    resume(tid, PTRACE_CONT);
    for (;;) {
        StopStatus st = wait_tid(tid);
        if (st.exited) fail("thread {} exited during cure", tid);
        if (st.event() == PTRACE_EVENT_STOP) return;
        // Nothing else should arrive: every signal is blocked while we work.
        resume(tid, PTRACE_CONT, st.syscall_stop() ? 0 : st.signal());
    }
}

}  // namespace ckpt::tracer
