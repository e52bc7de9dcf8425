#include "tracer/sigframe.h"

#include <cpuid.h>

#include <cstring>

#include "common/cpu.h"
#include "common/error.h"

namespace ckpt::tracer {

namespace {

// The kernel's uapi layouts for x86_64 (asm/sigcontext.h, asm/ucontext.h). Declared here
// because <asm/sigcontext.h> clashes with glibc's <signal.h>.
struct KernelSigcontext {
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
    uint64_t rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip;
    uint64_t eflags;
    uint16_t cs, gs, fs, ss;
    uint64_t err, trapno, oldmask, cr2;
    uint64_t fpstate;
    uint64_t reserved1[8];
};
static_assert(sizeof(KernelSigcontext) == 256);

struct KernelStack {
    uint64_t sp;
    int32_t flags;
    uint32_t pad;
    uint64_t size;
};

struct KernelUcontext {
    uint64_t uc_flags;
    uint64_t uc_link;
    KernelStack uc_stack;
    KernelSigcontext uc_mcontext;
    uint64_t uc_sigmask;
};

struct KernelRtSigframe {
    uint64_t pretcode;
    KernelUcontext uc;
    char info[128];
};
static_assert(sizeof(KernelRtSigframe) == 440);

constexpr uint64_t kUcFpXstate = 0x1, kUcSigcontextSs = 0x2, kUcStrictRestoreSs = 0x4;
constexpr uint32_t kFpXstateMagic1 = 0x46505853, kFpXstateMagic2 = 0x46505845;
constexpr uint64_t kSwReservedOffset = 464;  // fpx_sw_bytes inside the legacy fxsave area
constexpr uint64_t kXfeatureTileData = 1ull << 18;  // AMX: dynamic, never in a default frame

struct FpxSwBytes {
    uint32_t magic1;
    uint32_t extended_size;
    uint64_t xfeatures;
    uint32_t xstate_size;
    uint32_t padding[7];
};
static_assert(sizeof(FpxSwBytes) == 48);

constexpr uint64_t fpstate_offset() { return (sizeof(KernelRtSigframe) + 63) & ~63ull; }
constexpr uint64_t kXstateBvOffset = 512;  // the xsave header's XSTATE_BV

// Bytes of the standard-format xsave area without AMX tile data: what the kernel expects in
// the signal frame of a thread that has not asked for AMX.
uint64_t size_without_tile_data() {
    unsigned eax, ebx, ecx, edx;
    __cpuid_count(0xd, 18, eax, ebx, ecx, edx);  // ebx: offset of the tile data component
    return ebx;
}

bool restartable(const Regs& r) {
    const long nr = static_cast<long>(r.orig_rax), ret = static_cast<long>(r.rax);
    return nr >= 0 && (ret == -512 || ret == -513 || ret == -514 || ret == -516);
}

}  // namespace

bool sigframe_loses_restart(const ThreadContext& ctx) {
    return restartable(ctx.regs) && ctx.regs.orig_rax == 219;  // __NR_restart_syscall
}

uint64_t sigframe_size(uint64_t xstate_size) { return fpstate_offset() + xstate_size + 4; }

std::string build_sigframe(const ThreadContext& ctx, RemoteAddr at, RemoteAddr pretcode) {
    if (at.addr() % 64 != 0) fail("signal frame at {:#x} is not 64-byte aligned", at.addr());
    if (ctx.xstate.size() < kSwReservedOffset + sizeof(FpxSwBytes))
        fail("xsave area of {} bytes is too small for a signal frame", ctx.xstate.size());
    std::string out(sigframe_size(ctx.xstate.size()), '\0');

    KernelRtSigframe f{};
    f.pretcode = pretcode.addr();
    f.uc.uc_flags = kUcFpXstate | kUcSigcontextSs | kUcStrictRestoreSs;
    // An invalid mode makes the kernel's sigaltstack restore fail with EINVAL, which
    // rt_sigreturn ignores: the thread keeps whatever alternate stack it has.
    f.uc.uc_stack.flags = 3;
    const Regs& r = ctx.regs;
    auto& sc = f.uc.uc_mcontext;
    sc.r8 = r.r8, sc.r9 = r.r9, sc.r10 = r.r10, sc.r11 = r.r11;
    sc.r12 = r.r12, sc.r13 = r.r13, sc.r14 = r.r14, sc.r15 = r.r15;
    sc.rdi = r.rdi, sc.rsi = r.rsi, sc.rbp = r.rbp, sc.rbx = r.rbx;
    sc.rdx = r.rdx, sc.rax = r.rax, sc.rcx = r.rcx, sc.rsp = r.rsp, sc.rip = r.rip;
    sc.eflags = r.eflags;
    sc.cs = static_cast<uint16_t>(r.cs);
    sc.ss = static_cast<uint16_t>(r.ss);
    sc.fpstate = at.addr() + fpstate_offset();
    if (restartable(r)) {
        sc.rax = r.orig_rax;
        sc.rip = r.rip - 2;
    }
    f.uc.uc_sigmask = ctx.sigmask;
    std::memcpy(out.data(), &f, sizeof f);

    char* fp = out.data() + fpstate_offset();
    std::memcpy(fp, ctx.xstate.data(), ctx.xstate.size());
    FpxSwBytes sw{};
    sw.magic1 = kFpXstateMagic1;
    sw.extended_size = static_cast<uint32_t>(ctx.xstate.size() + 4);
    sw.xfeatures = read_xcr0() & ~kXfeatureTileData;
    sw.xstate_size = static_cast<uint32_t>(ctx.xstate.size());
    // ptrace hands out the largest area the kernel knows (with AMX tile data where the CPU has
    // it), but rt_sigreturn checks the frame against the thread's own, smaller size unless the
    // thread uses AMX. With the tile data in its init state, say the smaller size (and put the
    // second magic at both ends: inside the unused tile data it is harmless).
    uint64_t bv;
    std::memcpy(&bv, fp + kXstateBvOffset, sizeof bv);
    if ((read_xcr0() & kXfeatureTileData) && !(bv & kXfeatureTileData)) {
        uint64_t small = size_without_tile_data();
        if (small > kSwReservedOffset + sizeof sw && small < ctx.xstate.size()) {
            sw.xstate_size = static_cast<uint32_t>(small);
            sw.extended_size = static_cast<uint32_t>(small + 4);
            std::memcpy(fp + small, &kFpXstateMagic2, 4);
        }
    } else if (bv & kXfeatureTileData) {
        sw.xfeatures |= kXfeatureTileData;
    }
    std::memcpy(fp + kSwReservedOffset, &sw, sizeof sw);
    std::memcpy(fp + ctx.xstate.size(), &kFpXstateMagic2, 4);
    return out;
}

}  // namespace ckpt::tracer
