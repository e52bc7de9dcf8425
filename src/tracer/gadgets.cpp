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

}  // namespace

Gadgets find_gadgets(pid_t pid) {
    Gadgets g;
    auto maps = proc::parse_maps(read_file(fmt::format("/proc/{}/maps", pid)));
    // The vDSO first (always there, identical in every process), then executable files.
    for (int pass = 0; pass < 2 && !(g.safe() && !g.syscall_any.null()); ++pass) {
        for (const auto& m : maps) {
            if (!m.exec || m.path == "[vsyscall]") continue;
            if ((pass == 0) != (m.path == "[vdso]")) continue;
            if (pass == 1 && !m.path.starts_with("/")) continue;
            uint64_t len = std::min<uint64_t>(m.end - m.start, 8 << 20);
            std::vector<unsigned char> buf(len);
            try {
                read_mem(pid, m.start, buf.data(), len);
            } catch (const Error&) {
                continue;  // execute-only or otherwise unreadable
            }
            const unsigned char* end = buf.data() + len;
            for (const unsigned char* p = buf.data(); p + 1 < end; ++p) {
                uint64_t at = m.start + static_cast<uint64_t>(p - buf.data());
                if (g.syscall_any.null() && p[0] == 0x0f && p[1] == 0x05) g.syscall_any = RemoteAddr(at);
                if (g.syscall_ret.null() && is_syscall_ret(p, end)) g.syscall_ret = RemoteAddr(at);
                if (g.sigreturn.null() && is_sigreturn(p, end)) g.sigreturn = RemoteAddr(at);
            }
            if (g.safe()) break;
        }
    }
    if (g.syscall_any.null())
        fail("process {} has no syscall instruction in readable executable memory", pid);
    return g;
}

}  // namespace ckpt::tracer
