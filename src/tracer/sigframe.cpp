#include "tracer/sigframe.h"

#include <cpuid.h>

#include <cstring>

#include "common/cpu.h"
#include "common/rt_sigframe.h"
#include "common/error.h"

namespace ckpt::tracer {

namespace {

using abi::kUcFpXstate;
using abi::kUcSigcontextSs;
using abi::kUcStrictRestoreSs;
using KernelRtSigframe = abi::RtSigframe;
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
    f.uc.ss_flags = 3;
    const Regs& r = ctx.regs;
    auto& sc = f.uc.mcontext;
    abi::regs_to_sigcontext(r, sc);
    sc.fpstate = at.addr() + fpstate_offset();
    if (restartable(r)) {
        sc.rax = r.orig_rax;
        sc.rip = r.rip - 2;
    }
    f.uc.sigmask = ctx.sigmask;
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
