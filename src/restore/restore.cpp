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
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asm/unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>
#include <map>
#include <set>
#include <filesystem>

#include "cgroups/cgroups.h"
#include "common/cpu.h"
#include "common/error.h"
#include "files/file_locks.h"
#include "files/memfd.h"
#include "files/pty.h"
#include "ipc/sysv_shm.h"
#include "common/fd.h"
#include "common/fs.h"
#include "common/log.h"
#include "image/reader.h"
#include "restore/pid_in_use.h"
#include "restore/file_check.h"
#include "restore/process_attrs.h"
#include "restore/restore_files.h"
#include "restore/restorer_args.h"
#include "restore/inherit_fds.h"
#include "restore/shared_pool.h"
#include "tracer/proc_parse.h"
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
        case kStepSeccomp: return "installing the thread's seccomp filters again (without no_new_privs this needs CAP_SYS_ADMIN)";
        case kStepPosixLock: return "taking a POSIX record lock again (another process may hold a conflicting one now)";
        case kStepPosixTimer: return "creating a POSIX timer with its id (PR_TIMER_CREATE_RESTORE_IDS needs Linux 6.17)";
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

// What every process of the tree starts from: ckpt's memory, copied by each clone.
struct TreeSetup {
    const image::Image* img;
    RestoreOptions opts;
    int err_w, go_r;
    const SharedPool* pool;
    const files::EventFds* events;
    std::map<int, std::vector<const image::Process*>> children;  // by parent pid, in image order
    std::vector<std::pair<uint64_t, uint64_t>> used;  // every VMA of every process of the image
    // Process groups whose leader had exited (the first process of a shell pipeline that
    // finished first): a helper process with the leader's pid makes each one again, for
    // the members to join, and exits once they have (leaderless_groups in the dump's audit).
    std::set<pid_t> leaderless_groups;
    // Sessions whose leader had exited: remade by a helper with the leader's pid, which
    // creates their first members (create_in_lost_session).
    std::set<pid_t> leaderless_sessions;
};

// Private memory a process fills before it creates its children, outside every address the
// tree uses, so that they inherit it copy-on-write as after the original fork(); each stub
// moves its own into place. By VMA start: where it is now, and its length. A child starts
// with its parent's table (fork copies it) and keeps only what it takes over.
struct Premap {
    uint64_t addr, len;
};
std::map<uint64_t, Premap> premaps;

// Fills the VMAs of `pid` that it takes over from its parent (`inherit`) or that a child of
// it will take over, and drops the parent's premapped memory it does not take.
void premap_memory(const TreeSetup& s, int pid) {
    const image::Image& img = *s.img;
    std::set<uint64_t> for_children;
    if (auto it = s.children.find(pid); it != s.children.end())
        for (const image::Process* c : it->second)
            for (const auto& v : img.vmas)
                if (v.pid == c->pid && v.inherit) for_children.insert(v.start);
    std::map<uint64_t, Premap> mine;
    UniqueFd data;
    for (const auto& v : img.vmas) {
        if (v.pid != pid || (!v.inherit && !for_children.count(v.start))) continue;
        const uint64_t len = v.end - v.start;
        Premap pm{0, len};
        if (v.inherit) {
            auto it = premaps.find(v.start);
            if (it == premaps.end() || it->second.len != len)
                fail("the parent's memory at {:#x} that the image says process {} shares is not there", v.start, pid);
            pm = it->second;
            for (const auto& z : v.zero)
                if (::madvise(reinterpret_cast<void*>(pm.addr + (z.addr - v.start)), z.nr_pages * image::kPageSize,
                              MADV_DONTNEED) != 0)
                    fail_errno("cannot drop the pages of {:#x} that process {} does not have", z.addr, pid);
        } else {
            pm.addr = map_in_gap(s.used, len, (v.flags & MAP_NORESERVE) ? MAP_NORESERVE : 0, PROT_READ | PROT_WRITE);
        }
        for (const auto& r : img.page_runs) {
            if (r.pid != pid || r.addr < v.start || r.addr >= v.end) continue;
            if (r.nr_pages > (v.end - r.addr) / image::kPageSize)
                fail("image is corrupt: the page run at {:#x} of process {} crosses the end of its mapping", r.addr, pid);
            if (!data) data = image::open_data(s.opts.dir);
            auto* to = reinterpret_cast<char*>(pm.addr + (r.addr - v.start));
            ::madvise(to, r.nr_pages * image::kPageSize, MADV_POPULATE_WRITE);  // one fault, not one per page
            pread_exact(data.get(), to, r.nr_pages * image::kPageSize, r.data_offset, "data.img");
        }
        mine[v.start] = pm;
    }
    for (const auto& [start, pm] : premaps)
        if (!mine.count(start)) ::munmap(reinterpret_cast<void*>(pm.addr), pm.len);
    premaps = std::move(mine);
}

