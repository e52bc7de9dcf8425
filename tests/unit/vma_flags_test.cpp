// tracer/vma_flags.h: which smaps VmFlags become MAP_* and VmaAdvice bits of a Vma record.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include "tracer/vma_flags.h"

namespace ckpt::test {
namespace {

using namespace ckpt::image;

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos < s.size()) {
        size_t sp = s.find(' ', pos);
        if (sp == std::string::npos) sp = s.size();
        if (sp > pos) out.push_back(s.substr(pos, sp - pos));
        pos = sp + 1;
    }
    return out;
}

TEST(VmaFlags, EveryRestoredFlagIsTranslated) {
    Vma v;
    v.flags = MAP_PRIVATE | MAP_ANONYMOUS;
    tracer::apply_vmflags(v, split("rd wr mr mw me nr hg nh dd dc wf lo lf mg sr rr"));
    EXPECT_EQ(v.flags, uint32_t{MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE});
    EXPECT_EQ(v.advice, uint32_t{kAdviceHugepage | kAdviceNoHugepage | kAdviceDontDump | kAdviceDontFork |
                                 kAdviceWipeOnFork | kAdviceLocked | kAdviceLockOnFault | kAdviceMergeable |
                                 kAdviceSequential | kAdviceRandom});
    EXPECT_EQ(v.vmflags, "rd wr mr mw me nr hg nh dd dc wf lo lf mg sr rr");
}

TEST(VmaFlags, PlainMappingGetsNothing) {
    Vma v;
    v.flags = MAP_SHARED;
    tracer::apply_vmflags(v, split("rd mr me ms"));
    EXPECT_EQ(v.flags, uint32_t{MAP_SHARED});
    EXPECT_EQ(v.advice, 0u);
    EXPECT_EQ(v.vmflags, "rd mr me ms");
}

TEST(VmaFlags, SimilarNamesDoNotMatch) {
    Vma v;
    tracer::apply_vmflags(v, split("nrx xhg"));
    EXPECT_EQ(v.flags & MAP_NORESERVE, 0u);
    EXPECT_EQ(v.advice, 0u);
}

}  // namespace
}  // namespace ckpt::test
