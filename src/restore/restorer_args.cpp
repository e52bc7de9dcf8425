#include "restore/restorer_args.h"

#include <cpuid.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/user.h>

#include <algorithm>
#include <cstring>
#include <vector>
#include <xxhash.h>

#include "common/blobs.h"
#include "common/error.h"
#include "common/fs.h"
#include "tracer/proc_parse.h"

namespace ckpt::restore {

using image::VmaKind;
using namespace restorer;

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kMainStack = 64 * 1024;  // the main thread rebuilds memory: more room
constexpr uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

// Bump allocator over the region, in two passes: sizing, then placing.
class Layout {
  public:
    explicit Layout(uint64_t base) : base_(base), cur_(base) {}
    uint64_t take(uint64_t size, uint64_t align = 16) {
        cur_ = round_up(cur_, align);
        uint64_t at = cur_;
        cur_ += size;
        return at;
    }
    uint64_t used() const { return cur_ - base_; }

  private:
    uint64_t base_, cur_;
};

uint64_t max_xsave_size() {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid_count(0xd, 0, &eax, &ebx, &ecx, &edx)) return 4096;
    return std::max<uint64_t>(ecx, 4096);
}

const image::Vma* find_kind(const image::Image& img, int pid, VmaKind k) {
    for (const auto& v : img.vmas)
        if (v.pid == pid && v.kind == k) return &v;
    return nullptr;
}

}  // namespace

uint64_t map_in_gap(std::vector<std::pair<uint64_t, uint64_t>> used, uint64_t len, int extra_flags, int prot) {
    std::sort(used.begin(), used.end());
    constexpr uint64_t kLow = 0x10000000, kHigh = 0x7ff000000000;
    uint64_t prev_end = kLow;
    used.emplace_back(kHigh, kHigh);
    for (const auto& [s, e] : used) {
        if (s > prev_end && s - prev_end >= len + 2 * kPage) {
            // Try a few spots in the gap; something of ckpt may sit there now.
            uint64_t lo = round_up(prev_end + kPage, 1 << 21), hi = (s - len - kPage) & ~(kPage - 1);
            for (uint64_t cand : {lo, hi, round_up((lo + hi) / 2, kPage)}) {
                if (cand < prev_end || cand + len > s) continue;
                void* p = ::mmap(reinterpret_cast<void*>(cand), len, prot,
                                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | extra_flags, -1, 0);
                if (p == reinterpret_cast<void*>(cand)) return cand;
                if (p != MAP_FAILED) ::munmap(p, len);
            }
        }
        prev_end = std::max(prev_end, e);
    }
    fail("no room for {} KiB between the image's mappings", len / 1024);
}

namespace {

// Region address: a gap of the image's address space that is also free here.
uint64_t place_region(const image::Image& img, int pid, uint64_t len) {
    std::vector<std::pair<uint64_t, uint64_t>> used;
    for (const auto& v : img.vmas)
        if (v.pid == pid) used.emplace_back(v.start, v.end);
    return map_in_gap(std::move(used), len, 0, PROT_READ | PROT_WRITE | PROT_EXEC);
}

// setitimer() adds one scheduler tick to CPU-time timers so they never fire early;
// restoring the saved remaining time as is would add a tick per checkpoint. Measure the tick
// on this kernel (CONFIG_HZ is not exposed) and take it back off.
int64_t cpu_itimer_tick_us() {
    itimerval set{{0, 0}, {1, 0}}, got{}, off{};
    if (::setitimer(ITIMER_VIRTUAL, &set, nullptr) != 0) return 0;
    ::getitimer(ITIMER_VIRTUAL, &got);
    ::setitimer(ITIMER_VIRTUAL, &off, nullptr);
    int64_t extra = (got.it_value.tv_sec - 1) * 1000000 + got.it_value.tv_usec;
    return extra > 0 ? (extra + 500) / 1000 * 1000 : 0;
}

Itimer restorable_itimer(const image::Itimer& t, int which, int64_t tick_us) {
    Itimer out{t.interval_sec, t.interval_usec, t.value_sec, t.value_usec};
    int64_t v = t.value_sec * 1000000 + t.value_usec;
    if (v == 0 && (t.interval_sec != 0 || t.interval_usec != 0)) {
        // An interval timer that has expired but whose signal has not been taken yet reads
        // zero (ITIMER_REAL is re-armed only when SIGALRM is dequeued). setitimer() with a
        // zero value would disarm it for good: let it expire again at once instead; its
        // signal merges with the saved pending one and the next dequeue re-arms it.
        out.value_sec = 0;
        out.value_usec = 1;
        return out;
    }
    if (which != ITIMER_REAL && v > tick_us && tick_us > 0) {
        v -= tick_us;
        out.value_sec = v / 1000000;
        out.value_usec = v % 1000000;
    }
    return out;
}

template <typename T>
T* at(uint64_t addr) { return reinterpret_cast<T*>(addr); }

}  // namespace

