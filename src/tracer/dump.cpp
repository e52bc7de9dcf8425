#include "tracer/dump.h"

#include <asm/unistd.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <algorithm>

#include "common/cpu.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/interrupt.h"
#include "common/phase_times.h"
#include "common/log.h"
#include "image/writer.h"
#include "tracer/audit.h"
#include "tracer/backtrace.h"
#include "tracer/fault.h"
#include "tracer/files_dump.h"
#include "tracer/frozen_tree.h"
#include "tracer/shared_files.h"
#include "tracer/smaps_cache.h"
#include "files/event_fds.h"
#include "files/file_locks.h"
#include "files/memfd.h"
#include "files/inet_socket.h"
#include "files/unix_socket.h"
#include "ipc/sysv_shm.h"
#include "files/pipe.h"
#include "files/pty.h"
#include "tracer/gadgets.h"
#include "tracer/memory_dump.h"
#include "tracer/parasite.h"
#include "tracer/process_attrs.h"
#include "tracer/proc_parse.h"
#include "tracer/ptrace.h"
#include "tracer/remote_syscall.h"

namespace ckpt::tracer {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

std::vector<std::string> split_nul(const std::string& s) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos < s.size()) {
        size_t end = s.find('\0', pos);
        if (end == std::string::npos) end = s.size();
        out.push_back(s.substr(pos, end - pos));
        pos = end + 1;
    }
    return out;
}

