// Executing system calls inside a frozen thread, rr-style: constructing the object saves the
// thread's registers, FPU state and signal mask; the destructor puts every one of them back
// and returns the thread to the interrupt stop it was frozen in. Error paths need no
// cleanup code of their own.
//
// A syscall is run by pointing the thread at an existing `syscall` instruction (found in the
// vDSO) and stepping it with PTRACE_SYSCALL to the syscall-exit stop: no code is written into
// the target and no signal is raised in it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "common/remote_ptr.h"
#include "tracer/ptrace.h"

namespace ckpt::tracer {

// An address in the target holding the bytes 0f 05 (syscall).
RemoteAddr find_syscall_insn(pid_t pid);

class RemoteSyscalls {
  public:
    RemoteSyscalls(pid_t pid, pid_t tid, RemoteAddr syscall_insn);
    ~RemoteSyscalls();
    RemoteSyscalls(const RemoteSyscalls&) = delete;
    RemoteSyscalls& operator=(const RemoteSyscalls&) = delete;

    pid_t pid() const { return pid_; }
    pid_t tid() const { return tid_; }
    const Regs& saved_regs() const { return saved_regs_; }

    // Returns the raw result (-errno on failure), like the kernel does.
    long syscall(long nr, uint64_t a1 = 0, uint64_t a2 = 0, uint64_t a3 = 0, uint64_t a4 = 0,
                 uint64_t a5 = 0, uint64_t a6 = 0);
    // Same, but throws with `what` in the message when the call fails.
    long checked(const char* what, long nr, uint64_t a1 = 0, uint64_t a2 = 0, uint64_t a3 = 0,
                 uint64_t a4 = 0, uint64_t a5 = 0, uint64_t a6 = 0);

    // Runs code at `entry` with rdi = arg and rsp = stack until it makes the syscall
    // `done_nr` with rdi == done_magic (its way of saying it has finished).
    void run_code(RemoteAddr entry, RemoteAddr stack_top, uint64_t arg, long done_nr,
                  uint64_t done_magic);

  private:
    void step_to_syscall_exit(long expected_nr);

    pid_t pid_, tid_;
    RemoteAddr syscall_insn_;
    Regs saved_regs_;
    std::string saved_xstate_;
    uint64_t saved_sigmask_;
};

}  // namespace ckpt::tracer
