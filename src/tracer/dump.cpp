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
#include <memory>

#include "common/cpu.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/interrupt.h"
#include "common/log.h"
#include "image/writer.h"
#include "tracer/audit.h"
#include "tracer/backtrace.h"
#include "tracer/fault.h"
#include "tracer/files_dump.h"
#include "tracer/frozen_process.h"
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
    p.comm = status.name;
    p.argv = split_nul(read_file(fmt::format("/proc/{}/cmdline", pid)));
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

}  // namespace

void dump(const DumpOptions& opts) {
    auto t_start = Clock::now();
    // Before the target is touched: the image directory is locked and checked first, and
    // released last.
    image::ImageWriter out(opts.dir, opts.overwrite ? image::Existing::Replace : image::Existing::Refuse);
    out.set_early_writeback(!opts.leave_running);
    FrozenProcess frozen(opts.pid);
    audit(frozen);  // refuse state ckpt cannot save before anything is written or injected
    auto t_frozen = Clock::now();
    double frozen_ms = 0, memory_ms = 0, checksum_ms = 0;
    fault::point("seize");
    const pid_t pid = opts.pid;

    // Everything readable from outside, while the target is frozen.
    std::vector<image::Vma> vmas = collect_vmas(pid);
    image::Process proc = collect_process(pid, vmas);
    std::vector<image::Thread> threads;
    for (const auto& ft : frozen.threads()) threads.push_back(collect_thread(pid, ft));
    proc.shared_pending = peek_pending(pid, true);
    proc.nr_threads = static_cast<uint32_t>(threads.size());
    collect_attrs(pid, proc, threads);
    {
        Unwinder unwinder(pid, vmas);
        for (auto& t : threads) {
            Regs r;
            std::memcpy(&r, t.regs.data(), sizeof r);
            t.backtrace = unwinder.unwind(r);
        }
    }
    fault::point("collect");

    std::vector<image::Fd> fds = dump_files(pid, out);
    save_unlinked_mappings(pid, vmas, fds, out);
    fault::point("files");

    MemoryStats mstats;
    std::vector<image::PageRun> runs;
    {
        // Declared before the parasite: the parasite is removed first, then the leader's
        // registers are put back. Other threads are taken over one at a time, only while
        // they run their own command.
        Gadgets gadgets = find_gadgets(pid);
        RemoteSyscalls leader(pid, pid, gadgets);
        Parasite parasite(leader, gadgets);
        fault::point("infect");

        for (size_t i = 0; i < threads.size(); ++i) {
            pid_t tid = threads[i].tid;
            long r = tid == pid ? parasite.run(parasite::kCmdThreadState)
                                : parasite.run_in_thread(tid, parasite::kCmdThreadState);
            if (r < 0) fail("parasite could not read the state of thread {}: {}", tid, errno_text(static_cast<int>(-r)));
            const auto& ts = parasite.args().thread;
            threads[i].altstack_sp = ts.altstack_sp;
            threads[i].altstack_size = ts.altstack_size;
            threads[i].altstack_flags = ts.altstack_flags;
            threads[i].clear_child_tid = ts.clear_child_tid;
            interrupt::check();
        }

        long r = parasite.run(parasite::kCmdProcessState);
        if (r < 0) fail("parasite could not read the signal state of {}: {}", pid, errno_text(static_cast<int>(-r)));
        const auto& ps = parasite.args().process;
        for (const auto& sa : ps.sigactions)
            proc.sigactions.push_back({sa.handler, sa.flags, sa.restorer, sa.mask});
        for (const auto& it : ps.itimers)
            proc.itimers.push_back({it.interval_sec, it.interval_usec, it.value_sec, it.value_usec});
        proc.mm.brk = ps.brk;  // not in /proc/PID/stat
        take_parasite_attrs(ps, proc);
        fault::point("parasite-state");

        auto t_mem = Clock::now();
        runs = dump_memory(pid, parasite, vmas, out, mstats, [] { fault::point("memory"); });
        memory_ms = ms_since(t_mem);
    }
    fault::point("cure");

    if (opts.leave_running) {
        frozen.release();
        frozen_ms = ms_since(t_frozen);
    }

    auto t_sum = Clock::now();
    out.checksum_runs(runs);
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
    header.xsave_size = static_cast<uint32_t>(threads.front().xsave.size());
    header.xfeatures = read_xcr0();
    header.nr_processes = 1;
    out.add(header);
    out.add(proc);
    for (const auto& t : threads) out.add(t);
    for (const auto& v : vmas) out.add(v);
    for (const auto& r : runs) out.add(r);
    for (const auto& f : fds) out.add(f);
    fault::point("write-image");
    fault::point("commit");
    out.commit();
    interrupt::ignore_from_now();  // complete: finishing is quicker and safer than undoing

    if (!opts.leave_running) {
        frozen.kill_on_release();
        frozen.release();
        frozen_ms = ms_since(t_frozen);
    }
    if (opts.print_stats) {
        fmt::print("dump_ms={:.1f}\nfrozen_ms={:.1f}\nmemory_ms={:.1f}\nchecksum_ms={:.1f}\n"
                   "pages_candidate={}\npages_stored={}\npages_zero={}\ndata_bytes={}\nthreads={}\nvmas={}\n",
                   ms_since(t_start), frozen_ms, memory_ms, checksum_ms, mstats.pages_candidate, mstats.pages_stored,
                   mstats.pages_zero, out.data_offset(), threads.size(), vmas.size());
    }
    log::info("dumped process {} into {}: {} pages stored, {} zero pages skipped", pid,
              opts.dir, mstats.pages_stored, mstats.pages_zero);
}

}  // namespace ckpt::tracer
