#include "tracer/vma_flags.h"

#include <sys/mman.h>

#include <algorithm>

namespace ckpt::tracer {

namespace {

struct AdviceFlag {
    const char* name;
    uint32_t bit;
};

// Properties a process sets with madvise/mlock: lost unless restore sets them again, and
// then the VMA differs from its neighbours (it must not merge with them either).
constexpr AdviceFlag kAdvice[] = {
    {"hg", image::kAdviceHugepage},   {"nh", image::kAdviceNoHugepage},
    {"dd", image::kAdviceDontDump},   {"dc", image::kAdviceDontFork},
    {"wf", image::kAdviceWipeOnFork}, {"lo", image::kAdviceLocked},
    {"mg", image::kAdviceMergeable},  {"sr", image::kAdviceSequential},
    {"rr", image::kAdviceRandom},     {"lf", image::kAdviceLockOnFault},
};

}  // namespace

void apply_vmflags(image::Vma& v, const std::vector<std::string>& vmflags) {
    auto has = [&](const char* f) { return std::find(vmflags.begin(), vmflags.end(), f) != vmflags.end(); };
    for (const auto& a : kAdvice)
        if (has(a.name)) v.advice |= a.bit;
    // Without it a large sparse reservation cannot even be mapped again under the default
    // overcommit heuristic, and it shows as a VmFlags difference.
    if (has("nr")) v.flags |= MAP_NORESERVE;
    v.vmflags.clear();
    for (const auto& f : vmflags) {
        if (!v.vmflags.empty()) v.vmflags += ' ';
        v.vmflags += f;
    }
}

}  // namespace ckpt::tracer
