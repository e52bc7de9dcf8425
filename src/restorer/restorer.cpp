// The restorer stub: a freestanding blob that ckpt jumps into as the last act of the
// process it forked with the dumped PID. It tears down everything of ckpt, rebuilds the
// dumped address space and kernel state, and becomes the dumped program with rt_sigreturn.
// ckpt (tracing the process) then unmaps the stub's region from outside, so nothing of ckpt
// remains. On failure the stub records where and why in RestorerArgs and exits; ckpt reads
// that back at the exit stop and reports it.
#include <asm/unistd.h>

#include "freestanding/syscall.h"
#include "restorer/restorer_abi.h"

using namespace ckpt::restorer;
using ckpt::fs::sys;

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kTaskSize = 0x7ffffffff000ull;
constexpr long kProtRead = 1, kProtWrite = 2;
constexpr long kMapFixed = 0x10, kMapPrivate = 0x02, kMapAnonymous = 0x20;
constexpr long kMremapMaymove = 1, kMremapFixed = 2;
constexpr long kMadvPopulateWrite = 23;
constexpr long kMadvHugepage = 14, kMadvNohugepage = 15, kMadvDontdump = 16;
constexpr long kMadvDontfork = 10, kMadvWipeonfork = 18;
constexpr long kMadvRandom = 1, kMadvSequential = 2, kMadvMergeable = 12;
constexpr long kMlockOnfault = 1;
constexpr long kPrSetNoNewPrivs = 38;
constexpr long kPrSetPdeathsig = 1;
constexpr long kPrSetMm = 35, kPrSetMmMap = 14, kPrSetName = 15;
constexpr long kArchSetFs = 0x1002, kArchSetGs = 0x1001;
constexpr long kRseqFlagUnregister = 1;
constexpr long kSigSetmask = 2;

constexpr uint64_t kCloneThreadFlags = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000;
// VM | FS | FILES | SIGHAND | THREAD | SYSVSEM

struct CloneArgs {  // struct clone_args
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
        set_tid_size, cgroup;
};

[[noreturn]] void die(RestorerArgs* a, Step step, long err, uint64_t detail) {
    a->failed_step = step;
    a->failed_errno = err;
    a->failed_detail = detail;
    for (;;) sys(__NR_exit_group, 1);
}

inline void check(RestorerArgs* a, long r, Step step, uint64_t detail = 0) {
    if (ckpt::fs::is_err(r)) die(a, step, r, detail);
}

// Unmaps [lo, hi) except the ranges ckpt asked to keep and the premapped VMAs.
void unmap_except(RestorerArgs* a, uint64_t lo, uint64_t hi) {
    auto* vmas = reinterpret_cast<VmaArg*>(a->vmas);
    uint64_t cur = lo;
    while (cur < hi) {
        // The nearest kept range at or after cur.
        uint64_t next_keep = hi, next_keep_end = hi;
        auto consider = [&](uint64_t s, uint64_t e) {
            if (e <= cur || s >= next_keep) return;
            next_keep = s < cur ? cur : s;
            next_keep_end = e;
        };
        for (uint32_t i = 0; i < a->nr_keep; ++i) consider(a->keep_start[i], a->keep_end[i]);
        for (uint32_t i = 0; i < a->nr_vmas; ++i)
            if (vmas[i].premap) consider(vmas[i].premap, vmas[i].premap + (vmas[i].end - vmas[i].start));
        if (next_keep > cur) check(a, sys(__NR_munmap, cur, next_keep - cur), kStepUnmapOld, cur);
        cur = next_keep_end;
    }
}

void move_vdso(RestorerArgs* a) {
    // Park first: the target spots may overlap where the pieces are now.
    uint64_t park = a->park_start;
    for (uint32_t i = 0; i < a->nr_moves; ++i) {
        SpecialMove& m = a->moves[i];
        long r = sys(__NR_mremap, m.cur_start, m.len, m.len, kMremapMaymove | kMremapFixed, park);
        check(a, r, kStepMoveVdso, m.cur_start);
        m.cur_start = park;
        park += m.len;
    }
    for (uint32_t i = 0; i < a->nr_moves; ++i) {
        SpecialMove& m = a->moves[i];
        if (m.target_start == 0) {  // the image had no such piece
            check(a, sys(__NR_munmap, m.cur_start, m.len), kStepMoveVdso, m.cur_start);
            continue;
        }
        long r = sys(__NR_mremap, m.cur_start, m.len, m.len, kMremapMaymove | kMremapFixed,
                     m.target_start);
        check(a, r, kStepMoveVdso, m.target_start);
    }
}