std::string trim_newline(std::string s) {
    while (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
}

image::Process collect_process(pid_t pid, const std::vector<image::Vma>& vmas) {
    auto stat = proc::parse_stat(read_file(fmt::format("/proc/{}/stat", pid)));
    auto status = proc::parse_status(read_file(fmt::format("/proc/{}/status", pid)));
    image::Process p;
    p.pid = pid;
    p.ppid = stat.ppid;
    p.pgid = stat.pgrp;
    p.sid = stat.session;
    p.ctty = stat.tty_nr;
    p.exit_signal = stat.exit_signal;
    p.comm = status.name;
    p.argv = split_nul(read_file(fmt::format("/proc/{}/cmdline", pid)));
    for (const auto& t : proc::parse_timers(read_file(fmt::format("/proc/{}/timers", pid)))) {
        image::PosixTimer pt;
        pt.id = t.id;
        pt.clockid = t.clockid;
        pt.notify = t.notify;
        pt.signo = t.signo;
        pt.target_tid = (t.notify & 4) ? t.target : 0;
        pt.sigval = t.sigval;
        p.posix_timers.push_back(pt);
    }
    std::sort(p.posix_timers.begin(), p.posix_timers.end(),
              [](const image::PosixTimer& a, const image::PosixTimer& b) { return a.id < b.id; });
    p.exe_path = read_link(fmt::format("/proc/{}/exe", pid));
    p.cwd = read_link(fmt::format("/proc/{}/cwd", pid));
    p.root = read_link(fmt::format("/proc/{}/root", pid));
    p.umask = status.umask;
    p.personality = static_cast<uint32_t>(
        std::stoul(read_file(fmt::format("/proc/{}/personality", pid)), nullptr, 16));
    p.creds.ruid = status.uid[0];
    p.creds.euid = status.uid[1];
    p.creds.suid = status.uid[2];
    p.creds.fsuid = status.uid[3];
    p.creds.rgid = status.gid[0];
    p.creds.egid = status.gid[1];
    p.creds.sgid = status.gid[2];
    p.creds.fsgid = status.gid[3];
    p.creds.groups = status.groups;
    p.mm = {stat.start_code, stat.end_code, stat.start_data, stat.end_data, stat.start_brk, 0,
            stat.start_stack, stat.arg_start, stat.arg_end, stat.env_start, stat.env_end};
    std::string auxv = read_file(fmt::format("/proc/{}/auxv", pid));
    p.auxv.resize(auxv.size() / 8);
    std::memcpy(p.auxv.data(), auxv.data(), p.auxv.size() * 8);
    for (const auto& v : vmas) {
        if (v.kind == image::VmaKind::Vdso) {
            std::string text(v.end - v.start, '\0');
            read_mem(pid, v.start, text.data(), text.size());
            p.vdso_hash = XXH3_64bits(text.data(), text.size());
        }
    }
    return p;
}

image::Thread collect_thread(pid_t pid, const FrozenThread& ft) {
    pid_t tid = ft.tid;
    image::Thread t;
    t.pid = pid;
    t.tid = tid;
    t.state = ft.state;
    t.name = trim_newline(read_file(fmt::format("/proc/{}/task/{}/comm", pid, tid)));
    Regs regs = get_regs(tid);
    t.regs.assign(reinterpret_cast<const char*>(&regs), sizeof regs);
    t.xsave = get_xstate(tid);
    t.sigmask = get_sigmask(tid);
    t.pending = peek_pending(tid, false);
    auto rseq = get_rseq(tid);
    t.rseq_addr = rseq.addr;
    t.rseq_len = rseq.len;
    t.rseq_sig = rseq.sig;
    t.rseq_flags = rseq.flags;
    uint64_t head = 0;
    size_t len = 0;
    if (::syscall(SYS_get_robust_list, tid, &head, &len) != 0)
        fail_errno("cannot read the robust futex list of thread {}", tid);
    t.robust_list = head;
    t.robust_list_len = len;
    t.sched_policy = ::sched_getscheduler(tid);
    if (t.sched_policy < 0) fail_errno("cannot read the scheduling policy of thread {}", tid);
    sched_param sp{};
    if (::sched_getparam(tid, &sp) != 0) fail_errno("cannot read sched params of thread {}", tid);
    t.sched_priority = sp.sched_priority;
    errno = 0;
    t.nice = ::getpriority(PRIO_PROCESS, static_cast<id_t>(tid));
    if (errno != 0) fail_errno("cannot read the nice value of thread {}", tid);
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    if (::sched_getaffinity(tid, sizeof cpus, &cpus) != 0)
        fail_errno("cannot read the CPU affinity of thread {}", tid);
    t.affinity.assign(reinterpret_cast<const char*>(&cpus), sizeof cpus);

    long nr = static_cast<long>(regs.orig_rax);
    long ret = static_cast<long>(regs.rax);
    if (nr >= 0) {
        t.syscall_nr = nr;
        if (ret == -512 || ret == -513 || ret == -514)  // ERESTARTSYS, NOINTR, NOHAND
            t.restart = image::SyscallRestart::Restart;
        else if (ret == -516)  // ERESTART_RESTARTBLOCK
            t.restart = image::SyscallRestart::RestartBlock;
    }
    return t;
}

// Whether a thread has exited (a zombie, or gone from /proc).
bool thread_exited(pid_t pid, pid_t tid) {
    try {
        char st = proc::parse_status(read_file(fmt::format("/proc/{}/task/{}/status", pid, tid))).state;
        return st == 'Z' || st == 'X';
    } catch (const Error&) {
        return true;
    }
}

// Everything saved of one process of the tree, in the order it goes into the image.
struct DumpedProcess {
    image::Process proc;
    std::vector<image::Thread> threads;
    std::vector<image::Vma> vmas;
    std::vector<image::PageRun> runs;
};

// What can be read from outside while the tree is frozen.
DumpedProcess collect_outside(const FrozenProcess& frozen) {
    const pid_t pid = frozen.pid();
    DumpedProcess d;
    d.vmas = collect_vmas(pid);
    d.proc = collect_process(pid, d.vmas);
    for (const auto& ft : frozen.threads()) {
        try {
            d.threads.push_back(collect_thread(pid, ft));
        } catch (const Error&) {
            // A thread that was on its way out when it was seized can be a zombie now: it
            // has exited, so it is no part of the process any more. Any other failure stands.
            if (ft.tid == pid || !thread_exited(pid, ft.tid)) throw;
            log::info("thread {} of process {} exited while being frozen: not in the image", ft.tid, pid);
        }
    }
    d.proc.shared_pending = peek_pending(pid, true);
    d.proc.nr_threads = static_cast<uint32_t>(d.threads.size());
    collect_attrs(pid, d.proc, d.threads);
    Unwinder unwinder(pid, d.vmas);
    for (auto& t : d.threads) {
        Regs r;
        std::memcpy(&r, t.regs.data(), sizeof r);
        t.backtrace = unwinder.unwind(r);
    }
    return d;
}

DumpedProcess zombie_record(const Zombie& z) {
    DumpedProcess d;
    d.proc.pid = z.pid;
    d.proc.ppid = z.ppid;
    d.proc.pgid = z.pgid;
    d.proc.sid = z.sid;
    d.proc.exit_signal = z.exit_signal;
    d.proc.zombie = 1;
    d.proc.exit_status = z.exit_status;
    d.proc.comm = z.comm;
    return d;
}

// What only the process itself can read, and its memory: through the parasite, which is
// in the process only for the duration of this call.
void collect_inside(DumpedProcess& d, image::ImageWriter& out, MemoryStats& mstats, const ParentMemory* parent,
                    GadgetCache& gadget_cache, PhaseTimes& times) {
    const pid_t pid = d.proc.pid;
    MemoryStats ms;
    // From outside, before the parasite: it is then given pipes for what it will move.
    std::optional<PhaseTimes::Scope> phase(std::in_place, times, "plan_pages");
    PagePlan plan = plan_pages(pid, d.vmas, parent, ms);
    phase.emplace(times, "gadgets");
    // Declared before the parasite: the parasite is removed first, then the leader's
    // registers are put back. Other threads are taken over one at a time, only while
    // they run their own command.
    Gadgets gadgets = gadget_cache.find(pid);
    phase.emplace(times, "infect");
    RemoteSyscalls leader(pid, pid, gadgets);
    Parasite parasite(leader, gadgets, plan.readable_pages * image::kPageSize);
    fault::point("infect");
    phase.emplace(times, "parasite_state");

    for (auto& t : d.threads) {
        long r = t.tid == pid ? parasite.run(parasite::kCmdThreadState)
                              : parasite.run_in_thread(t.tid, parasite::kCmdThreadState);
        if (r < 0) fail("parasite could not read the state of thread {}: {}", t.tid, errno_text(static_cast<int>(-r)));
        const auto& ts = parasite.args().thread;
        t.altstack_sp = ts.altstack_sp;
        t.altstack_size = ts.altstack_size;
        t.altstack_flags = ts.altstack_flags;
        t.clear_child_tid = ts.clear_child_tid;
        t.pdeath_signal = ts.pdeath_signal;
        interrupt::check();
    }

    auto& timers_in = parasite.args().process;
    if (d.proc.posix_timers.size() > parasite::kMaxTimers)
        fail("process {} has {} POSIX timers: more than the {} ckpt saves", pid, d.proc.posix_timers.size(),
             parasite::kMaxTimers);
    timers_in.nr_timers = static_cast<uint32_t>(d.proc.posix_timers.size());
    for (size_t i = 0; i < d.proc.posix_timers.size(); ++i) timers_in.timer_ids[i] = d.proc.posix_timers[i].id;
    long r = parasite.run(parasite::kCmdProcessState);
    if (r < 0) fail("parasite could not read the signal state of {}: {}", pid, errno_text(static_cast<int>(-r)));
    const auto& ps = parasite.args().process;
    for (const auto& sa : ps.sigactions) d.proc.sigactions.push_back({sa.handler, sa.flags, sa.restorer, sa.mask});
    for (const auto& it : ps.itimers)
        d.proc.itimers.push_back({it.interval_sec, it.interval_usec, it.value_sec, it.value_usec});
    d.proc.mm.brk = ps.brk;  // not in /proc/PID/stat
    for (size_t i = 0; i < d.proc.posix_timers.size(); ++i) {
        auto& t = d.proc.posix_timers[i];
        const auto& v = ps.timers[i];
        t.interval_sec = v.interval_sec;
        t.interval_nsec = v.interval_nsec;
        t.value_sec = v.value_sec;
        t.value_nsec = v.value_nsec;
        t.overrun = static_cast<int32_t>(v.overrun);
    }
    take_parasite_attrs(ps, d.proc);
    fault::point("parasite-state");

    phase.emplace(times, "pages");
    d.runs = dump_memory(pid, parasite, d.vmas, std::move(plan), out, ms, [] { fault::point("memory"); });
    phase.emplace(times, "cure");  // ends when the parasite and the leader's takeover are undone
    mstats.pages_candidate += ms.pages_candidate;
    mstats.pages_stored += ms.pages_stored;
    mstats.pages_zero += ms.pages_zero;
    mstats.pages_inherited += ms.pages_inherited;
}

}  // namespace