// Reports to ckpt go through one pipe all processes share, one record per write (under
// PIPE_BUF, so records of different processes never mix): kind ('R' ready for the stub,
// 'E' error), pid, length, payload.
struct ReportHeader {
    char kind;
    int32_t pid;
    uint32_t len;
} __attribute__((packed));

// Where the current process reports errors; the fd moves when descriptors are rearranged.
int child_err_fd = -1;

void report(char kind, int pid, const void* data, size_t len) {
    char buf[3072];
    len = std::min(len, sizeof buf - sizeof(ReportHeader));
    ReportHeader h{kind, pid, static_cast<uint32_t>(len)};
    std::memcpy(buf, &h, sizeof h);
    std::memcpy(buf + sizeof h, data, len);
    [[maybe_unused]] auto n = ::write(child_err_fd, buf, sizeof h + len);
}

pid_t clone_with_pid(pid_t pid, int exit_signal) {
    clone_args args{};
    args.exit_signal = static_cast<uint64_t>(exit_signal);
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

// A zombie is a process that exits the way it did, for its parent to wait for.
[[noreturn]] void become_zombie(const image::Process& proc) {
    ::prctl(PR_SET_NAME, proc.comm.c_str(), 0, 0, 0);
    int st = proc.exit_status;
    if (WIFSIGNALED(st)) {
        int sig = WTERMSIG(st);
        rlimit no_core{0, 0};
        ::setrlimit(RLIMIT_CORE, &no_core);
        ::signal(sig, SIG_DFL);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
        ::kill(::getpid(), sig);
        ::_exit(128 + sig);  // not reached for a signal that kills
    }
    ::_exit(WEXITSTATUS(st));
}

[[noreturn]] void process_main(const TreeSetup& s, const image::Process& proc, int created_w);


// One byte from a creation pipe: 1 if it came, 0 if the writer died first, -1 on error.
ssize_t read_report_byte(int fd, char& c) {
    ssize_t n;
    do n = ::read(fd, &c, 1);
    while (n < 0 && errno == EINTR);
    return n;
}

// Waits for a helper process of the restore to exit; its wait status.
int reap_helper(pid_t pid, std::string_view what) {
    int st;
    while (::waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) fail_errno("cannot reap the helper of {}", what);
    return st;
}

// A child with the pid of a process group's exited leader, in `parent`'s session, that
// makes the group and waits until `release` is closed. Returns the end to close.
UniqueFd make_group_helper(pid_t pgid) {
    int made[2], release[2];
    if (::pipe2(made, O_CLOEXEC) != 0 || ::pipe2(release, O_CLOEXEC) != 0) fail_errno("pipe");
    ::fflush(nullptr);
    pid_t r = clone_with_pid(pgid, SIGCHLD);
    if (r == 0) {
        ::close(made[0]);
        ::close(release[1]);
        char ok = ::setpgid(0, 0) == 0 ? 'g' : 'x';
        if (::write(made[1], &ok, 1) != 1) _exit(1);
        char c;
        read_report_byte(release[0], c);  // EOF: the members have joined
        _exit(0);
    }
    ::close(made[1]);
    ::close(release[0]);
    char ok = 0;
    ssize_t n = read_report_byte(made[0], ok);
    ::close(made[0]);
    UniqueFd release_w(release[1]);
    if (n != 1 || ok != 'g') fail("cannot make process group {} again (its leader had exited)", pgid);
    return release_w;
}

// Creates one child and waits until it has made its own session, group and children.
void create_child(const TreeSetup& s, const image::Process& c) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) fail_errno("pipe");
    ::fflush(nullptr);
    pid_t r = clone_with_pid(c.pid, c.exit_signal);
    if (r == 0) {
        ::close(p[0]);
        process_main(s, c, p[1]);
    }
    ::close(p[1]);
    char ok = 0;
    ssize_t n = read_report_byte(p[0], ok);
    ::close(p[0]);
    if (n != 1) fail("process {} failed while being created", c.pid);
    if (c.zombie) {
        // Its exit reaches ckpt (its tracer) first; once ckpt lets go of it, it is ours to
        // wait for. Waiting here makes its SIGCHLD come while SIGCHLD is still ignored
        // (ckpt's code), so that the program does not get one more than it had.
        siginfo_t si;
        while (::waitid(P_PID, static_cast<id_t>(c.pid), &si, WEXITED | WNOWAIT) != 0)
            if (errno != EINTR) fail_errno("cannot see zombie {} exit", c.pid);
    }
}

