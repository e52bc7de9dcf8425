// The contract between ckpt (tracer side) and the parasite blob running inside the target.
//
// The tracer maps one shared region into the target: [blob code][ParasiteArgs][stack].
// It runs one command at a time in "trap mode": it points the stopped thread at the blob's
// entry with rdi = &ParasiteArgs, rsp = top of the stack, and resumes it; the blob executes
// `cmd`, stores `result` and traps with int3. Everything here is plain data with fixed layout
// because both a hosted C++ program and freestanding code read it.
#pragma once

#include <stdint.h>

namespace ckpt::parasite {

inline constexpr uint32_t kAbiVersion = 1;

enum Command : uint32_t {
    kCmdProcessState = 1,  // sigactions, itimers: per process, readable only from inside
    kCmdThreadState = 2,   // sigaltstack, clear_child_tid: per thread
    kCmdDumpPages = 3,     // zero-check and vmsplice a batch of pages into a pipe
};

struct KernelSigaction {  // the kernel's struct sigaction for rt_sigaction on x86_64
    uint64_t handler;
    uint64_t flags;
    uint64_t restorer;
    uint64_t mask;
};

struct Itimer {  // struct itimerval
    int64_t interval_sec, interval_usec, value_sec, value_usec;
};

struct Rlimit {  // struct rlimit64
    uint64_t cur, max;
};

inline constexpr int kNrRlimits = 16;  // RLIM_NLIMITS

struct ProcessState {
    KernelSigaction sigactions[64];  // index = signal number - 1
    Itimer itimers[3];               // ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF
    uint64_t brk;                    // brk(0): the exact break, not in /proc
    // Read from inside: prlimit64 on another process needs its uid or CAP_SYS_RESOURCE.
    Rlimit rlimits[kNrRlimits];
    int32_t child_subreaper;  // PR_GET_CHILD_SUBREAPER: not shown anywhere in /proc
    int32_t thp_disable;      // PR_GET_THP_DISABLE: status shows only part of it
    int32_t membarrier;       // MEMBARRIER_CMD_GET_REGISTRATIONS (6.3+), -errno if unknown
    int32_t pad;
};

struct ThreadState {
    uint64_t altstack_sp;
    int32_t altstack_flags;
    uint32_t pad;
    uint64_t altstack_size;
    uint64_t clear_child_tid;
};

struct PageSpan {  // a run of pages the tracer wants looked at
    uint64_t addr;
    uint64_t nr_pages;
};

inline constexpr uint32_t kMaxSpans = 4096;
inline constexpr uint32_t kMaxBatchPages = 4096;  // 16 MiB per batch, spread over the pipes
inline constexpr uint32_t kMaxPipes = 16;  // pipes are at most pipe-max-size (1 MiB) each

struct DumpPages {
    // Write ends of the page pipes, inside the target. Pages go to pipe 0 until it holds
    // pipe_pages, then to pipe 1, ...: the tracer drains them in the same order.
    int32_t pipe_fds[kMaxPipes];
    uint32_t nr_pipes;
    uint32_t pipe_pages;
    uint32_t nr_spans;
    PageSpan spans[kMaxSpans];
    // Out: one bit per page, in span order: 1 = non-zero page, written to the pipe.
    uint64_t nonzero_bitmap[kMaxBatchPages / 64];
    uint64_t bytes_spliced;
};

struct ParasiteArgs {
    uint32_t abi_version;
    uint32_t cmd;
    int64_t result;  // 0 or -errno
    union {
        ProcessState process;
        ThreadState thread;
        DumpPages pages;
    };
};

inline constexpr uint64_t kStackSize = 256 * 1024;

// The blob ends each command with getpid() carrying this in rdi ("CKPTDONE").
inline constexpr long kDoneSyscall = 39;
inline constexpr uint64_t kDoneMagic = 0x434b5054444f4e45ull;

}  // namespace ckpt::parasite