void dump(const DumpOptions& opts) {
    auto t_start = Clock::now();
    struct ForgetSmaps {
        ~ForgetSmaps() { forget_frozen_smaps(); }
    } forget_smaps;
    // Before the target is touched: the image directory is locked and checked first, and
    // released last.
    image::ImageWriter out(opts.dir, opts.overwrite ? image::Existing::Replace : image::Existing::Refuse);
    out.set_early_writeback(!opts.leave_running);
    PhaseTimes times;
    std::optional<PhaseTimes::Scope> phase(std::in_place, times, "freeze");
    FrozenTree tree(opts.pid);
    phase.emplace(times, "audit");
    audit(tree);  // refuse state ckpt cannot save before anything is written or injected
    auto t_frozen = Clock::now();
    double frozen_ms = 0, memory_ms = 0, checksum_ms = 0;
    fault::point("seize");

    phase.emplace(times, "collect");
    // Tree order, zombies at their places.
    std::vector<DumpedProcess> procs;
    for (pid_t pid : tree.pids()) {
        auto live = std::find_if(tree.processes().begin(), tree.processes().end(),
                                 [pid](const auto& f) { return f->pid() == pid; });
        if (live != tree.processes().end()) {
            procs.push_back(collect_outside(**live));
        } else {
            for (const auto& z : tree.zombies())
                if (z.pid == pid) procs.push_back(zombie_record(z));
        }
        interrupt::check();
    }
    fault::point("collect");
    phase.emplace(times, "files");

    std::vector<image::Fd> fds;
    std::vector<std::vector<image::Vma>*> tree_vmas;
    std::vector<std::pair<pid_t, std::vector<image::Vma>*>> vmas_by_pid;
    files::FdInfoTexts fdinfo_texts;
    for (auto& d : procs) {
        if (d.proc.zombie) continue;
        std::vector<image::Fd> mine = dump_files(d.proc.pid, out, fdinfo_texts);
        save_unlinked_mappings(d.proc.pid, d.vmas, mine, out);
        fds.insert(fds.end(), mine.begin(), mine.end());
        tree_vmas.push_back(&d.vmas);
        vmas_by_pid.emplace_back(d.proc.pid, &d.vmas);
    }
    assign_file_ids(fds);
    image::Image objects;  // the kernel objects the descriptors lead to, once each
    files::dump_event_fds(fds, objects, fdinfo_texts);
    objects.file_locks = files::dump_file_locks(fds, vmas_by_pid);
    objects.memfds = files::dump_memfds(fds, vmas_by_pid, out);
    objects.sysv_shms = ipc::dump_sysv_shm(vmas_by_pid, out);
    {
        std::map<int32_t, std::string> cwd_of;
        for (const auto& d : procs) cwd_of[d.proc.pid] = d.proc.cwd;
        auto pids = tree.pids();
        std::set<pid_t> tree_pids(pids.begin(), pids.end());
        objects.unix_sockets = files::dump_unix_sockets(fds, cwd_of, tree_pids);
        objects.inet_sockets = files::dump_inet_sockets(fds, tree_pids);
        std::vector<const image::Process*> members;
        for (const auto& d : procs) members.push_back(&d.proc);
        objects.ptys = files::dump_ptys(fds, members, tree_pids);
    }
    {
        auto pids = tree.pids();
        files::dump_pipes(fds, std::set<pid_t>(pids.begin(), pids.end()), out);
    }
    save_shared_memory(tree_vmas, out);
    fault::point("files");

    phase.reset();
    MemoryStats mstats;
    GadgetCache gadget_cache;
    PfnCache parent_pfns;
    auto t_mem = Clock::now();
    for (auto& d : procs) {
        if (d.proc.zombie) continue;
        // The parent is frozen too: what of its memory this process still shares is not stored.
        auto parent = std::find_if(procs.begin(), procs.end(), [&](const DumpedProcess& e) {
            return e.proc.pid == d.proc.ppid && !e.proc.zombie;
        });
        ParentMemory pm{d.proc.ppid, parent == procs.end() ? nullptr : &parent->vmas, &parent_pfns};
        collect_inside(d, out, mstats, pm.vmas ? &pm : nullptr, gadget_cache, times);  // one parasite at a time
    }
    parent_pfns.verify();
    memory_ms = ms_since(t_mem);
    fault::point("cure");

    if (opts.leave_running) {
        tree.release();
        frozen_ms = ms_since(t_frozen);
    }

    auto t_sum = Clock::now();
    for (auto& d : procs) out.checksum_runs(d.runs);
    checksum_ms = ms_since(t_sum);
    fault::point("checksum");

    image::Header header;
    header.image_id = out.image_id();
    header.ckpt_version = CKPT_VERSION;
    utsname u;
    ::uname(&u);
    header.kernel_release = u.release;
    header.created_unix_ns = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(
            std::chrono::system_clock::now().time_since_epoch()).count());
    header.xsave_size = static_cast<uint32_t>(procs.front().threads.front().xsave.size());
    header.xfeatures = read_xcr0();
    header.nr_processes = static_cast<uint32_t>(procs.size());
    out.add(header);
    size_t nr_threads = 0, nr_vmas = 0;
    for (const auto& d : procs) out.add(d.proc);
    for (const auto& d : procs)
        for (const auto& t : d.threads) out.add(t), ++nr_threads;
    for (const auto& d : procs)
        for (const auto& v : d.vmas) out.add(v), ++nr_vmas;
    for (const auto& d : procs)
        for (const auto& r : d.runs) out.add(r);
    for (const auto& f : fds) out.add(f);
    image::for_each_object_records(objects, [&](const char*, const auto& records) {
        for (const auto& r : records) out.add(r);
    });
    fault::point("write-image");
    fault::point("commit");
    out.commit();
    interrupt::ignore_from_now();  // complete: finishing is quicker and safer than undoing

    if (!opts.leave_running) {
        tree.kill_on_release();
        tree.release();
        ipc::remove_dumped_segments(objects.sysv_shms);  // the tree's; the restore makes them again
        frozen_ms = ms_since(t_frozen);
    }
    if (opts.print_stats) {
        fmt::print("dump_ms={:.1f}\nfrozen_ms={:.1f}\nmemory_ms={:.1f}\nchecksum_ms={:.1f}\n"
                   "pages_candidate={}\npages_stored={}\npages_zero={}\npages_inherited={}\ndata_bytes={}\nprocesses={}\nthreads={}\nvmas={}\n",
                   ms_since(t_start), frozen_ms, memory_ms, checksum_ms, mstats.pages_candidate, mstats.pages_stored,
                   mstats.pages_zero, mstats.pages_inherited, out.data_offset(), procs.size(), nr_threads, nr_vmas);
        for (const auto& [name, ms] : times.phases()) fmt::print("{}_ms={:.1f}\n", name, ms);
    }
    log::info("dumped process {}{} into {}: {} pages stored, {} zero pages skipped", opts.pid,
              procs.size() > 1 ? fmt::format(" and {} descendants", procs.size() - 1) : "", opts.dir,
              mstats.pages_stored, mstats.pages_zero);
}

}  // namespace ckpt::tracer
