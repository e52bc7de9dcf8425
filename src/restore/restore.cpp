#include "restore/restore.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asm/unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>
#include <map>
#include <filesystem>

#include "cgroups/cgroups.h"
#include "common/cpu.h"
#include "common/error.h"
#include "common/fd.h"
#include "common/fs.h"
#include "common/log.h"
#include "image/reader.h"
#include "restore/pid_in_use.h"
#include "restore/file_check.h"
#include "restore/process_attrs.h"
#include "restore/restore_files.h"
#include "restore/restorer_args.h"
#include "tracer/ptrace.h"
#include "tracer/remote_syscall.h"

extern "C" {
extern const ptrdiff_t __rseq_offset;
extern const unsigned int __rseq_size;
}

namespace ckpt::restore {

namespace {

using Clock = std::chrono::steady_clock;

const char* step_name(int32_t s) {
    using namespace restorer;
    switch (s) {
        case kStepBlockSignals: return "blocking signals";
        case kStepRseqUnregister: return "unregistering ckpt's rseq";
        case kStepUnmapOld: return "unmapping ckpt";
        case kStepMoveVdso: return "moving the vDSO";
        case kStepMapVma: return "mapping a VMA";
        case kStepAdvise: return "applying madvise flags";
        case kStepReadPages: return "reading pages";
        case kStepProtect: return "setting protections";
        case kStepCloseFds: return "closing descriptors";
        case kStepMm: return "restoring mm fields (PR_SET_MM_MAP)";
        case kStepSigaction: return "restoring a signal handler";
        case kStepItimer: return "restoring an interval timer";
        case kStepCreds: return "restoring credentials";
        case kStepThreadState: return "restoring thread state";
        case kStepRseq: return "registering rseq";
        case kStepPending: return "queueing pending signals";
        case kStepSigreturn: return "rt_sigreturn";
        case kStepNoNewPrivs: return "setting no_new_privs";
        case kStepRlimit: return "restoring a resource limit (raising a hard limit needs CAP_SYS_RESOURCE)";
        default: return "starting";
    }
}

// Moves fd above `floor`, keeping it close-on-exec; returns the new number.
int lift_fd(int fd, int floor) {
    int nfd = ::fcntl(fd, F_DUPFD_CLOEXEC, floor);
    if (nfd < 0) fail_errno("cannot move descriptor {} above {}", fd, floor);
    ::close(fd);
    return nfd;
}

struct ChildSetup {
    const image::Image* img;
    const image::Process* proc;
    RestoreOptions opts;
    int err_w, go_r;
};

// Where the child reports errors; it moves when descriptors are rearranged.
int child_err_fd = -1;

// Runs in the child that has the dumped PID. Never returns: it jumps into the restorer.
[[noreturn]] void child_main(const ChildSetup& s) {
    child_err_fd = s.err_w;
    try {
        char go;
        if (::read(s.go_r, &go, 1) != 1) _exit(1);  // parent died before seizing us
        ::close(s.go_r);
        const image::Image& img = *s.img;
        const image::Process& proc = *s.proc;
        const int pid = proc.pid;

        if (::personality(proc.personality) < 0) fail_errno("cannot set personality {:#x}", proc.personality);
        if (!s.opts.shell_job) {
            if (proc.sid == pid) {
                if (::setsid() < 0) fail_errno("cannot become a session leader");
            } else if (proc.pgid == pid) {
                if (::setpgid(0, 0) < 0) fail_errno("cannot make a process group");
            }
        }
        restore_attrs_in_child(proc);

        // Everything ckpt still needs goes above the numbers the program uses.
        int floor = std::max(max_image_fd(img, pid) + 1, 3);
        int err_w = lift_fd(s.err_w, floor);
        child_err_fd = err_w;
        int data_fd = lift_fd(image::open_data(s.opts.dir).release(), floor);
        int shell_tty = -1;
        if (s.opts.shell_job) {
            for (int fd = 0; fd <= 2 && shell_tty < 0; ++fd)
                if (::isatty(fd)) shell_tty = ::fcntl(fd, F_DUPFD_CLOEXEC, floor);
            if (shell_tty < 0) fail("--shell-job: ckpt is not attached to a terminal");
        }
        int exe_fd = ::open(proc.exe_path.c_str(), O_RDONLY | O_CLOEXEC);
        if (exe_fd < 0) fail_errno("cannot open the executable {}", proc.exe_path);
        exe_fd = lift_fd(exe_fd, floor);

        FilesOptions fo{s.opts.dir, s.opts.shell_job, shell_tty, data_fd};
        UnlinkedFiles unlinked(img, pid, fo);  // deleted files, for mappings and fds alike
        std::vector<int> vma_fds;
        std::vector<int> close_fds = {data_fd, exe_fd, err_w};
        std::map<std::string, int> opened;
        for (const auto& v : img.vmas) {
            if (v.pid != pid) continue;
            if (v.kind != image::VmaKind::File) {
                vma_fds.push_back(-1);
                continue;
            }
            // A shared mapping of a file opened for writing ("mw", VM_MAYWRITE) must stay
            // mprotect()able to PROT_WRITE even if it is read-only now.
            bool may_write = (" " + v.vmflags + " ").find(" mw ") != std::string::npos;
            bool rw = (v.flags & MAP_SHARED) && ((v.prot & PROT_WRITE) || may_write);
            std::string key = v.unlinked ? fmt::format("\2{}:{}:{}", v.file.dev, v.file.ino, v.path)
                                         : v.path + (rw ? "\1" : "");
            auto it = opened.find(key);
            if (it == opened.end()) {
                int fd = v.unlinked ? unlinked.open_mapping(v)
                                    : ::open(v.path.c_str(), (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
                if (fd < 0) fail_errno("cannot open mapped file {}", v.path);
                fd = lift_fd(fd, floor);
                close_fds.push_back(fd);
                it = opened.emplace(key, fd).first;
            }
            vma_fds.push_back(it->second);
        }
        if (shell_tty >= 0) close_fds.push_back(shell_tty);

        // Close everything else, then open the program's descriptors at their numbers.
        for (int fd = 0; fd < floor; ++fd) ::close(fd);
        std::vector<int> keep = close_fds;
        for (int fd : unlinked.held_fds()) keep.push_back(fd);
        std::sort(keep.begin(), keep.end());
        int next = floor;
        for (int k : keep) {
            if (k > next) ::syscall(SYS_close_range, next, k - 1, 0);
            next = k + 1;
        }
        ::syscall(SYS_close_range, next, ~0u, 0);

        restore_fd_table(img, pid, fo, unlinked);
        if (proc.root != "/") fail("restoring a process with a changed root ({}) is not supported yet", proc.root);
        if (::chdir(proc.cwd.c_str()) != 0) fail_errno("cannot change to working directory {}", proc.cwd);
        ::umask(proc.umask);

        RegionInputs in;
        in.img = &img;
        in.pid = pid;
        in.data_fd = data_fd;
        in.exe_fd = exe_fd;
        in.vma_fds = vma_fds;
        in.close_fds = close_fds;
        in.vdso = find_current_vdso();
        Region reg = build_region(in);
        auto* rseq_area = reinterpret_cast<char*>(__builtin_thread_pointer()) + __rseq_offset;
        reg.args->old_rseq_addr = __rseq_size ? reinterpret_cast<uint64_t>(rseq_area) : 0;
        reg.args->old_rseq_len = __rseq_size < 32 ? 32 : __rseq_size;
        reg.args->old_rseq_sig = 0x53053053;  // glibc's RSEQ_SIG on x86

        char note[9] = {'R'};
        uint64_t args_addr = reinterpret_cast<uint64_t>(reg.args);
        std::memcpy(note + 1, &args_addr, 8);
        if (::write(err_w, note, sizeof note) != sizeof note) fail_errno("cannot report to ckpt");

        // No way back from here: the stub owns the process.
        asm volatile(
            "mov %0, %%rsp\n"
            "jmp *%1\n"
            :
            : "r"(reg.stack_top), "r"(reg.entry), "D"(reg.args)
            : "memory");
        __builtin_unreachable();
    } catch (const std::exception& e) {
        std::string msg = std::string("E") + e.what();
        [[maybe_unused]] auto n = ::write(child_err_fd, msg.data(), msg.size());
        ::_exit(1);
    }
}

pid_t clone_with_pid(pid_t pid) {
    clone_args args{};
    args.exit_signal = SIGCHLD;
    uint64_t tid = static_cast<uint64_t>(pid);
    args.set_tid = reinterpret_cast<uint64_t>(&tid);
    args.set_tid_size = 1;
    long r = ::syscall(SYS_clone3, &args, sizeof args);
    if (r < 0) {
        if (errno == EEXIST) fail("{}: cannot restore with the same pid", pid_in_use(pid));
        fail_errno("cannot create a process with pid {}", pid);
    }
    return static_cast<pid_t>(r);
}

// Owns the half-restored child: unless released, it is killed and reaped.
class ChildGuard {
  public:
    explicit ChildGuard(pid_t pid) : pid_(pid) {}
    ~ChildGuard() {
        if (pid_ <= 0) return;
        // A process already exiting drops SIGKILL, and one held in a ptrace stop stays
        // there: kill, then keep letting it go until it is reaped.
        ::kill(pid_, SIGKILL);
        ::ptrace(PTRACE_CONT, pid_, nullptr, nullptr);
        int st;
        for (;;) {
            pid_t r = ::waitpid(pid_, &st, __WALL);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0 || WIFEXITED(st) || WIFSIGNALED(st)) break;
            ::ptrace(PTRACE_CONT, pid_, nullptr, nullptr);
        }
    }
    void release() { pid_ = -1; }

  private:
    pid_t pid_;
};

// The child writes 'R' + the stub's args address just before jumping into the stub, or
// 'E' + a message if it fails before that.
std::string read_child_message(int err_r, uint64_t& remote_args) {
    std::string msg;
    char buf[512];
    ssize_t n;
    int fl = ::fcntl(err_r, F_GETFL);
    ::fcntl(err_r, F_SETFL, fl | O_NONBLOCK);
    while ((n = ::read(err_r, buf, sizeof buf)) > 0) msg.append(buf, static_cast<size_t>(n));
    if (!msg.empty() && msg[0] == 'R' && msg.size() >= 9) {
        std::memcpy(&remote_args, msg.data() + 1, 8);
        return {};
    }
    if (!msg.empty() && msg[0] == 'E') return msg.substr(1);
    return msg;
}

[[noreturn]] void report_exit(pid_t pid, const std::string& msg, uint64_t remote_args) {
    if (!msg.empty()) fail("restore of pid {} failed: {}", pid, msg);
    if (remote_args) {
        // At the exit stop the process's memory is still there: read what the stub recorded.
        restorer::RestorerArgs a;
        bool ok = true;
        try {
            tracer::read_mem(pid, remote_args, &a, sizeof a);
        } catch (const Error&) {
            ok = false;
        }
        if (ok)
            fail("restore of pid {} failed while {} (at {:#x}): {}", pid, step_name(a.failed_step),
                 a.failed_detail, errno_text(static_cast<int>(-a.failed_errno)));
    }
    fail("restore of pid {} failed: the new process exited early", pid);
}

void apply_from_outside(const image::Image& img, pid_t pid) {
    for (const auto& t : img.threads) {
        if (t.pid != pid) continue;
        if (t.affinity.size() == sizeof(cpu_set_t)) {
            cpu_set_t set;
            std::memcpy(&set, t.affinity.data(), sizeof set);
            if (::sched_setaffinity(t.tid, sizeof set, &set) != 0)
                log::error("cannot restore CPU affinity of thread {}: {}", t.tid, errno_text(errno));
        }
        sched_param sp{};
        sp.sched_priority = t.sched_priority;
        if (::sched_setscheduler(t.tid, t.sched_policy, &sp) != 0)
            log::error("cannot restore scheduling policy of thread {}: {}", t.tid, errno_text(errno));
        if (::setpriority(PRIO_PROCESS, static_cast<id_t>(t.tid), t.nice) != 0)
            log::error("cannot restore nice value of thread {}: {}", t.tid, errno_text(errno));
    }
}

}  // namespace

int restore(const RestoreOptions& opts) {
    auto t0 = Clock::now();
    image::Image img = image::read_image(opts.dir);
    image::verify_data(opts.dir, img);
    if (img.processes.size() != 1) fail("images of process trees are not supported yet");
    const image::Process& proc = img.processes.front();
    const pid_t pid = proc.pid;
    std::vector<pid_t> tids;
    for (const auto& t : img.threads)
        if (t.pid == pid) tids.push_back(t.tid);
    if (tids.empty() || tids.front() != pid) fail("image of pid {} has no main thread", pid);
    for (pid_t tid : tids)
        if (tid != pid && ::kill(tid, 0) == 0)
            fail("{} (a thread of pid {}): cannot restore with the same ids",
                 pid_in_use(tid, "thread id"), pid);
    if ((img.header.xfeatures & ~read_xcr0()) != 0)
        fail("this CPU lacks register state the image has (xfeatures {:#x}, CPU {:#x})",
             img.header.xfeatures, read_xcr0());
    check_vdso_compatible(img, pid, find_current_vdso());
    if (::kill(pid, 0) == 0 || errno != ESRCH)
        fail("{}: cannot restore with the same pid", pid_in_use(pid));

    check_files(img, opts.allow_changed_files);

    int err_pipe[2], go_pipe[2];
    if (::pipe2(err_pipe, O_CLOEXEC) != 0 || ::pipe2(go_pipe, O_CLOEXEC) != 0) fail_errno("pipe");
    UniqueFd err_r(err_pipe[0]), err_w(err_pipe[1]), go_r(go_pipe[0]), go_w(go_pipe[1]);
    ::fflush(nullptr);
    pid_t child = clone_with_pid(pid);
    if (child == 0) {
        ChildSetup s{&img, &proc, opts, err_w.get(), go_r.get()};
        ::close(err_r.get());
        ::close(go_w.get());
        child_main(s);
    }
    ChildGuard guard(child);
    err_w.reset();
    go_r.reset();
    if (child != pid) fail("clone3 gave pid {} instead of {}", child, pid);
    if (::ptrace(PTRACE_SEIZE, child, nullptr,
                 PTRACE_O_EXITKILL | PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEEXIT |
                     PTRACE_O_TRACECLONE) != 0)
        fail_errno("cannot trace the new process {}", pid);
    // Before any memory is restored, so that it is charged to the process's own memory
    // cgroup, and before the affinity, which a cpuset move would reset.
    cgroups::restore_membership(pid, proc.cgroups);
    if (::write(go_w.get(), "g", 1) != 1) fail_errno("cannot start the new process");
    go_w.reset();

    // Phase 1: the child prepares and the stub rebuilds memory, until the stub's int3.
    uint64_t remote_args = 0;
    auto on_exit = [&]() {
        std::string msg = read_child_message(err_r.get(), remote_args);
        report_exit(pid, msg, remote_args);
    };
    for (;;) {
        auto st = tracer::wait_tid(pid);
        if (st.exited) {
            guard.release();  // already reaped
            std::string msg = read_child_message(err_r.get(), remote_args);
            fail("restore of pid {} failed: {}", pid, msg.empty() ? "the new process died" : msg);
        }
        if (st.event() == PTRACE_EVENT_EXIT) on_exit();
        if (st.signal() == SIGTRAP && st.event() == 0) break;
        tracer::resume(pid, PTRACE_CONT, st.event() ? 0 : st.signal());
    }
    remote_args = tracer::get_regs(pid).rax;  // the stub traps with its args in rax
    restorer::RestorerArgs args;
    tracer::read_mem(pid, remote_args, &args, sizeof args);
    auto t_memory = Clock::now();

    // Phase 2: step every thread syscall by syscall until its rt_sigreturn has restored its
    // registers, and hold it there: no thread runs program code before all are ready.
    std::map<pid_t, bool> entered_sigreturn;  // per thread, known once it has stopped
    size_t ready = 0;
    tracer::resume(pid, PTRACE_SYSCALL);
    while (ready < tids.size()) {
        pid_t tid;
        tracer::StopStatus st = tracer::wait_any(tid);
        if (st.exited) {
            if (tid == pid) guard.release();
            fail("restore of pid {} failed: thread {} died", pid, tid);
        }
        if (st.event() == PTRACE_EVENT_EXIT) on_exit();
        if (st.syscall_stop()) {
            bool& entered = entered_sigreturn[tid];
            if (entered) {  // the exit stop of rt_sigreturn: leave it stopped
                ++ready;
                continue;
            }
            if (static_cast<long>(tracer::get_regs(tid).orig_rax) == __NR_rt_sigreturn) entered = true;
            tracer::resume(tid, PTRACE_SYSCALL);
        } else if (st.event() == PTRACE_EVENT_CLONE || st.event() == PTRACE_EVENT_STOP) {
            tracer::resume(tid, PTRACE_SYSCALL);
        } else {
            tracer::resume(tid, PTRACE_SYSCALL, st.signal());
        }
    }
    // Every thread of the image, and no other, is back (a lost thread fails the restore).
    {
        std::vector<pid_t> live;
        for (const auto& e : std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid)))
            live.push_back(static_cast<pid_t>(std::stol(e.path().filename().string())));
        std::sort(live.begin(), live.end());
        std::vector<pid_t> want = tids;
        std::sort(want.begin(), want.end());
        if (live != want)
            fail("restore of pid {} failed: it has {} threads, the image {}", pid, live.size(), want.size());
    }