void apply_advice(RestorerArgs* a, const VmaArg& v) {
    uint64_t len = v.end - v.start;
    if (v.advice & 1) check(a, sys(__NR_madvise, v.start, len, kMadvHugepage), kStepAdvise, v.start);
    if (v.advice & 2) check(a, sys(__NR_madvise, v.start, len, kMadvNohugepage), kStepAdvise, v.start);
    if (v.advice & 4) check(a, sys(__NR_madvise, v.start, len, kMadvDontdump), kStepAdvise, v.start);
    if (v.advice & 8) check(a, sys(__NR_madvise, v.start, len, kMadvDontfork), kStepAdvise, v.start);
    if (v.advice & 16) check(a, sys(__NR_madvise, v.start, len, kMadvWipeonfork), kStepAdvise, v.start);
    if (v.advice & 64) check(a, sys(__NR_madvise, v.start, len, kMadvMergeable), kStepAdvise, v.start);
    if (v.advice & 128) check(a, sys(__NR_madvise, v.start, len, kMadvSequential), kStepAdvise, v.start);
    if (v.advice & 256) check(a, sys(__NR_madvise, v.start, len, kMadvRandom), kStepAdvise, v.start);
    if (v.advice & 32)
        check(a, sys(__NR_mlock2, v.start, len, (v.advice & 512) ? kMlockOnfault : 0), kStepAdvise, v.start);
}

void map_vmas(RestorerArgs* a) {
    auto* vmas = reinterpret_cast<VmaArg*>(a->vmas);
    for (uint32_t i = 0; i < a->nr_vmas; ++i) {
        const VmaArg& v = vmas[i];
        long prot = v.prot | (v.has_pages ? kProtWrite | kProtRead : 0);
        long r = v.premap ? sys(__NR_mremap, v.premap, v.end - v.start, v.end - v.start,
                                kMremapMaymove | kMremapFixed, v.start)
                          : sys(__NR_mmap, v.start, v.end - v.start, prot, v.flags | kMapFixed, v.fd, v.pgoff);
        check(a, r, kStepMapVma, v.start);
        if (static_cast<uint64_t>(r) != v.start) die(a, kStepMapVma, -14, v.start);
        apply_advice(a, v);
    }
}

void fill_pages(RestorerArgs* a) {
    auto* runs = reinterpret_cast<PageRunArg*>(a->runs);
    for (uint64_t i = 0; i < a->nr_runs; ++i) {
        const PageRunArg& run = runs[i];
        uint64_t len = run.nr_pages * kPage;
        // Populating in one call is an order of magnitude faster than taking a page fault
        // per page inside the read below.
        sys(__NR_madvise, run.addr, len, kMadvPopulateWrite);
        uint64_t done = 0;
        while (done < len) {
            long r = sys(__NR_pread64, a->data_fd, run.addr + done, len - done,
                         run.data_offset + done);
            if (r == -4) continue;  // EINTR
            check(a, r, kStepReadPages, run.addr + done);
            if (r == 0) die(a, kStepReadPages, -5, run.addr + done);  // EIO: truncated
            done += static_cast<uint64_t>(r);
        }
    }
}

void protect_vmas(RestorerArgs* a) {
    auto* vmas = reinterpret_cast<VmaArg*>(a->vmas);
    for (uint32_t i = 0; i < a->nr_vmas; ++i) {
        const VmaArg& v = vmas[i];
        if (!v.has_pages || v.prot == (v.prot | kProtRead | kProtWrite)) continue;
        check(a, sys(__NR_mprotect, v.start, v.end - v.start, v.prot), kStepProtect, v.start);
    }
}

void close_fds(RestorerArgs* a) {
    auto* fds = reinterpret_cast<int32_t*>(a->close_fds);
    for (uint32_t i = 0; i < a->nr_close_fds; ++i)
        check(a, sys(__NR_close, fds[i]), kStepCloseFds, static_cast<uint64_t>(fds[i]));
}

void restore_signals_and_timers(RestorerArgs* a) {
    for (int sig = 1; sig <= 64; ++sig) {
        if (sig == 9 || sig == 19) continue;  // SIGKILL, SIGSTOP cannot be changed
        check(a, sys(__NR_rt_sigaction, sig, &a->sigactions[sig - 1], 0, 8), kStepSigaction,
              static_cast<uint64_t>(sig));
    }
    for (int which = 0; which < 3; ++which)
        check(a, sys(__NR_setitimer, which, &a->itimers[which], 0), kStepItimer,
              static_cast<uint64_t>(which));
}