CurrentVdso find_current_vdso() {
    CurrentVdso c;
    for (const auto& m : proc::parse_maps(read_file("/proc/self/maps"))) {
        if (m.path == "[vvar]") c.vvar = m.start, c.vvar_len = m.end - m.start;
        if (m.path == "[vvar_vclock]") c.vclock = m.start, c.vclock_len = m.end - m.start;
        if (m.path == "[vdso]") c.vdso = m.start, c.vdso_len = m.end - m.start;
    }
    return c;
}

void check_vdso_compatible(const image::Image& img, int pid, const CurrentVdso& cur) {
    const image::Vma* vdso = find_kind(img, pid, VmaKind::Vdso);
    const image::Vma* vvar = find_kind(img, pid, VmaKind::Vvar);
    const image::Vma* vclock = find_kind(img, pid, VmaKind::VvarVclock);
    if (!vdso) return;  // the program had unmapped it: ours is simply removed
    auto len = [](const image::Vma* v) { return v ? v->end - v->start : 0; };
    if (len(vdso) != cur.vdso_len || len(vvar) != cur.vvar_len || len(vclock) != cur.vclock_len)
        fail("the image's vDSO layout (vvar {} + vvar_vclock {} + vdso {} bytes) differs from this "
             "kernel's ({} + {} + {}): restoring across these kernels is not supported",
             len(vvar), len(vclock), len(vdso), cur.vvar_len, cur.vclock_len, cur.vdso_len);
    // The vDSO code reaches its data pages at fixed distances.
    if ((vvar && vdso->start - vvar->start != cur.vdso - cur.vvar) ||
        (vclock && vdso->start - vclock->start != cur.vdso - cur.vclock))
        fail("the image's vDSO and vvar pages are placed differently from this kernel's layout");
    uint64_t hash = XXH3_64bits(reinterpret_cast<const void*>(cur.vdso), cur.vdso_len);
    const image::Process* proc = nullptr;
    for (const auto& p : img.processes)
        if (p.pid == pid) proc = &p;
    if (proc && proc->vdso_hash != hash)
        fail("this kernel's vDSO differs from the one the image was dumped with (another kernel "
             "build): not supported yet");
}

void fill_sigframe(RtSigframe& f, const image::Thread& t, uint64_t fpstate) {
    user_regs_struct r;
    if (t.regs.size() != sizeof r) fail("thread {}: register record has the wrong size", t.tid);
    std::memcpy(&r, t.regs.data(), sizeof r);
    if (t.restart != image::SyscallRestart::None) {
        // What the kernel does on return for -ERESTART*: back to the syscall instruction.
        // For RESTART_RESTARTBLOCK the kernel's restart_block is gone, so the call itself
        // is made again with its original arguments.
        r.rip -= 2;
        r.rax = static_cast<uint64_t>(t.syscall_nr);
    }
    std::memset(&f, 0, sizeof f);
    auto& m = f.uc.mcontext;
    abi::regs_to_sigcontext(r, m);
    m.cs = 0x33;
    m.ss = 0x2b;
    m.fpstate = fpstate;
    f.uc.uc_flags = kUcFpXstate | kUcSigcontextSs | kUcStrictRestoreSs;
    f.uc.ss_sp = t.altstack_sp;
    f.uc.ss_flags = t.altstack_flags & ~1;  // SS_ONSTACK is a report, not a setting
    f.uc.ss_size = t.altstack_size;
    f.uc.sigmask = t.sigmask;
}