// Children in a session whose leader had exited (a daemon's double fork): a helper with
// the leader's pid starts the session again and creates them in it, then exits; they are
// handed to their parent, a child subreaper, as they were after the leader's exit.
void create_in_lost_session(const TreeSetup& s, pid_t sid, const std::vector<const image::Process*>& members) {
    ::fflush(nullptr);
    pid_t r = clone_with_pid(sid, SIGCHLD);
    if (r == 0) {
        try {
            if (::setsid() < 0) fail_errno("cannot start session {} again", sid);
            for (const image::Process* c : members) create_child(s, *c);
        } catch (const std::exception& e) {
            report('E', sid, e.what(), std::strlen(e.what()));
            ::_exit(1);
        }
        ::_exit(0);
    }
    int st = reap_helper(r, fmt::format("session {}", sid));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail("cannot make session {} again (its leader had exited)", sid);
}

// Creates the children of `parent` one after the other, each done with its own session,
// group and children before the next: a process joining a group finds its leader there.
void create_children(const TreeSetup& s, const image::Process& parent) {
    auto it = s.children.find(parent.pid);
    if (it == s.children.end()) return;
    std::map<pid_t, UniqueFd> helpers;  // by group: released once every child is made
    std::map<pid_t, std::vector<const image::Process*>> in_lost_session;
    for (const image::Process* c : it->second) {
        if (s.leaderless_sessions.count(c->sid) && c->sid != parent.sid) {
            in_lost_session[c->sid].push_back(c);
            continue;
        }
        if (s.leaderless_groups.count(c->pgid) && !helpers.count(c->pgid))
            helpers[c->pgid] = make_group_helper(c->pgid);
    }
    if (!in_lost_session.empty()) {
        // The children the helper leaves behind come to this process only as a subreaper.
        if (!parent.child_subreaper)
            fail("process {} has children in a session whose leader exited, but is no child subreaper", parent.pid);
        if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) fail_errno("PR_SET_CHILD_SUBREAPER");
    }
    for (const image::Process* c : it->second) {
        auto lost = in_lost_session.find(c->sid);
        if (lost == in_lost_session.end()) {
            create_child(s, *c);
        } else if (lost->second.front() == c) {
            create_in_lost_session(s, c->sid, lost->second);
        }
    }
    for (auto& [pgid, release] : helpers) {
        release.reset();
        reap_helper(pgid, fmt::format("process group {}", pgid));
    }
}