// After every thread exists: a SIGEV_THREAD_ID timer names one. Armed at once; its signal
// waits, blocked, until the program runs.
void restore_posix_timers(RestorerArgs* a) {
    if (!a->nr_posix_timers) return;
    constexpr long kPrTimerCreateRestoreIds = 77, kOn = 1, kOff = 0;
    check(a, sys(__NR_prctl, kPrTimerCreateRestoreIds, kOn, 0, 0, 0), kStepPosixTimer, ~0ull);
    auto* timers = reinterpret_cast<PosixTimerArg*>(a->posix_timers);
    for (uint32_t i = 0; i < a->nr_posix_timers; ++i) {
        PosixTimerArg& t = timers[i];
        int32_t id = t.id;  // in: the id wanted
        check(a, sys(__NR_timer_create, t.clockid, &t.sev, &id), kStepPosixTimer, static_cast<uint64_t>(t.id));
        if (id != t.id) die(a, kStepPosixTimer, -16, static_cast<uint64_t>(t.id));  // EBUSY
        check(a, sys(__NR_timer_settime, t.id, 0, &t.interval_sec, 0), kStepPosixTimer, static_cast<uint64_t>(t.id));
    }
    check(a, sys(__NR_prctl, kPrTimerCreateRestoreIds, kOff, 0, 0, 0), kStepPosixTimer, ~0ull);
}

// After close_fds: closing any descriptor of a file drops the process's POSIX locks on it.
void restore_posix_locks(RestorerArgs* a) {
    constexpr long kFSetlk = 6;
    auto* locks = reinterpret_cast<PosixLockArg*>(a->posix_locks);
    for (uint32_t i = 0; i < a->nr_posix_locks; ++i)
        check(a, sys(__NR_fcntl, locks[i].fd, kFSetlk, &locks[i].fl), kStepPosixLock, static_cast<uint64_t>(locks[i].fd));
}

void restore_rlimits(RestorerArgs* a) {
    for (uint32_t r = 0; r < a->nr_rlimits; ++r)
        check(a, sys(__NR_prlimit64, 0, r, &a->rlimits[r], 0), kStepRlimit, r);
}

void restore_creds(RestorerArgs* a) {
    if (!a->set_creds) return;
    check(a, sys(__NR_setgroups, a->nr_groups, a->groups), kStepCreds, 0);
    check(a, sys(__NR_setresgid, a->gids[0], a->gids[1], a->gids[2]), kStepCreds, 1);
    sys(__NR_setfsgid, a->gids[3]);
    check(a, sys(__NR_setresuid, a->uids[0], a->uids[1], a->uids[2]), kStepCreds, 2);
    sys(__NR_setfsuid, a->uids[3]);
}

void queue_shared_pending(RestorerArgs* a) {
    auto* shared = reinterpret_cast<Siginfo*>(a->shared_pending);
    for (uint32_t i = 0; i < a->nr_shared_pending; ++i) {
        int sig = *reinterpret_cast<int32_t*>(shared[i].bytes);
        check(a, sys(__NR_rt_sigqueueinfo, a->pid, sig, &shared[i]), kStepPending,
              static_cast<uint64_t>(sig));
    }
}

void queue_pending(RestorerArgs* a, ThreadArg& t) {
    auto* mine = reinterpret_cast<Siginfo*>(t.pending);
    for (uint32_t i = 0; i < t.nr_pending; ++i) {
        int sig = *reinterpret_cast<int32_t*>(mine[i].bytes);
        check(a, sys(__NR_rt_tgsigqueueinfo, a->pid, t.tid, sig, &mine[i]), kStepPending,
              static_cast<uint64_t>(sig));
    }
}

[[noreturn]] void become(RestorerArgs* a, ThreadArg& t) {
    check(a, sys(__NR_arch_prctl, kArchSetFs, t.fs_base), kStepThreadState, 1);
    check(a, sys(__NR_arch_prctl, kArchSetGs, t.gs_base), kStepThreadState, 2);
    check(a, sys(__NR_set_robust_list, t.robust_list, t.robust_list_len), kStepThreadState, 3);
    sys(__NR_set_tid_address, t.clear_child_tid);
    check(a, sys(__NR_prctl, kPrSetName, t.name, 0, 0, 0), kStepThreadState, 4);
    queue_pending(a, t);
    // Credentials are per thread for the kernel (libc broadcasts them; we are libc here).
    restore_creds(a);
    // After the credentials: it would be harmless before them, but it is one-way.
    if (t.no_new_privs)
        check(a, sys(__NR_prctl, kPrSetNoNewPrivs, 1, 0, 0, 0), kStepNoNewPrivs, static_cast<uint64_t>(t.tid));
    // After the credentials, whose change clears it.
    if (t.pdeath_signal)
        check(a, sys(__NR_prctl, kPrSetPdeathsig, t.pdeath_signal, 0, 0, 0), kStepThreadState, 5);
    // rseq last but seccomp: from here on the kernel may write into the restored rseq area.
    if (t.rseq_addr)
        check(a, sys(__NR_rseq, t.rseq_addr, t.rseq_len, 0, t.rseq_sig), kStepRseq, t.rseq_addr);
    // Seccomp really last: the filters may forbid anything the stub does, except the
    // rt_sigreturn below (which strict mode allows too).
    constexpr long kPrSetSeccomp = 22, kSeccompModeStrict = 1, kSeccompSetModeFilter = 1;
    if (t.seccomp_mode == 1)
        check(a, sys(__NR_prctl, kPrSetSeccomp, kSeccompModeStrict, 0, 0, 0), kStepSeccomp, static_cast<uint64_t>(t.tid));
    auto* filters = reinterpret_cast<SeccompFilterArg*>(t.seccomp_filters);
    for (uint32_t i = 0; i < t.nr_seccomp_filters; ++i)
        check(a, sys(__NR_seccomp, kSeccompSetModeFilter, filters[i].flags, &filters[i].prog), kStepSeccomp,
              static_cast<uint64_t>(t.tid));
    uint64_t uc = t.frame + 8;  // rt_sigreturn finds the frame at rsp - 8
    asm volatile(
        "mov %0, %%rsp\n"
        "mov %1, %%eax\n"
        "syscall\n"
        :
        : "r"(uc), "i"(__NR_rt_sigreturn)
        : "memory");
    die(a, kStepSigreturn, -14, 0);
}

}  // namespace