    // Phase 3: the program's registers are in place; remove the stub from outside.
    {
        tracer::RemoteSyscalls remote(pid, pid, tracer::find_gadgets(pid));
        remote.checked("munmap of the restorer", __NR_munmap, args.self_start, args.self_len);
        // Guard regions last: the restorer had to write the memory around them.
        constexpr uint64_t kMadvGuardInstall = 102;
        for (const auto& v : img.vmas) {
            if (v.pid != pid) continue;
            for (const auto& g : v.guards)
                remote.checked("madvise(MADV_GUARD_INSTALL)", __NR_madvise, g.addr,
                               g.nr_pages * image::kPageSize, kMadvGuardInstall);
        }
    }
    apply_from_outside(img, pid);
    // Queued while every thread is held in its ptrace stop: each one takes the group stop on
    // its way out of the kernel once released, before running any program code.
    if (was_stopped(img, pid) && ::kill(pid, SIGSTOP) != 0) fail_errno("cannot stop pid {} again", pid);
    for (pid_t tid : tids)
        if (::ptrace(PTRACE_DETACH, tid, nullptr, nullptr) != 0) fail_errno("cannot release thread {}", tid);
    guard.release();
    auto t_done = Clock::now();
    if (opts.print_stats) {
        auto ms = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
        fmt::print("restore_ms={:.1f}\nmemory_ms={:.1f}\n", ms(t0, t_done), ms(t0, t_memory));
        std::fflush(stdout);
    }
    log::info("restored pid {}", pid);
    if (opts.detach) return 0;

    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) fail_errno("cannot wait for pid {}", pid);
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 1;
}

}  // namespace ckpt::restore
