// An x86_64 rt_sigframe holding a thread's original state, built by the tracer and written
// into the target. It is the target's way home when ckpt disappears: every remote action
// leaves the thread on a path that ends in rt_sigreturn on such a frame, so if ckpt is
// killed at any moment, the thread restores its own registers, FPU/AVX state and signal
// mask and carries on as if it had never been touched.
#pragma once

#include <cstdint>
#include <string>

#include "common/remote_ptr.h"
#include "tracer/ptrace.h"

namespace ckpt::tracer {

struct ThreadContext {
    Regs regs;
    std::string xstate;  // NT_X86_XSTATE
    uint64_t sigmask = 0;
};

// Bytes of the frame for `ctx`, to be written at `at` (64-byte aligned). The first word is
// the return address (`pretcode`): code that performs rt_sigreturn, reached by a `ret` with
// rsp == at, so the kernel finds the frame at rsp - 8.
//
// rt_sigreturn never restarts a syscall, so a thread frozen inside one (rax = -ERESTART*)
// gets its restart applied in the frame, as the kernel would on return without a handler:
// rip back onto the `syscall` instruction, rax = the syscall number. A restart-block syscall
// (nanosleep, timed futex/poll) is issued afresh with its original arguments, because
// rt_sigreturn also cancels the kernel's restart block.
std::string build_sigframe(const ThreadContext& ctx, RemoteAddr at, RemoteAddr pretcode);

// True if the frame cannot bring the thread back exactly: it was frozen in restart_syscall
// (a sleep already restarted once, after a SIGSTOP/SIGCONT say), whose arguments live only in
// the kernel's restart block, which rt_sigreturn cancels: the sleep would end with EINTR.
bool sigframe_loses_restart(const ThreadContext& ctx);

// Bytes build_sigframe produces for an xstate of this size (for placing frames).
uint64_t sigframe_size(uint64_t xstate_size);

}  // namespace ckpt::tracer