// clone3 for a thread: the child starts on its own stack with every register as the parent
// had it, so its arguments travel in callee-saved r12/r13.
extern "C" long restorer_clone3(CloneArgs* args, uint64_t size, ThreadArg* t, RestorerArgs* a);
asm(R"(
    .text
    .globl restorer_clone3
restorer_clone3:
    push %r12
    push %r13
    mov %rdx, %r12
    mov %rcx, %r13
    mov $435, %eax
    syscall
    test %rax, %rax
    jnz 1f
    mov %r12, %rdi
    mov %r13, %rsi
    and $-16, %rsp
    call restorer_thread_main
    ud2
1:
    pop %r13
    pop %r12
    ret
)");

extern "C" __attribute__((used, noreturn)) void restorer_main(RestorerArgs* a) {
    if (a->abi_version != kAbiVersion) die(a, kStepNone, -22, a->abi_version);
    uint64_t all = ~0ull;
    check(a, sys(__NR_rt_sigprocmask, kSigSetmask, &all, 0, 8), kStepBlockSignals);
    // fork() kept ckpt's rseq registration; its area is about to disappear.
    if (a->old_rseq_addr)
        check(a, sys(__NR_rseq, a->old_rseq_addr, a->old_rseq_len, kRseqFlagUnregister,
                     a->old_rseq_sig), kStepRseqUnregister);

    unmap_except(a, 0, kTaskSize);
    move_vdso(a);
    map_vmas(a);
    fill_pages(a);
    protect_vmas(a);
    check(a, sys(__NR_prctl, kPrSetMm, kPrSetMmMap, &a->mm, sizeof(MmMap), 0), kStepMm);
    close_fds(a);
    restore_posix_locks(a);
    // Only now: the limits (address space, data, open files) constrained the program, not
    // the rebuilding of it.
    restore_rlimits(a);

    // Tell ckpt the address space is final (with our args in rax): it watches the rest
    // syscall by syscall and removes this region once rt_sigreturn is done.
    asm volatile("int3" : : "a"(a) : "memory");

    restore_signals_and_timers(a);
    queue_shared_pending(a);
    // Every other thread with its own TID. Each becomes itself and stops in ckpt's hands at
    // its rt_sigreturn; ckpt lets them all go together, so none runs program code early.
    auto* threads = reinterpret_cast<ThreadArg*>(a->threads);
    for (uint32_t i = 1; i < a->nr_threads; ++i) {
        uint64_t tid = static_cast<uint64_t>(threads[i].tid);
        CloneArgs ca{};
        ca.flags = kCloneThreadFlags;
        ca.stack = threads[i].stack_top - kThreadStack;
        ca.stack_size = kThreadStack;
        ca.set_tid = reinterpret_cast<uint64_t>(&tid);
        ca.set_tid_size = 1;
        long r = restorer_clone3(&ca, sizeof ca, &threads[i], a);
        check(a, r, kStepCloneThread, tid);
    }
    restore_posix_timers(a);
    become(a, threads[0]);
}

extern "C" __attribute__((used, noreturn)) void restorer_thread_main(ThreadArg* t, RestorerArgs* a) {
    become(a, *t);
}

// Entry: rdi = RestorerArgs*, rsp = the main thread's stack in the region.
asm(R"(
    .section .text.entry,"ax"
    .globl blob_entry
blob_entry:
    and $-16, %rsp
    call restorer_main
    ud2
    .previous
)");
