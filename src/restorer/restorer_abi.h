// The contract between `ckpt restore` and the restorer stub it leaves running in the new
// process. ckpt builds everything in one region (blob, these args, tables, one signal frame
// and one stack per thread) at an address no VMA of the image uses; every pointer below is
// an absolute address inside that region. Plain data only: freestanding code reads it.
#pragma once

#include <stdint.h>

#include "common/rt_sigframe.h"

namespace ckpt::restorer {

inline constexpr uint32_t kAbiVersion = 4;

struct VmaArg {
    uint64_t start, end;
    uint64_t pgoff;
    uint32_t prot, flags;  // final PROT_*, MAP_* (without MAP_FIXED)
    int32_t fd;            // opened file for file mappings, -1 for anonymous
    uint32_t advice;       // image::VmaAdvice bits
    uint32_t has_pages;    // map writable first: pages will be written, or it is "ac"
    uint32_t pad;
    // Nonzero: the VMA is already filled at this address (premapped by ckpt, maybe shared
    // copy-on-write with the parent): moved into place with mremap instead of mapped.
    uint64_t premap;
};

struct PageRunArg {
    uint64_t addr, nr_pages, data_offset;
};

// vDSO pieces of the running kernel, moved to where the image had them.
struct SpecialMove {
    uint64_t cur_start, len, target_start;
};

struct KSigaction {
    uint64_t handler, flags, restorer, mask;
};

struct Itimer {
    int64_t interval_sec, interval_usec, value_sec, value_usec;
};

// A POSIX timer, created with its id (PR_TIMER_CREATE_RESTORE_IDS) once every thread
// exists (a SIGEV_THREAD_ID timer needs its thread), then armed.
struct PosixTimerArg {
    struct {  // the kernel's struct sigevent (64 bytes)
        uint64_t value;
        int32_t signo;
        int32_t notify;
        int32_t tid;
        int32_t pad[11];
    } sev;
    int64_t interval_sec, interval_nsec, value_sec, value_nsec;  // struct itimerspec
    int32_t id, clockid;
};
static_assert(sizeof(PosixTimerArg::sev) == 64);

struct PosixLockArg {  // fcntl(fd, F_SETLK, &fl)
    int32_t fd, pad;
    struct {  // the kernel's struct flock
        int16_t type, whence;
        int32_t pad;
        int64_t start, len;
        int32_t pid, pad2;
    } fl;
};
static_assert(sizeof(PosixLockArg::fl) == 32);

struct Rlimit {  // struct rlimit64
    uint64_t cur, max;
};

struct Siginfo {
    uint8_t bytes[128];
};

// The frame rt_sigreturn consumes: the kernel's layout, shared with the dump side.
using abi::RtSigframe;
using abi::SigContext;
using abi::UContext;
using abi::kUcFpXstate;
using abi::kUcSigcontextSs;
using abi::kUcStrictRestoreSs;

inline constexpr uint64_t kThreadStack = 16 * 1024;  // every thread's stack in the region

struct SeccompFilterArg {
    uint64_t flags;
    struct {  // struct sock_fprog
        uint16_t len;
        uint16_t pad[3];
        uint64_t filter;  // struct sock_filter[len]
    } prog;
};

struct ThreadArg {
    int32_t tid;
    uint32_t nr_pending;
    uint64_t pending;  // Siginfo[nr_pending], thread-directed
    uint64_t frame;    // RtSigframe*, 64-byte aligned fpstate follows separately
    uint64_t fs_base, gs_base;
    uint64_t rseq_addr;
    uint32_t rseq_len, rseq_sig;
    uint64_t clear_child_tid;
    uint64_t robust_list, robust_list_len;
    uint64_t stack_top;  // this thread's stack inside the region
    char name[16];
    uint32_t no_new_privs;
    int32_t pdeath_signal;
    uint32_t seccomp_mode;  // 1 strict, 2 filters: set last, after everything else the thread does
    uint32_t nr_seccomp_filters;
    uint64_t seccomp_filters;  // SeccompFilterArg[], oldest first
};

struct MmMap {  // struct prctl_mm_map
    uint64_t start_code, end_code, start_data, end_data, start_brk, brk, start_stack;
    uint64_t arg_start, arg_end, env_start, env_end;
    uint64_t auxv;  // address of the auxv words
    uint32_t auxv_size;
    uint32_t exe_fd;
};

// Where the stub was when it failed: ckpt reads this back when the process exits.
enum Step : int32_t {
    kStepNone = 0,
    kStepBlockSignals,
    kStepRseqUnregister,
    kStepUnmapOld,
    kStepMoveVdso,
    kStepMapVma,
    kStepAdvise,
    kStepReadPages,
    kStepProtect,
    kStepCloseFds,
    kStepMm,
    kStepSigaction,
    kStepItimer,
    kStepCreds,
    kStepThreadState,
    kStepRseq,
    kStepPending,
    kStepSigreturn,
    kStepCloneThread,
    kStepNoNewPrivs,
    kStepRlimit,
    kStepPosixTimer,
    kStepPosixLock,
    kStepSeccomp,
};

struct RestorerArgs {
    uint32_t abi_version;
    int32_t failed_step;     // Step
    int64_t failed_errno;    // -errno from the kernel
    uint64_t failed_detail;  // e.g. the VMA start address

    uint64_t self_start, self_len;  // the whole region (unmapped by ckpt at the end)
    uint64_t old_rseq_addr;         // ckpt's own rseq registration, inherited by fork
    uint32_t old_rseq_len, old_rseq_sig;

    uint32_t nr_moves;
    uint32_t pad0;
    SpecialMove moves[4];
    uint64_t park_start;  // room inside the region to park the vDSO while moving it

    uint64_t keep_start[8], keep_end[8];  // ranges "unmap everything" must spare
    uint32_t nr_keep;

    uint32_t nr_vmas;
    uint64_t vmas;  // VmaArg[]
    uint64_t nr_runs;
    uint64_t runs;  // PageRunArg[]
    int32_t data_fd;
    uint32_t nr_close_fds;
    uint64_t close_fds;  // int32_t[]: mapping files, data.img, exe

    MmMap mm;
    KSigaction sigactions[64];
    Itimer itimers[3];
    uint32_t nr_shared_pending;
    uint32_t pad1;
    uint64_t shared_pending;  // Siginfo[]

    uint32_t set_creds;
    uint32_t uids[4], gids[4];  // r, e, s, fs
    uint32_t nr_groups;
    uint64_t groups;  // uint32_t[]

    int32_t pid;
    uint32_t nr_threads;
    uint64_t threads;  // ThreadArg[]

    // Set from inside: prlimit on another process needs its uid or CAP_SYS_RESOURCE.
    uint32_t nr_rlimits;
    uint32_t pad2;
    Rlimit rlimits[16];

    uint32_t nr_posix_timers;
    uint32_t pad3;
    uint64_t posix_timers;  // PosixTimerArg[]
    uint32_t nr_posix_locks;
    uint32_t pad4;
    uint64_t posix_locks;  // PosixLockArg[]
};

}  // namespace ckpt::restorer