Region build_region(const RegionInputs& in) {
    const image::Image& img = *in.img;
    const int pid = in.pid;
    const image::Process* proc = nullptr;
    for (const auto& p : img.processes)
        if (p.pid == pid) proc = &p;
    if (!proc) fail("image has no process {}", pid);
    std::vector<const image::Vma*> vmas;
    for (const auto& v : img.vmas)
        if (v.pid == pid) vmas.push_back(&v);
    std::map<uint64_t, uint64_t> premapped;  // start -> end of the VMAs already filled
    for (const auto* v : vmas)
        if (in.premaps.count(v->start)) premapped[v->start] = v->end;
    std::vector<const image::PageRun*> runs;  // premapped VMAs have theirs written already
    for (const auto& r : img.page_runs) {
        if (r.pid != pid) continue;
        auto pm = premapped.upper_bound(r.addr);
        if (pm != premapped.begin() && r.addr < std::prev(pm)->second) continue;
        runs.push_back(&r);
    }
    std::vector<const image::Thread*> threads;
    for (const auto& t : img.threads)
        if (t.pid == pid) threads.push_back(&t);
    const uint64_t xsave_room = round_up(std::max<uint64_t>(max_xsave_size(), img.header.xsave_size) + 64, 64);
    const uint64_t park_len = in.vdso.vvar_len + in.vdso.vclock_len + in.vdso.vdso_len;
    auto blob = restorer_blob();

    // Pass 1 sizes, pass 2 places at the real base; both run the same code.
    auto plan = [&](Layout& l, bool fill) -> Region {
        Region reg;
        uint64_t blob_at = l.take(blob.size(), kPage);
        uint64_t args_at = l.take(sizeof(RestorerArgs), 64);
        uint64_t vmas_at = l.take(sizeof(VmaArg) * vmas.size());
        uint64_t runs_at = l.take(sizeof(PageRunArg) * runs.size());
        uint64_t close_at = l.take(sizeof(int32_t) * in.close_fds.size());
        uint64_t auxv_at = l.take(8 * proc->auxv.size());
        uint64_t groups_at = l.take(4 * proc->creds.groups.size());
        uint64_t shared_at = l.take(sizeof(Siginfo) * proc->shared_pending.size());
        uint64_t threads_at = l.take(sizeof(ThreadArg) * threads.size());
        uint64_t timers_at = l.take(sizeof(PosixTimerArg) * proc->posix_timers.size(), 8);
        std::vector<const image::FileLock*> posix_locks;
        for (const auto& fl : img.file_locks)
            if (fl.pid == pid && fl.kind == image::FileLockKind::Posix && fl.vma_start == 0) posix_locks.push_back(&fl);
        uint64_t locks_at = l.take(sizeof(PosixLockArg) * posix_locks.size(), 8);
        std::vector<uint64_t> pending_at, frame_at, fp_at, stack_at, seccomp_at;
        std::vector<std::vector<uint64_t>> insns_at(threads.size());
        for (size_t i = 0; i < threads.size(); ++i) {
            const image::Thread* t = threads[i];
            seccomp_at.push_back(l.take(sizeof(SeccompFilterArg) * t->seccomp_filters.size(), 8));
            for (const auto& f : t->seccomp_filters) insns_at[i].push_back(l.take(f.insns.size(), 8));
        }
        for (const auto* t : threads) {
            pending_at.push_back(l.take(sizeof(Siginfo) * t->pending.size()));
            frame_at.push_back(l.take(sizeof(RtSigframe), 64));
            fp_at.push_back(l.take(xsave_room, 64));
        }
        uint64_t park_at = l.take(park_len, kPage);
        for (size_t i = 0; i < threads.size(); ++i)
            stack_at.push_back(l.take(i == 0 ? kMainStack : kThreadStack, 16));
        l.take(0, kPage);
        if (!fill) return reg;

        std::memcpy(at<void>(blob_at), blob.data(), blob.size());
        auto* a = at<RestorerArgs>(args_at);
        std::memset(a, 0, sizeof *a);
        a->abi_version = kAbiVersion;
        a->pid = pid;

        // Keep only the region and the vDSO pieces while tearing down ckpt's mappings.
        a->nr_keep = 0;
        auto keep = [&](uint64_t s, uint64_t len) {
            if (!len) return;
            a->keep_start[a->nr_keep] = s;
            a->keep_end[a->nr_keep] = s + len;
            ++a->nr_keep;
        };
        auto target = [&](VmaKind k) {
            const image::Vma* v = find_kind(img, pid, k);
            return v ? v->start : 0;
        };
        auto move = [&](uint64_t cur, uint64_t len, uint64_t to) {
            if (!len) return;
            keep(cur, len);
            a->moves[a->nr_moves++] = {cur, len, to};
        };
        move(in.vdso.vvar, in.vdso.vvar_len, target(VmaKind::Vvar));
        move(in.vdso.vclock, in.vdso.vclock_len, target(VmaKind::VvarVclock));
        move(in.vdso.vdso, in.vdso.vdso_len, target(VmaKind::Vdso));
        a->park_start = park_at;

        auto* va = at<VmaArg>(vmas_at);
        a->vmas = vmas_at;
        a->nr_vmas = 0;
        for (size_t i = 0; i < vmas.size(); ++i) {
            const image::Vma& v = *vmas[i];
            if (v.kind == VmaKind::Vdso || v.kind == VmaKind::Vvar || v.kind == VmaKind::VvarVclock ||
                v.kind == VmaKind::Vsyscall)
                continue;
            VmaArg& o = va[a->nr_vmas++];
            o = {};
            o.start = v.start;
            o.end = v.end;
            o.pgoff = v.pgoff;
            o.prot = v.prot;
            o.fd = in.vma_fds[i];
            // Shared anonymous memory is mapped from the tree's shared object (shared_pool.h).
            o.flags = o.fd >= 0 ? v.flags & ~static_cast<uint32_t>(MAP_ANONYMOUS) : v.flags;
            o.advice = v.advice;
            // A private VMA that was writable once stays accounted as writable memory ("ac")
            // after an mprotect to read-only: mapping it writable first gives it that again.
            bool accounted = (" " + v.vmflags + " ").find(" ac ") != std::string::npos;
            o.has_pages = v.stored_pages > 0 || (accounted && !(v.prot & PROT_WRITE));
            if (auto pm = in.premaps.find(v.start); pm != in.premaps.end()) {
                o.premap = pm->second;
                o.has_pages = 1;  // mapped read-write: mprotect()ed to its own protection after the move
            }
        }
        auto* ra = at<PageRunArg>(runs_at);
        for (size_t i = 0; i < runs.size(); ++i) ra[i] = {runs[i]->addr, runs[i]->nr_pages, runs[i]->data_offset};
        a->runs = runs_at;
        a->nr_runs = runs.size();
        a->data_fd = in.data_fd;
        std::copy(in.close_fds.begin(), in.close_fds.end(), at<int32_t>(close_at));
        a->close_fds = close_at;
        a->nr_close_fds = static_cast<uint32_t>(in.close_fds.size());

        const auto& mm = proc->mm;
        std::memcpy(at<void>(auxv_at), proc->auxv.data(), 8 * proc->auxv.size());
        a->mm = {mm.start_code, mm.end_code, mm.start_data, mm.end_data, mm.start_brk, mm.brk,
                 mm.start_stack, mm.arg_start, mm.arg_end, mm.env_start, mm.env_end,
                 auxv_at, static_cast<uint32_t>(8 * proc->auxv.size()),
                 static_cast<uint32_t>(in.exe_fd)};

        for (size_t i = 0; i < 64 && i < proc->sigactions.size(); ++i) {
            const auto& s = proc->sigactions[i];
            a->sigactions[i] = {s.handler, s.flags, s.restorer, s.mask};
        }
        const int64_t tick_us = cpu_itimer_tick_us();
        for (size_t i = 0; i < 3 && i < proc->itimers.size(); ++i)
            a->itimers[i] = restorable_itimer(proc->itimers[i], static_cast<int>(i), tick_us);
        a->nr_rlimits = static_cast<uint32_t>(std::min<size_t>(proc->rlimits.size(), 16));
        for (uint32_t r = 0; r < a->nr_rlimits; ++r) a->rlimits[r] = {proc->rlimits[r].cur, proc->rlimits[r].max};
        for (size_t i = 0; i < proc->shared_pending.size(); ++i)
            std::memcpy(at<Siginfo>(shared_at) + i, proc->shared_pending[i].data(), sizeof(Siginfo));
        a->shared_pending = shared_at;
        a->nr_shared_pending = static_cast<uint32_t>(proc->shared_pending.size());
        auto* pt = at<PosixTimerArg>(timers_at);
        for (size_t i = 0; i < proc->posix_timers.size(); ++i) {
            const auto& t = proc->posix_timers[i];
            PosixTimerArg& o = pt[i];
            o = {};
            o.id = t.id;
            o.clockid = t.clockid;
            o.sev.value = t.sigval;
            o.sev.signo = t.signo;
            o.sev.notify = t.notify;
            o.sev.tid = t.target_tid;
            o.interval_sec = t.interval_sec;
            o.interval_nsec = t.interval_nsec;
            o.value_sec = t.value_sec;
            o.value_nsec = t.value_nsec;
            // A periodic timer whose signal was pending at dump had stopped until the signal
            // is taken, which re-arms it: its next expiry is taken to be one interval away.
            if (o.value_sec == 0 && o.value_nsec == 0) {
                o.value_sec = o.interval_sec;
                o.value_nsec = o.interval_nsec;
            }
        }
        a->posix_timers = timers_at;
        a->nr_posix_timers = static_cast<uint32_t>(proc->posix_timers.size());
        auto* pl = at<PosixLockArg>(locks_at);
        for (size_t i = 0; i < posix_locks.size(); ++i) {
            const image::FileLock& fl = *posix_locks[i];
            pl[i] = {};
            pl[i].fd = fl.fd;
            pl[i].fl.type = static_cast<int16_t>(fl.write ? F_WRLCK : F_RDLCK);
            pl[i].fl.whence = SEEK_SET;
            pl[i].fl.start = static_cast<int64_t>(fl.start);
            pl[i].fl.len = fl.end == ~0ull ? 0 : static_cast<int64_t>(fl.end - fl.start + 1);
        }
        a->posix_locks = locks_at;
        a->nr_posix_locks = static_cast<uint32_t>(posix_locks.size());

        const auto& c = proc->creds;
        a->set_creds = !(c.ruid == 0 && c.euid == 0 && c.suid == 0 && c.rgid == 0 && c.egid == 0 &&
                         c.sgid == 0 && c.groups.empty());
        uint32_t uids[4] = {c.ruid, c.euid, c.suid, c.fsuid}, gids[4] = {c.rgid, c.egid, c.sgid, c.fsgid};
        std::memcpy(a->uids, uids, sizeof uids);
        std::memcpy(a->gids, gids, sizeof gids);
        std::copy(c.groups.begin(), c.groups.end(), at<uint32_t>(groups_at));
        a->groups = groups_at;
        a->nr_groups = static_cast<uint32_t>(c.groups.size());

        auto* ta = at<ThreadArg>(threads_at);
        for (size_t i = 0; i < threads.size(); ++i) {
            const image::Thread& t = *threads[i];
            ThreadArg& o = ta[i];
            o = {};
            o.tid = t.tid;
            for (size_t k = 0; k < t.pending.size(); ++k)
                std::memcpy(at<Siginfo>(pending_at[i]) + k, t.pending[k].data(), sizeof(Siginfo));
            o.pending = pending_at[i];
            o.nr_pending = static_cast<uint32_t>(t.pending.size());
            // The xsave blob is exactly what a signal frame carries, plus the trailing magic.
            std::memcpy(at<void>(fp_at[i]), t.xsave.data(), t.xsave.size());
            auto* fx = at<uint8_t>(fp_at[i]);
            uint32_t magic1 = 0x46505853, ext = static_cast<uint32_t>(t.xsave.size() + 4);
            uint32_t xsize = static_cast<uint32_t>(t.xsave.size()), magic2 = 0x46505845;
            uint64_t xfeatures = img.header.xfeatures;
            std::memcpy(fx + 464, &magic1, 4);
            std::memcpy(fx + 468, &ext, 4);
            std::memcpy(fx + 472, &xfeatures, 8);
            std::memcpy(fx + 480, &xsize, 4);
            std::memcpy(fx + t.xsave.size(), &magic2, 4);
            fill_sigframe(*at<RtSigframe>(frame_at[i]), t, fp_at[i]);
            user_regs_struct r;
            std::memcpy(&r, t.regs.data(), sizeof r);
            o.frame = frame_at[i];
            o.fs_base = r.fs_base;
            o.gs_base = r.gs_base;
            o.rseq_addr = t.rseq_addr;
            o.rseq_len = t.rseq_len;
            o.rseq_sig = t.rseq_sig;
            o.clear_child_tid = t.clear_child_tid;
            o.robust_list = t.robust_list;
            o.robust_list_len = t.robust_list_len;
            o.stack_top = stack_at[i] + (i == 0 ? kMainStack : kThreadStack);
            std::strncpy(o.name, t.name.c_str(), sizeof o.name - 1);
            o.no_new_privs = t.no_new_privs;
            o.pdeath_signal = t.pdeath_signal;
            o.seccomp_mode = t.seccomp_mode;
            auto* sf = at<SeccompFilterArg>(seccomp_at[i]);
            for (size_t k = 0; k < t.seccomp_filters.size(); ++k) {
                const auto& f = t.seccomp_filters[k];
                if (f.insns.empty() || f.insns.size() % 8 != 0 || f.insns.size() / 8 > 4096)
                    fail("image is corrupt: seccomp filter {} of thread {} has {} bytes", k, t.tid, f.insns.size());
                std::memcpy(at<void>(insns_at[i][k]), f.insns.data(), f.insns.size());
                sf[k] = {};
                sf[k].flags = f.flags;
                sf[k].prog.len = static_cast<uint16_t>(f.insns.size() / 8);
                sf[k].prog.filter = insns_at[i][k];
            }
            o.seccomp_filters = seccomp_at[i];
            o.nr_seccomp_filters = static_cast<uint32_t>(t.seccomp_filters.size());
        }
        a->threads = threads_at;
        a->nr_threads = static_cast<uint32_t>(threads.size());

        reg.args = a;
        reg.entry = blob_at;
        reg.stack_top = stack_at[0] + kMainStack;
        return reg;
    };

    Layout sizing(0);
    plan(sizing, false);
    uint64_t len = round_up(sizing.used(), kPage);
    uint64_t base = place_region(img, pid, len);
    Layout real(base);
    Region reg = plan(real, true);
    reg.start = base;
    reg.len = len;
    reg.args->self_start = base;
    reg.args->self_len = len;
    reg.args->keep_start[reg.args->nr_keep] = base;
    reg.args->keep_end[reg.args->nr_keep] = base + len;
    ++reg.args->nr_keep;
    return reg;
}

}  // namespace ckpt::restore
