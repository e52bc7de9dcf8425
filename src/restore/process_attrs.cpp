#include "restore/process_attrs.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>

#include "common/error.h"
#include "common/fd.h"
#include "common/fs.h"

namespace ckpt::restore {

namespace {

// Writes a number into one of our own /proc/self files, if it differs from what is there.
void write_self(const char* name, long long value, const char* what) {
    std::string path = fmt::format("/proc/self/{}", name);
    std::string want = std::to_string(value);
    std::string now = read_file(path);
    while (!now.empty() && now.back() == '\n') now.pop_back();
    if (now == want) return;
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd || ::write(fd.get(), want.data(), want.size()) != static_cast<ssize_t>(want.size()))
        fail_errno("cannot restore {} {} (now {})", what, want, now);
}

}  // namespace

void restore_attrs_in_child(const image::Process& p) {
    write_self("oom_score_adj", p.oom_score_adj, "oom_score_adj");
    // The kernel lets a process set only its own loginuid (and changing a set one takes
    // CAP_AUDIT_CONTROL, which ckpt has as root unless the audit rules make it immutable).
    if (::access("/proc/self/loginuid", F_OK) == 0)
        write_self("loginuid", p.loginuid, "the audit login uid");
    else if (p.loginuid != 0xffffffffu)
        fail("cannot restore the audit login uid {}: this kernel has no /proc/self/loginuid", p.loginuid);

    int thp = ::prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
    if (thp < 0) fail_errno("cannot read the THP setting");
    if (static_cast<uint32_t>(thp) != p.thp_disable) {
        // Bit 1 is PR_THP_DISABLE_EXCEPT_ADVISED (Linux 6.18), passed back as the flags.
        unsigned long disable = p.thp_disable & 1, flags = p.thp_disable & ~1u;
        if (::prctl(PR_SET_THP_DISABLE, disable, flags, 0, 0) != 0)
            fail_errno("cannot restore PR_SET_THP_DISABLE {}", p.thp_disable);
    }
    if (::prctl(PR_SET_CHILD_SUBREAPER, p.child_subreaper ? 1ul : 0ul, 0, 0, 0) != 0)
        fail_errno("cannot restore the child subreaper flag");
    // Registrations belong to the mm, which the restorer keeps: each bit is the command
    // that registered it.
    for (uint32_t bit = 1; bit != 0 && bit <= p.membarrier; bit <<= 1) {
        if ((p.membarrier & bit) && ::syscall(SYS_membarrier, bit, 0, 0) != 0)
            fail_errno("cannot restore the membarrier registration {:#x}", bit);
    }
}

bool was_stopped(const image::Image& img, int pid) {
    // A group stop stops every thread; 'T' on any of them means it was in effect.
    for (const auto& t : img.threads)
        if (t.pid == pid && t.state == 'T') return true;
    return false;
}

}  // namespace ckpt::restore