// Runs in each new process of the tree. Never returns: it jumps into the restorer.
[[noreturn]] void process_main(const TreeSetup& s, const image::Process& proc, int created_w) {
    child_err_fd = s.err_w;
    const int pid = proc.pid;
    try {
        const bool is_root = created_w < 0;
        if (is_root) {
            char go;
            if (::read(s.go_r, &go, 1) != 1) _exit(1);  // ckpt died before seizing us
            ::close(s.go_r);
        }
        const image::Image& img = *s.img;
        // The parent's session and group (whatever the root got: ckpt's, unless it led its
        // own) are inherited; only what this process started itself, or a group it joined,
        // is made again.
        const image::Process* parent = nullptr;
        for (const auto& p : img.processes)
            if (p.pid == proc.ppid && !is_root) parent = &p;
        if (!(is_root && s.opts.shell_job)) {
            if (proc.sid == pid) {
                if (::setsid() < 0) fail_errno("cannot become a session leader");
            } else if (proc.pgid == pid) {
                if (::setpgid(0, 0) < 0) fail_errno("cannot make a process group");
            } else if (parent && proc.pgid != parent->pgid) {
                if (::setpgid(0, proc.pgid) < 0) fail_errno("cannot join process group {}", proc.pgid);
            }
        }
        if (proc.zombie) {
            if (::write(created_w, "z", 1) != 1) _exit(1);
            become_zombie(proc);
        }
        if (!is_root || !s.opts.shell_job) files::restore_controlling_terminal(img, proc, parent);
        if (::personality(proc.personality) < 0) fail_errno("cannot set personality {:#x}", proc.personality);
        premap_memory(s, pid);
        create_children(s, proc);
        files::restore_foreground_group(img, proc);
        if (created_w >= 0) {
            if (::write(created_w, "c", 1) != 1) fail_errno("cannot report to the parent");
            ::close(created_w);
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

        FilesOptions fo{s.opts.dir, s.opts.shell_job, shell_tty, data_fd, {}, s.events};
        std::vector<int> vma_fds;
        std::vector<int> close_fds = {data_fd, exe_fd, err_w};
        std::map<std::string, int> opened;
        for (const auto& v : img.vmas) {
            if (v.pid != pid) continue;
            if (v.kind == image::VmaKind::Anon && (v.flags & MAP_SHARED)) {
                int shared = s.pool->memory_fd(v);
                if (shared < 0) fail("no shared memory object for the mapping at {:#x}", v.start);
                int fd = ::fcntl(shared, F_DUPFD_CLOEXEC, floor);
                if (fd < 0) fail_errno("cannot take the shared memory for the mapping at {:#x}", v.start);
                close_fds.push_back(fd);
                vma_fds.push_back(fd);
                continue;
            }
            if (v.kind == image::VmaKind::Memfd) {
                int object = s.pool->memfd_fd(v);
                if (object < 0) fail("no memfd object for the mapping at {:#x} ({})", v.start, v.path);
                // "sh" without "mw": mapped from a descriptor open for writing, its memfd
                // sealed against writes (the seal clears only VM_MAYWRITE).
                std::string flags = " " + v.vmflags + " ";
                bool from_writable = flags.find(" mw ") != std::string::npos || flags.find(" sh ") != std::string::npos;
                bool rw = (v.flags & MAP_SHARED) && ((v.prot & PROT_WRITE) || from_writable);
                int fd = lift_fd(files::open_memfd(object, rw ? O_RDWR : O_RDONLY), floor);
                close_fds.push_back(fd);
                vma_fds.push_back(fd);
                continue;
            }
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
                int fd = v.unlinked ? ::fcntl(s.pool->deleted_mapping_fd(v), F_DUPFD_CLOEXEC, 0)
                                    : ::open(v.path.c_str(), (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
                if (fd < 0) fail_errno("cannot open mapped file {}", v.path);
                fd = lift_fd(fd, floor);
                files::take_mapping_locks(img, pid, v, fd);
                close_fds.push_back(fd);
                it = opened.emplace(key, fd).first;
            }
            vma_fds.push_back(it->second);
        }
        if (shell_tty >= 0) close_fds.push_back(shell_tty);

        // Close everything else, then open the program's descriptors at their numbers.
        for (int fd = 0; fd < floor; ++fd) ::close(fd);
        std::vector<int> keep = close_fds;
        for (int fd : s.pool->fds()) keep.push_back(fd);
        std::sort(keep.begin(), keep.end());
        int next = floor;
        for (int k : keep) {
            if (k > next) ::syscall(SYS_close_range, next, k - 1, 0);
            next = k + 1;
        }
        ::syscall(SYS_close_range, next, ~0u, 0);

        restore_fd_table(img, pid, fo, *s.pool);
        for (int fd : s.pool->fds()) ::close(fd);  // this process's copies; the pool object is ckpt's
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
        for (const auto& [start, pm] : premaps) in.premaps[start] = pm.addr;
        for (const auto& [start, at] : ipc::attach_sysv_shm(img, pid, s.used)) in.premaps[start] = at;
        Region reg = build_region(in);
        auto* rseq_area = reinterpret_cast<char*>(__builtin_thread_pointer()) + __rseq_offset;
        reg.args->old_rseq_addr = __rseq_size ? reinterpret_cast<uint64_t>(rseq_area) : 0;
        reg.args->old_rseq_len = __rseq_size < 32 ? 32 : __rseq_size;
        reg.args->old_rseq_sig = 0x53053053;  // glibc's RSEQ_SIG on x86

        uint64_t args_addr = reinterpret_cast<uint64_t>(reg.args);
        report('R', pid, &args_addr, sizeof args_addr);

        // No way back from here: the stub owns the process.
        asm volatile(
            "mov %0, %%rsp\n"
            "jmp *%1\n"
            :
            : "r"(reg.stack_top), "r"(reg.entry), "D"(reg.args)
            : "memory");
        __builtin_unreachable();
    } catch (const std::exception& e) {
        report('E', pid, e.what(), std::strlen(e.what()));
        ::_exit(1);
    }
}

// Owns the half-restored tree: unless released, every process of it that exists is killed
// and reaped. ckpt is the child subreaper meanwhile, so that orphans of the tree come to it.
class TreeGuard {
  public:
    TreeGuard() { ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }
    // A process or thread of the tree, seen to exist (only those are ever killed).
    void add(pid_t pid) { pids_.insert(pid); }
    ~TreeGuard() {
        if (released_) return;
        // A process already exiting drops SIGKILL, and one held in a ptrace stop stays
        // there: kill, then keep letting everything go until nothing is left to reap.
        for (pid_t p : pids_) ::kill(p, SIGKILL);
        for (pid_t p : pids_) ::ptrace(PTRACE_CONT, p, nullptr, nullptr);
        // Everything that reports is ours: a tracee, the root, or an orphan of the tree handed
        // to us as subreaper; what still lives is killed too. Bounded: never hang here.
        int st;
        for (int idle = 0; idle < 5000;) {
            pid_t r = ::waitpid(-1, &st, __WALL | WNOHANG);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) break;  // no child or tracee left
            if (r == 0) {
                // Live orphans of the tree are our children now: kill them as well.
                std::string kids;
                try {
                    kids = read_file("/proc/thread-self/children");
                } catch (const Error&) {
                }
                for (size_t i = 0; i < kids.size();) {
                    pid_t k = static_cast<pid_t>(std::strtol(kids.c_str() + i, nullptr, 10));
                    if (k > 0) ::kill(k, SIGKILL);
                    size_t sp = kids.find(' ', i);
                    i = sp == std::string::npos ? kids.size() : sp + 1;
                }
                ::usleep(1000);
                ++idle;
                continue;
            }
            if (!WIFEXITED(st) && !WIFSIGNALED(st)) {
                ::kill(r, SIGKILL);
                ::ptrace(PTRACE_CONT, r, nullptr, nullptr);
            }
        }
        ::prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
    }
    void release() {
        released_ = true;
        ::prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
    }

  private:
    std::set<pid_t> pids_;
    bool released_ = false;
};

// The reports of the tree's processes, read as they come.
class Reports {
  public:
    explicit Reports(int fd) : fd_(fd) {
        int fl = ::fcntl(fd, F_GETFL);
        ::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    }
    void drain() {
        char buf[4096];
        ssize_t n;
        while ((n = ::read(fd_, buf, sizeof buf)) > 0) pending_.append(buf, static_cast<size_t>(n));
        while (pending_.size() >= sizeof(ReportHeader)) {
            ReportHeader h;
            std::memcpy(&h, pending_.data(), sizeof h);
            if (pending_.size() < sizeof h + h.len) break;
            std::string body = pending_.substr(sizeof h, h.len);
            pending_.erase(0, sizeof h + h.len);
            if (h.kind == 'E' && !errors_.count(h.pid)) errors_[h.pid] = body;
            if (h.kind == 'R' && body.size() == 8) std::memcpy(&args_[h.pid], body.data(), 8);
        }
    }
    // The error a process reported, or "" if none.
    std::string error_of(int pid) {
        drain();
        auto it = errors_.find(pid);
        return it == errors_.end() ? std::string() : it->second;
    }
    // Any process's error (a child that failed makes its parent fail too: the first wins).
    std::string any_error() {
        drain();
        return errors_.empty() ? std::string() : fmt::format("process {}: {}", errors_.begin()->first,
                                                             errors_.begin()->second);
    }
    uint64_t args_of(int pid) {
        drain();
        auto it = args_.find(pid);
        return it == args_.end() ? 0 : it->second;
    }

  private:
    int fd_;
    std::string pending_;
    std::map<int, std::string> errors_;
    std::map<int, uint64_t> args_;
};

[[noreturn]] void report_exit(pid_t pid, Reports& reports, bool exit_stop) {
    std::string msg = reports.error_of(pid);
    if (msg.empty()) msg = reports.any_error();
    if (!msg.empty()) fail("restore of pid {} failed: {}", pid, msg);
    uint64_t remote_args = reports.args_of(pid);
    if (remote_args && exit_stop) {
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
    fail("restore of pid {} failed: the new process {}", pid, exit_stop ? "exited early" : "died");
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

// A pid the image needs, held by a zombie that pid 1 will reap (the original tree just
// killed by its dump, whose orphans init reaps lazily): worth waiting a moment for.
void wait_for_orphan_zombies(const std::vector<pid_t>& ids) {
    auto blocked = [&] {
        for (pid_t id : ids) {
            std::string stat;
            try {
                stat = read_file(fmt::format("/proc/{}/stat", id));
            } catch (const Error&) {
                continue;
            }
            // Its parent will reap it (pid 1 or a subreaper does so lazily, after a dump killed
            // the tree); if it does not, the check after this wait says so.
            if (proc::parse_stat(stat).state == 'Z') return true;
        }
        return false;
    };
    for (int i = 0; i < 200 && blocked(); ++i) ::usleep(50 * 1000);
}

std::vector<pid_t> live_tasks(pid_t pid) {
    std::vector<pid_t> live;
    for (const auto& e : std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid)))
        live.push_back(static_cast<pid_t>(std::stol(e.path().filename().string())));
    std::sort(live.begin(), live.end());
    return live;
}

}  // namespace

