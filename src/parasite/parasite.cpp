// The parasite: a freestanding blob that runs inside the frozen target on behalf of ckpt.
// It reads what only the process itself can read and hands memory over to the tracer with
// vmsplice, so page contents reach the image without being copied through ckpt.
// It is built with -mgeneral-regs-only: it must not touch the target's FPU/vector state.
#include <asm/unistd.h>

#include "freestanding/syscall.h"
#include "parasite/parasite_abi.h"

using namespace ckpt::parasite;
using ckpt::fs::sys;

namespace {

constexpr uint64_t kPage = 4096;
constexpr long kPrGetTidAddress = 40;

long process_state(ProcessState& st) {
    for (int sig = 1; sig <= 64; ++sig) {
        long r = sys(__NR_rt_sigaction, sig, 0, &st.sigactions[sig - 1], 8);
        if (r < 0) return r;
    }
    for (int which = 0; which < 3; ++which) {
        long r = sys(__NR_getitimer, which, &st.itimers[which]);
        if (r < 0) return r;
    }
    st.brk = static_cast<uint64_t>(sys(__NR_brk, 0));
    for (int res = 0; res < kNrRlimits; ++res) {
        long r = sys(__NR_prlimit64, 0, res, 0, &st.rlimits[res]);
        if (r < 0) return r;
    }
    constexpr long kPrGetChildSubreaper = 37, kPrGetThpDisable = 42;
    st.child_subreaper = 0;
    long r = sys(__NR_prctl, kPrGetChildSubreaper, &st.child_subreaper, 0, 0, 0);
    if (r < 0) return r;
    r = sys(__NR_prctl, kPrGetThpDisable, 0, 0, 0, 0);
    if (r < 0) return r;
    st.thp_disable = static_cast<int32_t>(r);
    constexpr long kMembarrierGetRegistrations = 1 << 9;
    st.membarrier = static_cast<int32_t>(sys(__NR_membarrier, kMembarrierGetRegistrations, 0, 0));
    // Timer ids are per process: only the process itself can ask about them.
    for (uint32_t i = 0; i < st.nr_timers && i < kMaxTimers; ++i) {
        r = sys(__NR_timer_gettime, st.timer_ids[i], &st.timers[i]);
        if (r < 0) return r;
        st.timers[i].overrun = sys(__NR_timer_getoverrun, st.timer_ids[i]);
    }
    return 0;
}

long thread_state(ThreadState& st) {
    struct {
        uint64_t sp;
        int32_t flags;
        uint32_t pad;
        uint64_t size;
    } ss{};
    long r = sys(__NR_sigaltstack, 0, &ss);
    if (r < 0) return r;
    st.altstack_sp = ss.sp;
    st.altstack_flags = ss.flags;
    st.altstack_size = ss.size;
    uint64_t tid_addr = 0;
    r = sys(__NR_prctl, kPrGetTidAddress, &tid_addr, 0, 0, 0);
    if (r < 0) return r;
    st.clear_child_tid = tid_addr;
    constexpr long kPrGetPdeathsig = 2;
    st.pdeath_signal = 0;
    return sys(__NR_prctl, kPrGetPdeathsig, &st.pdeath_signal, 0, 0, 0);
}

bool page_is_zero(const uint64_t* p) {
    // Random data exits on the first word; only genuinely zero pages cost a full scan.
    for (uint64_t i = 0; i < kPage / 8; i += 8) {
        if (p[i] | p[i + 1] | p[i + 2] | p[i + 3] | p[i + 4] | p[i + 5] | p[i + 6] | p[i + 7])
            return false;
    }
    return true;
}

struct Iov {
    uint64_t base, len;
};

long splice_all(int fd, Iov* iov, uint64_t n) {
    // vmsplice may take less than asked; advance through the vector until all is in the pipe.
    uint64_t i = 0;
    while (i < n) {
        uint64_t cnt = n - i < 1024 ? n - i : 1024;  // UIO_MAXIOV
        long r = sys(__NR_vmsplice, fd, &iov[i], cnt, 0);
        if (r < 0) return r;
        uint64_t done = static_cast<uint64_t>(r);
        while (done > 0 && i < n) {
            if (done >= iov[i].len) {
                done -= iov[i].len;
                ++i;
            } else {
                iov[i].base += done;
                iov[i].len -= done;
                done = 0;
            }
        }
    }
    return 0;
}

long dump_pages(DumpPages& dp, Iov* iov_buf, uint64_t iov_cap, uint32_t* epipe) {
    uint64_t page_index = 0, n_iov = 0, bytes = 0;
    for (uint64_t w = 0; w < kMaxBatchPages / 64; ++w) dp.nonzero_bitmap[w] = 0;
    for (uint32_t s = 0; s < dp.nr_spans; ++s) {
        for (uint64_t p = 0; p < dp.spans[s].nr_pages; ++p, ++page_index) {
            if (page_index >= kMaxBatchPages) return -7;  // E2BIG: tracer broke the contract
            uint64_t addr = dp.spans[s].addr + p * kPage;
            if (page_is_zero(reinterpret_cast<const uint64_t*>(addr))) continue;
            dp.nonzero_bitmap[page_index / 64] |= 1ull << (page_index % 64);
            bytes += kPage;
            if (n_iov > 0 && iov_buf[n_iov - 1].base + iov_buf[n_iov - 1].len == addr) {
                iov_buf[n_iov - 1].len += kPage;
            } else {
                if (n_iov == iov_cap) return -12;  // ENOMEM: cannot happen with kMaxBatchPages
                iov_buf[n_iov++] = {addr, kPage};
            }
        }
    }
    dp.bytes_spliced = bytes;
    // Cut the vector at pipe boundaries: each pipe takes pipe_pages pages.
    uint64_t pipe_bytes = static_cast<uint64_t>(dp.pipe_pages) * kPage;
    uint64_t first = 0;
    for (uint32_t pipe = 0; pipe < dp.nr_pipes && first < n_iov; ++pipe) {
        uint64_t room = pipe_bytes, last = first;
        while (last < n_iov && room >= iov_buf[last].len) room -= iov_buf[last++].len;
        Iov rest{0, 0};
        if (last < n_iov && room > 0) {  // split the iovec that straddles the boundary
            rest = {iov_buf[last].base + room, iov_buf[last].len - room};
            iov_buf[last].len = room;
            ++last;
        }
        long r = splice_all(dp.pipe_fds[pipe], &iov_buf[first], last - first);
        if (r == -32) *epipe = 1;  // EPIPE: the tracer's read ends are gone
        if (r < 0) return r;
        if (rest.len) iov_buf[--last] = rest;
        first = last;
    }
    return first == n_iov ? 0 : -7;  // E2BIG: more pages than the pipes hold
}

}  // namespace

