#include "tracer/ptrace.h"

#include <elf.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <chrono>
#include <cstring>

#include "common/error.h"

namespace ckpt::tracer {

namespace {

long pt(int req, pid_t tid, void* addr, void* data, const char* what) {
    errno = 0;
    long r = ::ptrace(static_cast<__ptrace_request>(req), tid, addr, data);
    if (r == -1 && errno != 0) fail_errno("ptrace {} on thread {}", what, tid);
    return r;
}

}  // namespace

Regs get_regs(pid_t tid) {
    Regs r;
    pt(PTRACE_GETREGS, tid, nullptr, &r, "GETREGS");
    return r;
}

void set_regs(pid_t tid, const Regs& regs) {
    pt(PTRACE_SETREGS, tid, nullptr, const_cast<Regs*>(&regs), "SETREGS");
}

std::string get_xstate(pid_t tid) {
    std::string buf(64 * 1024, '\0');
    iovec iov{buf.data(), buf.size()};
    pt(PTRACE_GETREGSET, tid, reinterpret_cast<void*>(NT_X86_XSTATE), &iov, "GETREGSET xstate");
    buf.resize(iov.iov_len);
    return buf;
}

void set_xstate(pid_t tid, const std::string& xstate) {
    std::string copy = xstate;
    iovec iov{copy.data(), copy.size()};
    pt(PTRACE_SETREGSET, tid, reinterpret_cast<void*>(NT_X86_XSTATE), &iov, "SETREGSET xstate");
}

uint64_t get_sigmask(pid_t tid) {
    uint64_t m = 0;
    pt(PTRACE_GETSIGMASK, tid, reinterpret_cast<void*>(sizeof m), &m, "GETSIGMASK");
    return m;
}

void set_sigmask(pid_t tid, uint64_t mask) {
    pt(PTRACE_SETSIGMASK, tid, reinterpret_cast<void*>(sizeof mask), &mask, "SETSIGMASK");
}

std::vector<std::string> peek_pending(pid_t tid, bool shared) {
    std::vector<std::string> out;
    constexpr int kBatch = 32;
    char buf[kBatch * 128];
    for (;;) {
        __ptrace_peeksiginfo_args a{};
        a.off = out.size();
        a.flags = shared ? PTRACE_PEEKSIGINFO_SHARED : 0;
        a.nr = kBatch;
        long n = pt(PTRACE_PEEKSIGINFO, tid, &a, buf, "PEEKSIGINFO");
        for (long i = 0; i < n; ++i) out.emplace_back(buf + i * 128, 128);
        if (n < kBatch) break;
    }
    return out;
}

RseqConfig get_rseq(pid_t tid) {
    __ptrace_rseq_configuration c{};
    pt(PTRACE_GET_RSEQ_CONFIGURATION, tid, reinterpret_cast<void*>(sizeof c), &c,
       "GET_RSEQ_CONFIGURATION");
    return {c.rseq_abi_pointer, c.rseq_abi_size, c.flags, c.signature};
}

int StopStatus::signal() const { return WIFSTOPPED(status) ? WSTOPSIG(status) : 0; }
int StopStatus::event() const { return WIFSTOPPED(status) ? (status >> 16) : 0; }
bool StopStatus::syscall_stop() const {
    return WIFSTOPPED(status) && WSTOPSIG(status) == (SIGTRAP | 0x80);
}

namespace {

StopStatus wait_for(pid_t which, pid_t& who) {
    StopStatus s;
    for (;;) {
        who = ::waitpid(which, &s.status, __WALL);
        if (who > 0) break;
        if (errno == EINTR) continue;
        fail_errno("waitpid for {}", which);
    }
    s.exited = WIFEXITED(s.status) || WIFSIGNALED(s.status);
    return s;
}

}  // namespace

StopStatus wait_tid(pid_t tid) {
    pid_t who;
    return wait_for(tid, who);
}

StopStatus wait_any(pid_t& tid) { return wait_for(-1, tid); }

StopStatus wait_tid_for(pid_t tid, long timeout_ms) {
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    StopStatus s;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now()).count();
        if (left <= 0) {
            s.timed_out = true;
            return s;
        }
        // The alarm only breaks the wait below. It repeats, so that one arriving just before
        // waitpid blocks cannot leave the wait without a deadline.
        itimerval it{};
        it.it_value.tv_sec = left / 1000000;
        it.it_value.tv_usec = left % 1000000;
        it.it_interval.tv_usec = 100000;
        ::setitimer(ITIMER_REAL, &it, nullptr);
        pid_t who = ::waitpid(tid, &s.status, __WALL);
        int err = errno;
        itimerval off{};
        ::setitimer(ITIMER_REAL, &off, nullptr);
        if (who > 0) break;
        if (err != EINTR) {
            errno = err;
            fail_errno("waitpid for {}", tid);
        }
    }
    s.exited = WIFEXITED(s.status) || WIFSIGNALED(s.status);
    return s;
}

void resume(pid_t tid, int request, int sig) {
    pt(request, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(sig)),
       request == PTRACE_SYSCALL ? "SYSCALL" : "CONT");
}

void read_mem(pid_t pid, uint64_t addr, void* buf, size_t len) {
    iovec local{buf, len};
    iovec remote{reinterpret_cast<void*>(addr), len};
    ssize_t n = ::process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (n != static_cast<ssize_t>(len))
        fail_errno("cannot read {} bytes at {:#x} in process {}", len, addr, pid);
}

void write_mem(pid_t pid, uint64_t addr, const void* buf, size_t len) {
    iovec local{const_cast<void*>(buf), len};
    iovec remote{reinterpret_cast<void*>(addr), len};
    ssize_t n = ::process_vm_writev(pid, &local, 1, &remote, 1, 0);
    if (n != static_cast<ssize_t>(len))
        fail_errno("cannot write {} bytes at {:#x} in process {}", len, addr, pid);
}

}  // namespace ckpt::tracer
