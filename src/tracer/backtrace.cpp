#include "tracer/backtrace.h"

#include <libunwind-ptrace.h>

#include <memory>

#include "common/log.h"

namespace ckpt::tracer {

namespace {

constexpr int kMaxFrames = 64;

std::string object_of(uint64_t pc, const std::vector<image::Vma>& vmas) {
    for (const auto& v : vmas)
        if (pc >= v.start && pc < v.end) return v.path;
    return {};
}

}  // namespace

std::vector<image::BacktraceFrame> unwind_thread(pid_t tid, const std::vector<image::Vma>& vmas) {
    std::vector<image::BacktraceFrame> frames;
    unw_addr_space_t as = unw_create_addr_space(&_UPT_accessors, 0);
    if (!as) return frames;
    std::unique_ptr<std::remove_pointer_t<unw_addr_space_t>, void (*)(unw_addr_space_t)> as_guard(
        as, unw_destroy_addr_space);
    void* upt = _UPT_create(tid);
    if (!upt) return frames;
    std::unique_ptr<void, void (*)(void*)> upt_guard(upt, _UPT_destroy);
    unw_cursor_t cursor;
    if (unw_init_remote(&cursor, as, upt) < 0) return frames;
    do {
        unw_word_t ip = 0, sp = 0, off = 0;
        if (unw_get_reg(&cursor, UNW_REG_IP, &ip) < 0 || ip == 0) break;
        unw_get_reg(&cursor, UNW_REG_SP, &sp);
        image::BacktraceFrame f;
        f.pc = ip;
        f.sp = sp;
        char name[256];
        if (unw_get_proc_name(&cursor, name, sizeof name, &off) == 0)
            f.symbol = fmt::format("{}+{:#x}", name, off);
        f.object = object_of(ip, vmas);
        frames.push_back(std::move(f));
    } while (frames.size() < kMaxFrames && unw_step(&cursor) > 0);
    log::debug("thread {}: {} frames", tid, frames.size());
    return frames;
}

}  // namespace ckpt::tracer
