#include "tracer/remote_syscall.h"

#include <sys/ptrace.h>

#include <cstring>
#include <vector>

#include "common/error.h"
#include "common/fs.h"
#include "common/log.h"
#include "tracer/frozen_process.h"
#include "tracer/proc_parse.h"

namespace ckpt::tracer {

RemoteAddr find_syscall_insn(pid_t pid) {
    auto maps = proc::parse_maps(read_file(fmt::format("/proc/{}/maps", pid)));
    // The vDSO first (always there, never written by us), then any executable mapping.
    for (int pass = 0; pass < 2; ++pass) {
        for (const auto& m : maps) {
            if (!m.exec || m.path == "[vsyscall]") continue;
            if ((pass == 0) != (m.path == "[vdso]")) continue;
            if (!m.read && m.path != "[vdso]") continue;
            uint64_t len = std::min<uint64_t>(m.end - m.start, 1 << 20);
            std::vector<unsigned char> buf(len);
            try {
                read_mem(pid, m.start, buf.data(), len);
            } catch (const Error&) {
                continue;
            }
            for (uint64_t i = 0; i + 1 < len; ++i)
                if (buf[i] == 0x0f && buf[i + 1] == 0x05) return RemoteAddr(m.start + i);
        }
    }
    fail("process {} has no syscall instruction in executable memory", pid);
}

RemoteSyscalls::RemoteSyscalls(pid_t pid, pid_t tid, RemoteAddr syscall_insn)
    : pid_(pid), tid_(tid), syscall_insn_(syscall_insn) {
    saved_regs_ = get_regs(tid);
    saved_xstate_ = get_xstate(tid);
    saved_sigmask_ = get_sigmask(tid);
    // Nothing may be delivered while the thread runs our code.
    set_sigmask(tid, ~0ull);
}

RemoteSyscalls::~RemoteSyscalls() {
    try {
        return_to_interrupt_stop(tid_);
        set_regs(tid_, saved_regs_);
        set_xstate(tid_, saved_xstate_);
        set_sigmask(tid_, saved_sigmask_);
    } catch (const Error& e) {
        log::error("could not restore thread {} after remote calls: {}", tid_, e.what());
    }
}

void RemoteSyscalls::step_to_syscall_exit(long expected_nr) {
    bool entered = false;
    for (;;) {
        resume(tid_, PTRACE_SYSCALL);
        StopStatus st = wait_tid(tid_);
        if (st.exited) fail("thread {} died during a remote syscall", tid_);
        if (!st.syscall_stop()) {
            // An interrupt or group stop reported on the way: just go on.
            if (st.event() == PTRACE_EVENT_STOP) continue;
            fail("thread {} got signal {} during a remote syscall", tid_, st.signal());
        }
        Regs r = get_regs(tid_);
        if (!entered) {
            if (static_cast<long>(r.orig_rax) != expected_nr)
                fail("thread {}: remote syscall {} entered as {}", tid_, expected_nr,
                     static_cast<long>(r.orig_rax));
            entered = true;
        } else {
            return;
        }
    }
}

long RemoteSyscalls::syscall(long nr, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                             uint64_t a5, uint64_t a6) {
    Regs r = saved_regs_;
    r.rax = static_cast<uint64_t>(nr);
    r.orig_rax = static_cast<uint64_t>(-1);  // no syscall restart on our registers
    r.rdi = a1;
    r.rsi = a2;
    r.rdx = a3;
    r.r10 = a4;
    r.r8 = a5;
    r.r9 = a6;
    r.rip = syscall_insn_.addr();
    set_regs(tid_, r);
    step_to_syscall_exit(nr);
    return static_cast<long>(get_regs(tid_).rax);
}

long RemoteSyscalls::checked(const char* what, long nr, uint64_t a1, uint64_t a2, uint64_t a3,
                             uint64_t a4, uint64_t a5, uint64_t a6) {
    long r = syscall(nr, a1, a2, a3, a4, a5, a6);
    if (r < 0 && r > -4096)
        fail("remote {} in process {} failed: {}", what, pid_, errno_text(static_cast<int>(-r)));
    return r;
}

void RemoteSyscalls::run_code(RemoteAddr entry, RemoteAddr stack_top, uint64_t arg,
                              long done_nr, uint64_t done_magic) {
    Regs r = saved_regs_;
    r.rip = entry.addr();
    r.rsp = stack_top.addr();
    r.rdi = arg;
    r.orig_rax = static_cast<uint64_t>(-1);
    r.rax = 0;
    set_regs(tid_, r);
    bool in_syscall = false;
    for (;;) {
        resume(tid_, PTRACE_SYSCALL);
        StopStatus st = wait_tid(tid_);
        if (st.exited) fail("thread {} died while running the parasite", tid_);
        if (!st.syscall_stop()) {
            if (st.event() == PTRACE_EVENT_STOP) continue;
            Regs bad = get_regs(tid_);
            fail("parasite in thread {} got signal {} at {:#x}", tid_, st.signal(), bad.rip);
        }
        if (!in_syscall) {
            Regs now = get_regs(tid_);
            if (static_cast<long>(now.orig_rax) == done_nr && now.rdi == done_magic) {
                resume(tid_, PTRACE_SYSCALL);  // let the marker complete, to its exit stop
                StopStatus ex = wait_tid(tid_);
                if (ex.exited) fail("thread {} died while leaving the parasite", tid_);
                return;
            }
        }
        in_syscall = !in_syscall;
    }
}

}  // namespace ckpt::tracer