extern "C" __attribute__((used)) void parasite_main(ParasiteArgs* args) {
    // Worst case each page is its own iovec; the vector lives on the parasite stack.
    static_assert(kMaxBatchPages * sizeof(Iov) <= kStackSize / 2);
    Iov iov[kMaxBatchPages];
    long r = -22;  // EINVAL for unknown commands or ABI mismatch
    if (args->abi_version == kAbiVersion) {
        switch (args->cmd) {
            case kCmdProcessState: r = process_state(args->process); break;
            case kCmdThreadState: r = thread_state(args->thread); break;
            case kCmdDumpPages: r = dump_pages(args->pages, iov, kMaxBatchPages, &args->exit_leader.epipe_seen); break;
            case kCmdHang:
                for (;;) sys(__NR_pause);
        }
    }
    args->result = r;
}

// Called only when the tracer has vanished: undo what the parasite holds in the target.
// Returns non-zero if the region may be unmapped on the way home.
extern "C" __attribute__((used)) long parasite_emergency(EmergencyExit* ex) {
    for (uint32_t i = 0; i < ex->nr_fds && i <= kMaxPipes; ++i)
        if (ex->fds[i] >= 0) sys(__NR_close, ex->fds[i]);
    if (ex->pending_pipe) {
        const int32_t* fds = reinterpret_cast<const int32_t*>(ex->pending_pipe);
        for (int i = 0; i < 2; ++i)
            if (fds[i] >= 0) sys(__NR_close, fds[i]);
    }
    if (ex->epipe_seen && !ex->sigpipe_was_pending) {
        uint64_t set = 1ull << (13 - 1);  // SIGPIPE
        struct {
            int64_t sec, nsec;
        } zero{0, 0};
        sys(__NR_rt_sigtimedwait, &set, 0, &zero, 8);
    }
    return ex->unmap_frame != 0;
}

// Offset 32 (kLeaderHomeOffset) is the same way home for the leader between commands: the
// return address of its frame in the region, so that a remote syscall ckpt was making in it
// also ends here (the EmergencyExit pointer is then read from offset 8).
//
// Entry (offset 0): rdi = args, rsi = this thread's EmergencyExit, rsp = its stack (16-byte
// aligned by the tracer). When the command is done the blob makes the marker syscall
// getpid(kDoneMagic): the tracer, stepping it with PTRACE_SYSCALL, stops there and takes
// the thread back. No signal is ever raised. The marker returns only if the tracer is gone:
// then the thread goes home on its own, through rt_sigreturn on its saved frame, unmapping
// the region on the way when it may (through the vDSO's `syscall; ret`, with the stack on a
// frame outside the region, since the code and frame here vanish with the munmap).
asm(R"(
    .section .text.entry,"ax"
    .globl blob_entry
blob_entry:
    jmp 2f
    .org 8
blob_leader_exit:
    .quad 0
    .org 16
blob_sigreturn:
    mov $15, %eax
    syscall
    ud2
    .org 32
blob_leader_home:
    lea blob_entry(%rip), %rbx
    mov 8(%rbx), %rbx
    and $-16, %rsp
    jmp 4f
2:
    mov %rsi, %rbx
    call parasite_main
    mov $39, %eax
    movabs $0x434b5054444f4e45, %rdi
    syscall
4:
    mov %rbx, %rdi
    call parasite_emergency
    test %rax, %rax
    jz 3f
    mov 16(%rbx), %rdi
    mov 24(%rbx), %rsi
    mov 32(%rbx), %rcx
    mov 8(%rbx), %rsp
    mov $11, %eax
    jmp *%rcx
3:
    mov 0(%rbx), %rsp
    add $8, %rsp
    jmp blob_sigreturn
    .previous
)");
