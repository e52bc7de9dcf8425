#include "tracer/backtrace.h"

#include <libunwind-ptrace.h>

#include <cstring>

#include "common/error.h"
#include "common/log.h"

namespace ckpt::tracer {

struct Unwinder::Context {
    pid_t pid;
    const std::vector<image::Vma>& vmas;
    unw_addr_space_t as = nullptr;
    void* upt = nullptr;  // libunwind's handle for the process, shared by all threads
    const Regs* regs = nullptr;  // the thread being unwound
    std::map<uint64_t, std::pair<std::string, uint64_t>> names;  // ip -> (name, offset)
};

namespace {

constexpr size_t kMaxFrames = 64;
using Ctx = Unwinder::Context;

int find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t* pi, int need, void* arg) {
    return _UPT_find_proc_info(as, ip, pi, need, static_cast<Ctx*>(arg)->upt);
}

void put_unwind_info(unw_addr_space_t as, unw_proc_info_t* pi, void* arg) {
    _UPT_put_unwind_info(as, pi, static_cast<Ctx*>(arg)->upt);
}

int get_dyn_info_list_addr(unw_addr_space_t as, unw_word_t* addr, void* arg) {
    return _UPT_get_dyn_info_list_addr(as, addr, static_cast<Ctx*>(arg)->upt);
}

int access_mem(unw_addr_space_t, unw_word_t addr, unw_word_t* val, int write, void* arg) {
    if (write) return -UNW_EREADONLYREG;
    try {
        read_mem(static_cast<Ctx*>(arg)->pid, addr, val, sizeof *val);
    } catch (const Error&) {
        return -UNW_EINVAL;
    }
    return 0;
}

int access_reg(unw_addr_space_t, unw_regnum_t reg, unw_word_t* val, int write, void* arg) {
    if (write) return -UNW_EREADONLYREG;
    const Regs& r = *static_cast<Ctx*>(arg)->regs;
    switch (reg) {
        case UNW_X86_64_RAX: *val = r.rax; break;
        case UNW_X86_64_RDX: *val = r.rdx; break;
        case UNW_X86_64_RCX: *val = r.rcx; break;
        case UNW_X86_64_RBX: *val = r.rbx; break;
        case UNW_X86_64_RSI: *val = r.rsi; break;
        case UNW_X86_64_RDI: *val = r.rdi; break;
        case UNW_X86_64_RBP: *val = r.rbp; break;
        case UNW_X86_64_RSP: *val = r.rsp; break;
        case UNW_X86_64_R8: *val = r.r8; break;
        case UNW_X86_64_R9: *val = r.r9; break;
        case UNW_X86_64_R10: *val = r.r10; break;
        case UNW_X86_64_R11: *val = r.r11; break;
        case UNW_X86_64_R12: *val = r.r12; break;
        case UNW_X86_64_R13: *val = r.r13; break;
        case UNW_X86_64_R14: *val = r.r14; break;
        case UNW_X86_64_R15: *val = r.r15; break;
        case UNW_X86_64_RIP: *val = r.rip; break;
        default: return -UNW_EBADREG;
    }
    return 0;
}

int access_fpreg(unw_addr_space_t, unw_regnum_t, unw_fpreg_t*, int, void*) { return -UNW_EBADREG; }

int resume(unw_addr_space_t, unw_cursor_t*, void*) { return -UNW_EINVAL; }

int get_proc_name(unw_addr_space_t as, unw_word_t ip, char* buf, size_t len, unw_word_t* off,
                  void* arg) {
    auto* ctx = static_cast<Ctx*>(arg);
    auto it = ctx->names.find(ip);
    if (it == ctx->names.end()) {
        char name[256];
        unw_word_t o = 0;
        if (_UPT_get_proc_name(as, ip, name, sizeof name, &o, ctx->upt) != 0) name[0] = 0;
        it = ctx->names.emplace(ip, std::make_pair(std::string(name), uint64_t{o})).first;
    }
    if (it->second.first.empty()) return -UNW_ENOINFO;
    std::strncpy(buf, it->second.first.c_str(), len - 1);
    buf[len - 1] = 0;
    *off = it->second.second;
    return 0;
}

unw_accessors_t accessors = {find_proc_info, put_unwind_info, get_dyn_info_list_addr, access_mem,
                             access_reg,     access_fpreg,    resume,                 get_proc_name};

std::string object_of(uint64_t pc, const std::vector<image::Vma>& vmas) {
    for (const auto& v : vmas)
        if (pc >= v.start && pc < v.end) return v.path;
    return {};
}

}  // namespace

Unwinder::Unwinder(pid_t pid, const std::vector<image::Vma>& vmas)
    : ctx_(new Context{pid, vmas, nullptr, nullptr, nullptr, {}}) {
    ctx_->as = unw_create_addr_space(&accessors, 0);
    if (ctx_->as) unw_set_caching_policy(ctx_->as, UNW_CACHE_GLOBAL);
    ctx_->upt = _UPT_create(pid);
}

Unwinder::~Unwinder() {
    if (ctx_->upt) _UPT_destroy(ctx_->upt);
    if (ctx_->as) unw_destroy_addr_space(ctx_->as);
}

std::vector<image::BacktraceFrame> Unwinder::unwind(const Regs& regs) {
    std::vector<image::BacktraceFrame> frames;
    if (!ctx_->as || !ctx_->upt) return frames;
    ctx_->regs = &regs;
    unw_cursor_t cursor;
    if (unw_init_remote(&cursor, ctx_->as, ctx_.get()) < 0) return frames;
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
        f.object = object_of(ip, ctx_->vmas);
        frames.push_back(std::move(f));
    } while (frames.size() < kMaxFrames && unw_step(&cursor) > 0);
    return frames;
}

}  // namespace ckpt::tracer
