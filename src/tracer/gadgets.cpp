#include "tracer/gadgets.h"

#include <cstring>
#include <vector>

#include "common/error.h"
#include "common/fs.h"
#include "tracer/proc_parse.h"
#include "tracer/ptrace.h"

namespace ckpt::tracer {

namespace {

// Length of a `xor`/`sub` of a register with a register (optionally REX-prefixed) at p, or
// 0. Such instructions touch only registers that rt_sigreturn restores anyway.
size_t reg_clear_len(const unsigned char* p, const unsigned char* end) {
    const unsigned char* q = p;
    if (q < end && (*q & 0xf0) == 0x40) ++q;  // REX
    if (q + 1 < end && (*q == 0x31 || *q == 0x33 || *q == 0x29 || *q == 0x2b) &&
        (q[1] & 0xc0) == 0xc0)
        return static_cast<size_t>(q + 2 - p);
    return 0;
}

bool is_syscall_ret(const unsigned char* p, const unsigned char* end) {
    if (end - p < 3 || p[0] != 0x0f || p[1] != 0x05) return false;
    p += 2;
    for (int i = 0; i < 16 && p < end; ++i) {
        if (*p == 0xc3) return true;
        size_t n = reg_clear_len(p, end);
        if (n == 0) return false;
        p += n;
    }
    return false;
}

// `mov $15, %eax; syscall` or `mov $15, %rax; syscall`; returns its length or 0.
bool is_sigreturn(const unsigned char* p, const unsigned char* end) {
    static const unsigned char a[] = {0xb8, 0x0f, 0, 0, 0, 0x0f, 0x05};
    static const unsigned char b[] = {0x48, 0xc7, 0xc0, 0x0f, 0, 0, 0, 0x0f, 0x05};
    return (end - p >= 7 && std::memcmp(p, a, sizeof a) == 0) ||
           (end - p >= 9 && std::memcmp(p, b, sizeof b) == 0);
}

bool is_syscall(const unsigned char* p, const unsigned char* end) {
    return end - p >= 2 && p[0] == 0x0f && p[1] == 0x05;
}

// The longest gadget test above looks at 2 + 16 * 3 + 1 bytes.
constexpr uint64_t kGadgetBytes = 64;

bool scannable(const proc::MapsEntry& m, int pass) {
    if (!m.exec || m.path == "[vsyscall]") return false;
    if ((pass == 0) != (m.path == "[vdso]")) return false;
    return pass == 0 || m.path.starts_with("/");
}

}  // namespace

GadgetCache::Mapping GadgetCache::identity(const proc::MapsEntry& m) {
    return {m.path, m.dev_major, m.dev_minor, m.inode, m.offset, m.end - m.start};
}

// Whether the gadget test holds at `addr` of this process, reading only its few bytes.
bool GadgetCache::holds(pid_t pid, const proc::MapsEntry& m, uint64_t addr, Kind kind) {
    unsigned char buf[kGadgetBytes];
    uint64_t len = std::min<uint64_t>(kGadgetBytes, m.end - addr);
    try {
        read_mem(pid, addr, buf, len);
    } catch (const Error&) {
        return false;
    }
    const unsigned char* end = buf + len;
    switch (kind) {
        case Kind::SyscallRet: return is_syscall_ret(buf, end);
        case Kind::Sigreturn: return is_sigreturn(buf, end);
        case Kind::SyscallAny: return is_syscall(buf, end);
    }
    return false;
}

Gadgets GadgetCache::find(pid_t pid) {
    auto maps = proc::parse_maps(read_file(fmt::format("/proc/{}/maps", pid)));
    Gadgets g;
    RemoteAddr* slot[] = {&g.syscall_ret, &g.sigreturn, &g.syscall_any};
    // What an earlier process had, where this one maps the same thing: checked in place.
    for (const auto& known : known_) {
        RemoteAddr& s = *slot[static_cast<int>(known.kind)];
        if (!s.null()) continue;
        for (const auto& m : maps) {
            if (!m.exec || !(identity(m) == known.mapping)) continue;
            uint64_t addr = m.start + known.offset;
            if (holds(pid, m, addr, known.kind)) s = RemoteAddr(addr);
            break;
        }
    }
    if (g.safe() && !g.syscall_any.null()) return g;

    g = Gadgets{};
    // The vDSO first (always there, identical in every process), then executable files.
    for (int pass = 0; pass < 2 && !(g.safe() && !g.syscall_any.null()); ++pass) {
        for (const auto& m : maps) {
            if (!scannable(m, pass)) continue;
            uint64_t len = std::min<uint64_t>(m.end - m.start, 8 << 20);
            std::vector<unsigned char> buf(len);
            try {
                read_mem(pid, m.start, buf.data(), len);
            } catch (const Error&) {
                continue;  // execute-only or otherwise unreadable
            }
            const unsigned char* end = buf.data() + len;
            auto remember = [&](Kind kind, const unsigned char* p) {
                uint64_t off = static_cast<uint64_t>(p - buf.data());
                *slot[static_cast<int>(kind)] = RemoteAddr(m.start + off);
                known_.push_back({identity(m), off, kind});
            };
            for (const unsigned char* p = buf.data(); p + 1 < end; ++p) {
                if (g.syscall_any.null() && is_syscall(p, end)) remember(Kind::SyscallAny, p);
                if (g.syscall_ret.null() && is_syscall_ret(p, end)) remember(Kind::SyscallRet, p);
                if (g.sigreturn.null() && is_sigreturn(p, end)) remember(Kind::Sigreturn, p);
            }
            if (g.safe()) break;
        }
    }
    if (g.syscall_any.null())
        fail("process {} has no syscall instruction in readable executable memory", pid);
    return g;
}

Gadgets find_gadgets(pid_t pid) { return GadgetCache().find(pid); }

}  // namespace ckpt::tracer