int restore(const RestoreOptions& opts) {
    auto t0 = Clock::now();
    image::Image img = image::read_image(opts.dir);
    image::verify_data(opts.dir, img);
    const image::Process& root = img.processes.front();
    const pid_t pid = root.pid;
    if (root.zombie) fail("image of pid {} holds only a zombie", pid);

    // The tree, and every id it needs.
    std::map<pid_t, std::vector<pid_t>> tids;  // live processes: their threads, leader first
    std::vector<pid_t> ids, zombies;
    for (const auto& p : img.processes) {
        ids.push_back(p.pid);
        if (p.zombie) zombies.push_back(p.pid);
        else tids[p.pid];
    }
    for (const auto& t : img.threads) {
        if (!tids.count(t.pid)) fail("image has thread {} of unknown process {}", t.tid, t.pid);
        tids[t.pid].push_back(t.tid);
        if (t.tid != t.pid) ids.push_back(t.tid);
    }
    for (const auto& [p, ts] : tids)
        if (ts.empty() || ts.front() != p) fail("image of pid {} has no main thread", p);
    // The root's parent after restore is ckpt: with --detach it would be gone at once.
    for (const auto& t : img.threads)
        if (opts.detach && t.pid == pid && t.pdeath_signal)
            fail("thread {} of pid {} asked for signal {} when its parent dies (PR_SET_PDEATHSIG); its parent "
                 "after restore is ckpt: restore it without --detach", t.tid, pid, t.pdeath_signal);
    // A session leader's terminal is not given back (only the caller's, with --shell-job); the
    // dump refused it for every process but the root.
    if (root.sid == root.pid && root.ctty != 0 && !opts.shell_job && !files::tree_pty_of(img, root.ctty))
        fail("process {} led a session with a controlling terminal (tty {}:{}): restore it with --shell-job to give "
             "it this terminal (giving a session its own terminal back is not supported yet)", pid,
             ::major(root.ctty), ::minor(root.ctty));
    // What the user gave for pipes to the outside: checked before anything is made.
    std::map<std::string, int> inherited = inherited_fds(img, opts.inherit_fds, opts.inherit_stdio);
    TreeSetup setup{&img, opts, -1, -1, nullptr, nullptr, {}, {}, {}, {}};
    for (const auto& v : img.vmas) setup.used.emplace_back(v.start, v.end);
    auto in_image = [&](pid_t id) {
        return std::any_of(img.processes.begin(), img.processes.end(), [&](const image::Process& q) { return q.pid == id; });
    };
    // (the root's own group and session, when it did not lead them, are ckpt's after restore: inherited)
    for (const auto& p : img.processes)
        if (p.sid != root.sid && !in_image(p.sid)) setup.leaderless_sessions.insert(p.sid);
    for (const auto& p : img.processes)
        if (p.pgid != root.pgid && !in_image(p.pgid) && !setup.leaderless_sessions.count(p.pgid))
            setup.leaderless_groups.insert(p.pgid);
    // the helpers take these pids
    for (pid_t g : setup.leaderless_groups) ids.push_back(g);
    for (pid_t g : setup.leaderless_sessions) ids.push_back(g);
    for (size_t i = 1; i < img.processes.size(); ++i) {
        const auto& p = img.processes[i];
        bool parent_before = false;
        for (size_t j = 0; j < i; ++j) parent_before = parent_before || img.processes[j].pid == p.ppid;
        if (!parent_before) fail("image is corrupt: process {} comes before its parent {}", p.pid, p.ppid);
        setup.children[p.ppid].push_back(&p);
    }
    if ((img.header.xfeatures & ~read_xcr0()) != 0)
        fail("this CPU lacks register state the image has (xfeatures {:#x}, CPU {:#x})",
             img.header.xfeatures, read_xcr0());
    for (const auto& [p, ts] : tids) check_vdso_compatible(img, p, find_current_vdso());
    wait_for_orphan_zombies(ids);
    for (const auto& p : img.processes)
        if (::kill(p.pid, 0) == 0 || errno != ESRCH) fail("{}: cannot restore with the same pid", pid_in_use(p.pid));
    for (const auto& [p, ts] : tids)
        for (pid_t tid : ts)
            if (tid != p && ::kill(tid, 0) == 0)
                fail("{} (a thread of pid {}): cannot restore with the same ids", pid_in_use(tid, "thread id"), p);

    check_files(img, opts.allow_changed_files);
    // The pool and every process's own descriptors stay open together for a moment.
    rlimit nofile;
    if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &nofile);
    }

    UniqueFd data = image::open_data(opts.dir);
    UniqueFd pool_tty;
    if (opts.shell_job)
        for (int fd = 0; fd <= 2 && !pool_tty; ++fd)
            if (::isatty(fd)) pool_tty.reset(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
    files::EventFds events(img);
    FilesOptions pool_opts{opts.dir, opts.shell_job, pool_tty.get(), data.get(), inherited, &events};
    ipc::SysvShmSegments sysv_shm(img, data.get());
    SharedPool pool(img, pool_opts, pool_floor(img));
    data.reset();
    pool_tty.reset();

    int err_pipe[2], go_pipe[2];
    if (::pipe2(err_pipe, O_CLOEXEC) != 0 || ::pipe2(go_pipe, O_CLOEXEC) != 0) fail_errno("pipe");
    UniqueFd err_r(err_pipe[0]), err_w(err_pipe[1]), go_r(go_pipe[0]), go_w(go_pipe[1]);
    setup.err_w = err_w.get();
    setup.go_r = go_r.get();
    setup.pool = &pool;
    setup.events = &events;
    TreeGuard guard;
    ::fflush(nullptr);
    pid_t child = clone_with_pid(pid, SIGCHLD);
    if (child == 0) {
        ::close(err_r.get());
        ::close(go_w.get());
        process_main(setup, root, -1);
    }
    if (child > 0) guard.add(child);
    err_w.reset();
    go_r.reset();
    pool.close_all();  // the tree holds them now: a pipe must not stay open in ckpt
    Reports reports(err_r.get());
    if (child != pid) fail("clone3 gave pid {} instead of {}", child, pid);
    // SUSPEND_SECCOMP: the stub installs a thread's filters before ckpt's last remote calls
    // (unmapping the stub); the kernel drops the suspension again at the detach.
    if (::ptrace(PTRACE_SEIZE, child, nullptr,
                 PTRACE_O_EXITKILL | PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEEXIT | PTRACE_O_TRACECLONE |
                     PTRACE_O_TRACEFORK | PTRACE_O_SUSPEND_SECCOMP) != 0)
        fail_errno("cannot trace the new process {}", pid);
    // Before any memory is restored, so that it is charged to the process's own memory
    // cgroup, and before the affinity, which a cpuset move would reset. Children are moved
    // when they first stop, before they run.
    cgroups::restore_membership(pid, root.cgroups);
    if (::write(go_w.get(), "g", 1) != 1) fail_errno("cannot start the new process");
    go_w.reset();

    auto process_of = [&](pid_t p) -> const image::Process* {
        for (const auto& e : img.processes)
            if (e.pid == p) return &e;
        return nullptr;
    };

    // Phase 1: every process is created by its parent and prepares itself, and its stub
    // rebuilds its memory, until the stub's int3; zombies exit.
    std::map<pid_t, uint64_t> at_stub;  // process -> the stub's args
    std::set<pid_t> zombies_left(zombies.begin(), zombies.end()), moved = {pid};
    std::set<pid_t> helpers_left = setup.leaderless_groups;
    helpers_left.insert(setup.leaderless_sessions.begin(), setup.leaderless_sessions.end());
    while (at_stub.size() < tids.size() || !zombies_left.empty() || !helpers_left.empty()) {
        pid_t tid;
        tracer::StopStatus st = tracer::wait_any(tid);
        guard.add(tid);
        reports.drain();  // so that reports of a big tree never fill the pipe
        if (st.exited) {
            // A zombie's exit reaches its tracer first; waiting for it hands it to its parent.
            if (zombies_left.erase(tid) || helpers_left.erase(tid)) continue;
            report_exit(tid, reports, false);
        }
        const image::Process* p = process_of(tid);
        if (st.event() == PTRACE_EVENT_EXIT) {
            if ((p && p->zombie) || helpers_left.count(tid)) {
                tracer::resume(tid, PTRACE_CONT);
                continue;
            }
            report_exit(tid, reports, true);
        }
        if (st.event() == PTRACE_EVENT_STOP) {
            if (p && !moved.count(tid)) {  // a new process, before it runs
                moved.insert(tid);
                if (!p->zombie) cgroups::restore_membership(tid, p->cgroups);
            }
            tracer::resume(tid, PTRACE_CONT);
        } else if (st.event() != 0) {
            tracer::resume(tid, PTRACE_CONT);  // fork/clone events of a parent
        } else if (st.signal() == SIGTRAP && p && !p->zombie && !st.syscall_stop()) {
            at_stub[tid] = tracer::get_regs(tid).rax;  // the stub traps with its args in rax
        } else {
            tracer::resume(tid, PTRACE_CONT, st.syscall_stop() ? 0 : st.signal());
        }
    }
    auto t_memory = Clock::now();

    // Phase 2: step every thread of every process syscall by syscall until its rt_sigreturn
    // has restored its registers, and hold it there: no thread runs program code before all
    // are ready.
    size_t want_ready = 0;
    for (const auto& [p, ts] : tids) want_ready += ts.size();
    std::map<pid_t, bool> entered_sigreturn;  // per thread, known once it has stopped
    size_t ready = 0;
    for (const auto& [p, a] : at_stub) tracer::resume(p, PTRACE_SYSCALL);
    while (ready < want_ready) {
        pid_t tid;
        tracer::StopStatus st = tracer::wait_any(tid);
        guard.add(tid);
        if (st.exited) fail("restore failed: thread {} died", tid);
        if (st.event() == PTRACE_EVENT_EXIT) report_exit(tid, reports, true);
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
    for (const auto& [p, ts] : tids) {
        std::vector<pid_t> want = ts;
        std::sort(want.begin(), want.end());
        std::vector<pid_t> live = live_tasks(p);
        if (live != want)
            fail("restore of pid {} failed: it has {} threads, the image {}", p, live.size(), want.size());
    }

    // Phase 3: the program's registers are in place; remove each stub from outside.
    tracer::GadgetCache gadgets;  // a tree's processes map the same libraries
    for (const auto& [p, remote_args] : at_stub) {
        restorer::RestorerArgs args;
        tracer::read_mem(p, remote_args, &args, sizeof args);
        tracer::RemoteSyscalls remote(p, p, gadgets.find(p));
        remote.checked("munmap of the restorer", __NR_munmap, args.self_start, args.self_len);
        // Guard regions last: the restorer had to write the memory around them.
        constexpr uint64_t kMadvGuardInstall = 102;
        for (const auto& v : img.vmas) {
            if (v.pid != p) continue;
            for (const auto& g : v.guards)
                remote.checked("madvise(MADV_GUARD_INSTALL)", __NR_madvise, g.addr,
                               g.nr_pages * image::kPageSize, kMadvGuardInstall);
        }
    }
    for (const auto& [p, ts] : tids) {
        apply_from_outside(img, p);
        // Queued while every thread is held in its ptrace stop: each one takes the group
        // stop on its way out of the kernel once released, before running any program code.
        if (was_stopped(img, p) && ::kill(p, SIGSTOP) != 0) fail_errno("cannot stop pid {} again", p);
    }
    // Nothing can fail from here: a thread that died meanwhile (ESRCH) has its process's
    // fate (a group exit); every other thread goes.
    guard.release();
    sysv_shm.commit();
    for (const auto& [p, ts] : tids)
        for (pid_t tid : ts)
            if (::ptrace(PTRACE_DETACH, tid, nullptr, nullptr) != 0 && errno != ESRCH)
                log::error("cannot release thread {} of pid {}: {}", tid, p, errno_text(errno));
    auto t_done = Clock::now();
    if (opts.print_stats) {
        auto ms = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
        fmt::print("restore_ms={:.1f}\nmemory_ms={:.1f}\nprocesses={}\n", ms(t0, t_done), ms(t0, t_memory),
                   img.processes.size());
        std::fflush(stdout);
    }
    log::info("restored pid {} ({} processes)", pid, img.processes.size());
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
