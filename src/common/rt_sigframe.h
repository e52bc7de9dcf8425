// The x86_64 kernel's signal frame, as rt_sigreturn consumes it (arch/x86/include/uapi/asm/
// sigcontext.h, ucontext.h, signal_64.c). Two parts of ckpt build one: restore, for the
// restorer stub's final jump into the program, and dump, for a target's way home if ckpt is
// killed. Plain data and a template only: the freestanding restorer includes this too.
#pragma once

#include <stdint.h>

namespace ckpt::abi {

struct SigContext {
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
    uint64_t rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip;
    uint64_t eflags;
    uint16_t cs, gs, fs, ss;
    uint64_t err, trapno, oldmask, cr2;
    uint64_t fpstate;  // address of the 64-byte aligned xsave area
    uint64_t reserved1[8];
};
static_assert(sizeof(SigContext) == 256);

struct UContext {
    uint64_t uc_flags;
    uint64_t uc_link;
    uint64_t ss_sp;  // stack_t uc_stack
    int32_t ss_flags;
    int32_t ss_pad;
    uint64_t ss_size;
    SigContext mcontext;
    uint64_t sigmask;
};

struct RtSigframe {
    uint64_t pretcode;  // where the handler's `ret` goes; rt_sigreturn finds the frame at rsp - 8
    UContext uc;
    uint8_t info[128];  // siginfo, not read by rt_sigreturn
};
static_assert(sizeof(RtSigframe) == 440);

inline constexpr uint64_t kUcFpXstate = 0x1, kUcSigcontextSs = 0x2, kUcStrictRestoreSs = 0x4;

// The general registers of a user_regs_struct (a template: freestanding code has no
// <sys/user.h>) into a sigcontext; cs/ss come along, fpstate is the caller's.
template <typename Regs>
void regs_to_sigcontext(const Regs& r, SigContext& m) {
    m.r8 = r.r8, m.r9 = r.r9, m.r10 = r.r10, m.r11 = r.r11;
    m.r12 = r.r12, m.r13 = r.r13, m.r14 = r.r14, m.r15 = r.r15;
    m.rdi = r.rdi, m.rsi = r.rsi, m.rbp = r.rbp, m.rbx = r.rbx;
    m.rdx = r.rdx, m.rax = r.rax, m.rcx = r.rcx, m.rsp = r.rsp, m.rip = r.rip;
    m.eflags = r.eflags;
    m.cs = static_cast<uint16_t>(r.cs);
    m.ss = static_cast<uint16_t>(r.ss);
}

}  // namespace ckpt::abi
