#include "tracer/process_attrs.h"

#include <sys/ptrace.h>
#include <unistd.h>

#include <algorithm>

#include <cerrno>

#include <string>

#include "cgroups/cgroups.h"
#include "common/error.h"
#include "common/fs.h"

namespace ckpt::tracer {

namespace {

// The number a one-line /proc file holds ("-1000\n", "4294967295\n").
long long read_number(const std::string& path) {
    std::string text = read_file(path);
    try {
        size_t used = 0;
        long long v = std::stoll(text, &used);
        if (used == 0) throw std::invalid_argument("empty");
        return v;
    } catch (const std::exception&) {
        fail("cannot parse {}: '{}'", path, text.substr(0, 40));
    }
}

// NoNewPrivs of one thread's status; the kernel keeps the flag per thread.
bool no_new_privs(pid_t pid, pid_t tid) {
    std::string path = fmt::format("/proc/{}/task/{}/status", pid, tid);
    std::string text = read_file(path);
    size_t at = text.find("\nNoNewPrivs:");
    if (at == std::string::npos) fail("{} has no NoNewPrivs line", path);
    return std::stoi(text.substr(at + 12)) != 0;
}

// The seccomp state of a ptrace-stopped thread: its mode and, oldest first, its filters.
void collect_seccomp(pid_t pid, image::Thread& t) {
    std::string path = fmt::format("/proc/{}/task/{}/status", pid, t.tid);
    std::string text = read_file(path);
    size_t at = text.find("\nSeccomp:");
    if (at == std::string::npos) return;  // a kernel without seccomp
    t.seccomp_mode = static_cast<uint32_t>(std::stoi(text.substr(at + 9)));
    if (t.seccomp_mode != 2) return;
    constexpr int kGetFilter = 0x420c, kGetMetadata = 0x420d;  // PTRACE_SECCOMP_GET_*
    for (unsigned long index = 0;; ++index) {
        long n = ::ptrace(static_cast<__ptrace_request>(kGetFilter), t.tid, index, nullptr);
        if (n < 0 && errno == ENOENT) break;
        if (n < 0) fail_errno("thread {}: cannot read its seccomp filter {}", t.tid, index);
        image::SeccompFilter f;
        f.insns.resize(static_cast<size_t>(n) * 8);
        if (::ptrace(static_cast<__ptrace_request>(kGetFilter), t.tid, index, f.insns.data()) != n)
            fail_errno("thread {}: cannot read its seccomp filter {}", t.tid, index);
        struct {
            uint64_t filter_off, flags;
        } md{index, 0};
        if (::ptrace(static_cast<__ptrace_request>(kGetMetadata), t.tid, sizeof md, &md) < 0)
            fail_errno("thread {}: cannot read the flags of its seccomp filter {}", t.tid, index);
        f.flags = md.flags;
        t.seccomp_filters.push_back(std::move(f));  // newest first here
    }
    std::reverse(t.seccomp_filters.begin(), t.seccomp_filters.end());
}

}  // namespace

void collect_attrs(pid_t pid, image::Process& p, std::vector<image::Thread>& threads) {
    p.oom_score_adj = static_cast<int32_t>(read_number(fmt::format("/proc/{}/oom_score_adj", pid)));
    std::string loginuid = fmt::format("/proc/{}/loginuid", pid);
    if (::access(loginuid.c_str(), F_OK) == 0)  // absent without CONFIG_AUDITSYSCALL
        p.loginuid = static_cast<uint32_t>(read_number(loginuid));
    for (auto& t : threads) {
        t.no_new_privs = no_new_privs(pid, t.tid);
        collect_seccomp(pid, t);
    }
    p.cgroups = cgroups::of_process(pid);  // the audit made sure every thread shares them
}

void take_parasite_attrs(const parasite::ProcessState& ps, image::Process& p) {
    p.rlimits.clear();
    for (const auto& r : ps.rlimits) p.rlimits.push_back({r.cur, r.max});
    p.child_subreaper = ps.child_subreaper != 0;
    p.thp_disable = static_cast<uint32_t>(ps.thp_disable);
    // Before Linux 6.3 the registrations cannot be read back at all; the kernel then says
    // EINVAL and there is nothing better to record than none.
    if (ps.membarrier < 0 && ps.membarrier != -EINVAL)
        fail("cannot read the membarrier registrations of process {}: {}", p.pid,
             errno_text(-ps.membarrier));
    p.membarrier = ps.membarrier < 0 ? 0 : static_cast<uint32_t>(ps.membarrier);
}

}  // namespace ckpt::tracer
