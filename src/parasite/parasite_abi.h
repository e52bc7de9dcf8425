// The contract between ckpt (tracer side) and the parasite blob running inside the target.
//
// The tracer maps one shared region into the target:
//   [blob code][ParasiteArgs][leader frame][thread frame][leader stack][thread stack].
// It runs one command at a time: it points the stopped thread at the blob's entry with
// rdi = &ParasiteArgs, rsi = &EmergencyExit for that thread, rsp = top of its stack, and
// resumes it; the blob executes `cmd`, stores `result` and makes the marker syscall, where
// the tracer (stepping it with PTRACE_SYSCALL) stops it. If the tracer is gone, the marker
// simply returns and the blob takes the thread home by itself (EmergencyExit).
// Everything here is plain data with fixed layout because both a hosted C++ program and
// freestanding code read it.
#pragma once

#include <stdint.h>

namespace ckpt::parasite {

inline constexpr uint32_t kAbiVersion = 3;

// Fixed offsets in the blob (see the entry code in parasite.cpp).
inline constexpr uint64_t kEntryOffset = 0;
inline constexpr uint64_t kLeaderExitPtrOffset = 8;  // u64: address of args->exit_leader
inline constexpr uint64_t kSigreturnOffset = 16;  // `mov $15, %eax; syscall`
inline constexpr uint64_t kLeaderHomeOffset = 32;  // the leader's way home (parasite.cpp)

enum Command : uint32_t {
    kCmdProcessState = 1,  // sigactions, itimers: per process, readable only from inside
    kCmdThreadState = 2,   // sigaltstack, clear_child_tid: per thread
    kCmdDumpPages = 3,     // zero-check and vmsplice a batch of pages into a pipe
    kCmdHang = 4,          // testing: never finish (the tracer's timeout must cure the target)
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
inline constexpr uint32_t kMaxTimers = 512;  // POSIX timers read per process

struct TimerValue {  // struct itimerspec, and timer_getoverrun
    int64_t interval_sec, interval_nsec, value_sec, value_nsec;
    int64_t overrun;  // or -errno
};

struct ProcessState {
    KernelSigaction sigactions[64];  // index = signal number - 1
    Itimer itimers[3];               // ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF
    uint64_t brk;                    // brk(0): the exact break, not in /proc
    // Read from inside: prlimit64 on another process needs its uid or CAP_SYS_RESOURCE.
    Rlimit rlimits[kNrRlimits];
    int32_t child_subreaper;  // PR_GET_CHILD_SUBREAPER: not shown anywhere in /proc
    int32_t thp_disable;      // PR_GET_THP_DISABLE: status shows only part of it
    int32_t membarrier;       // MEMBARRIER_CMD_GET_REGISTRATIONS (6.3+), -errno if unknown
    // In: the ids of the process's POSIX timers (from /proc/PID/timers). Out: their values.
    uint32_t nr_timers;
    int32_t timer_ids[kMaxTimers];
    TimerValue timers[kMaxTimers];
};

struct ThreadState {
    uint64_t altstack_sp;
    int32_t altstack_flags;
    int32_t pdeath_signal;  // PR_GET_PDEATHSIG: per thread, not shown in /proc
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

// How a thread running the blob gets home when the tracer vanished: its rt_sigframe (the
// original registers, FPU state and mask) lies in the region at `frame`. The leader also
// closes the page pipes it holds and, when `unmap_frame` is set (a copy of its frame outside
// the region), unmaps the region on the way, through the vDSO's `syscall; ret` at `g_sys`.
struct EmergencyExit {
    uint64_t frame;
    uint64_t unmap_frame;
    uint64_t unmap_base, unmap_len;
    uint64_t g_sys;
    uint64_t pending_pipe;   // int[2] a pipe2 in flight writes to (pre-filled with -1), or 0
    uint32_t sigpipe_was_pending;  // in the thread's own queue before the parasite ran
    uint32_t epipe_seen;           // a vmsplice failed with EPIPE (and so queued a SIGPIPE)
    uint32_t nr_fds;
    int32_t fds[kMaxPipes + 1];  // write ends, and a read end while it is handed over
};
// The entry code reads these with fixed offsets.
static_assert(__builtin_offsetof(EmergencyExit, frame) == 0);
static_assert(__builtin_offsetof(EmergencyExit, unmap_frame) == 8);
static_assert(__builtin_offsetof(EmergencyExit, unmap_base) == 16);
static_assert(__builtin_offsetof(EmergencyExit, unmap_len) == 24);
static_assert(__builtin_offsetof(EmergencyExit, g_sys) == 32);

struct ParasiteArgs {
    uint32_t abi_version;
    uint32_t cmd;
    int64_t result;  // 0 or -errno
    EmergencyExit exit_leader;
    EmergencyExit exit_thread;
    union {
        ProcessState process;
        ThreadState thread;
        DumpPages pages;
    };
};

inline constexpr uint64_t kStackSize = 256 * 1024;  // each of the two stacks
inline constexpr uint64_t kFrameSlot = 64 * 1024;   // each frame, with room below it

// The blob ends each command with getpid() carrying this in rdi ("CKPTDONE").
inline constexpr long kDoneSyscall = 39;
inline constexpr uint64_t kDoneMagic = 0x434b5054444f4e45ull;

}  // namespace ckpt::parasite
