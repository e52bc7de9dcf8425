// Checked wrappers around ptrace for one thread. All of them take a stopped tracee.
#pragma once

#include <sys/types.h>
#include <sys/user.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ckpt::tracer {

using Regs = user_regs_struct;

Regs get_regs(pid_t tid);
void set_regs(pid_t tid, const Regs& regs);
std::string get_xstate(pid_t tid);  // NT_X86_XSTATE, its size decided by the kernel
void set_xstate(pid_t tid, const std::string& xstate);
uint64_t get_sigmask(pid_t tid);
void set_sigmask(pid_t tid, uint64_t mask);
// siginfo_t (128 bytes each) queued for the thread, or for the whole process if `shared`.
std::vector<std::string> peek_pending(pid_t tid, bool shared);

struct RseqConfig {
    uint64_t addr = 0;
    uint32_t len = 0, flags = 0, sig = 0;
};
RseqConfig get_rseq(pid_t tid);

// Result of waiting for a tracee.
struct StopStatus {
    bool exited = false;      // the thread is gone (exit or killed)
    bool timed_out = false;   // wait_tid_for: nothing happened in time
    int status = 0;           // raw wait status
    int signal() const;       // WSTOPSIG
    int event() const;        // PTRACE_EVENT_* or 0
    bool syscall_stop() const;  // SIGTRAP|0x80 with TRACESYSGOOD
};
StopStatus wait_tid(pid_t tid);
// Same, but gives up once `timeout_ms` have passed (timed_out set, nothing reaped). Needs a
// SIGALRM handler without SA_RESTART (interrupt::install).
StopStatus wait_tid_for(pid_t tid, long timeout_ms);
// Waits for any tracee or child; `tid` says which one reported.
StopStatus wait_any(pid_t& tid);

// Continue in the given mode (PTRACE_CONT, PTRACE_SYSCALL) delivering `sig`.
void resume(pid_t tid, int request, int sig = 0);

// Reads / writes target memory without going through the target (process_vm_*).
void read_mem(pid_t pid, uint64_t addr, void* buf, size_t len);
void write_mem(pid_t pid, uint64_t addr, const void* buf, size_t len);

}  // namespace ckpt::tracer
