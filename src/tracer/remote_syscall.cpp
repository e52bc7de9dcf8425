#include "tracer/remote_syscall.h"

#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "common/error.h"
#include "common/log.h"
#include "tracer/fault.h"
#include "tracer/frozen_process.h"

namespace ckpt::tracer {

namespace {

uint64_t bit(int sig) { return 1ull << (sig - 1); }

// While ckpt's code runs in a thread nothing may be delivered to it, except the signals a
// fault raises: the kernel resets the handler of a fault signal that is blocked, so those
// stay open and a fault shows up as a signal stop that ckpt swallows.
// Our code runs with plain flags (no DF, AC or TF the program may have set).
constexpr uint64_t kCleanFlags = 0x202;

const uint64_t kRemoteMask = ~(bit(SIGSEGV) | bit(SIGBUS) | bit(SIGILL) | bit(SIGFPE) |
                               bit(SIGTRAP) | bit(SIGSYS));

}  // namespace

RemoteSyscalls::RemoteSyscalls(pid_t pid, pid_t tid, const Gadgets& gadgets)
    : pid_(pid), tid_(tid), gadgets_(gadgets) {
    saved_.regs = get_regs(tid);
    saved_.xstate = get_xstate(tid);
    saved_.sigmask = get_sigmask(tid);
}

RemoteSyscalls::~RemoteSyscalls() { restore(); }

void RemoteSyscalls::settle() {
    if (running_) {
        // Left while it ran our code (an error or interrupt in ckpt at that moment).
        if (::ptrace(PTRACE_INTERRUPT, tid_, nullptr, nullptr) != 0)
            fail_errno("cannot interrupt thread {}", tid_);
        StopStatus st = wait_tid(tid_);
        if (st.exited) fail("thread {} died while running the parasite", tid_);
        running_ = false;
        defer_if_signal(st);
        __ptrace_syscall_info info{};
        if (st.syscall_stop() &&
            ::ptrace(PTRACE_GET_SYSCALL_INFO, tid_, reinterpret_cast<void*>(sizeof info), &info) > 0)
            at_syscall_entry_ = info.op == PTRACE_SYSCALL_INFO_ENTRY;
    }
    if (at_syscall_entry_) {
        // Stopped before a call ran (an error or interrupt at that moment): cancel it and
        // take the thread to that call's exit stop.
        Regs r = get_regs(tid_);
        r.orig_rax = static_cast<uint64_t>(-1);
        set_regs(tid_, r);
        for (;;) {
            resume(tid_, PTRACE_SYSCALL);
            StopStatus st = wait_tid(tid_);
            if (st.exited) fail("thread {} died in a cancelled remote syscall", tid_);
            if (st.syscall_stop()) break;
            defer_if_signal(st);
        }
        at_syscall_entry_ = false;
    }
}

void RemoteSyscalls::restore() noexcept {
    try {
        settle();
        return_to_interrupt_stop(tid_);
        set_xstate(tid_, saved_.xstate);
        // Mask before registers: until the registers are back, the thread's way home still
        // restores the mask itself if ckpt dies now.
        set_sigmask(tid_, saved_.sigmask);
        set_regs(tid_, saved_.regs);
        if (restored_) *restored_ = true;
    } catch (const std::exception& e) {
        log::error("could not restore thread {} after remote calls: {}", tid_, e.what());
    }
    for (int sig : deferred_signals_) {
        if (::syscall(SYS_tgkill, pid_, tid_, sig) != 0)
            log::error("could not re-send signal {} to thread {}: {}", sig, tid_, errno_text(errno));
    }
    deferred_signals_.clear();
}

void RemoteSyscalls::place_frame(RemoteAddr at, RemoteAddr sigreturn_gadget) {
    if (frame_.null() && sigframe_loses_restart(saved_))
        log::info("thread {} sleeps in a restarted syscall: if ckpt is killed now, that sleep "
                  "ends early with EINTR (docs/fail-closed.md)", tid_);
    std::string bytes = build_sigframe(saved_, at, sigreturn_gadget);
    write_mem(pid_, at.addr(), bytes.data(), bytes.size());
    Regs parked = saved_.regs;
    parked.rip = sigreturn_gadget.addr();
    parked.rsp = at.addr() + 8;
    parked.orig_rax = static_cast<uint64_t>(-1);
    set_regs(tid_, parked);
    frame_ = at;
    block_signals();
}

void RemoteSyscalls::block_signals() {
    if (signals_blocked_) return;
    // Not OR-ed with the program's mask: a fault signal the program blocks must be open too.
    set_sigmask(tid_, kRemoteMask);
    signals_blocked_ = true;
}

void RemoteSyscalls::defer_if_signal(const StopStatus& st) {
    if (st.exited || !WIFSTOPPED(st.status) || st.syscall_stop() || st.event() != 0) return;
    siginfo_t si{};
    // A fault of our own code is dropped; anything sent from outside is the program's.
    if (::ptrace(PTRACE_GETSIGINFO, tid_, nullptr, &si) == 0 && (si.si_code <= 0 || si.si_code == SI_KERNEL))
        deferred_signals_.push_back(st.signal());
}

bool RemoteSyscalls::handle_signal_stop(const StopStatus& st, const char* where) {
    siginfo_t si{};
    if (::ptrace(PTRACE_GETSIGINFO, tid_, nullptr, &si) != 0)
        fail_errno("thread {} stopped with signal {} {}", tid_, st.signal(), where);
    if (si.si_code > 0 && si.si_code != SI_KERNEL) {
        Regs bad = get_regs(tid_);
        fail("thread {} faulted {} (signal {}, code {}, address {:#x}, pc {:#x})", tid_, where,
             st.signal(), si.si_code, reinterpret_cast<uint64_t>(si.si_addr), bad.rip);
    }
    // Sent from outside: not ours to swallow. Deliver it once the thread is itself again.
    deferred_signals_.push_back(st.signal());
    return true;
}

void RemoteSyscalls::step_to_syscall_exit(long expected_nr) {
    for (;;) {
        resume(tid_, PTRACE_SYSCALL);
        StopStatus st = wait_tid(tid_);
        if (st.exited) fail("thread {} died during a remote syscall", tid_);
        if (!st.syscall_stop()) {
            // An interrupt or group stop reported on the way: just go on.
            if (st.event() == PTRACE_EVENT_STOP) continue;
            handle_signal_stop(st, "during a remote syscall");
            continue;
        }
        if (!at_syscall_entry_) {
            Regs r = get_regs(tid_);
            if (static_cast<long>(r.orig_rax) != expected_nr)
                fail("thread {}: remote syscall {} entered as {}", tid_, expected_nr,
                     static_cast<long>(r.orig_rax));
            at_syscall_entry_ = true;
            if (entry_hook_) std::exchange(entry_hook_, nullptr)();
        } else {
            at_syscall_entry_ = false;
            return;
        }
    }
}

long RemoteSyscalls::do_syscall(RemoteAddr frame, long nr, uint64_t a1, uint64_t a2,
                                uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6) {
    settle();
    Regs r = saved_.regs;
    if (!frame.null()) {
        r.rip = gadgets_.syscall_ret.addr();
        r.rsp = frame.addr();  // the gadget's `ret` pops the frame's return address
    } else {
        r.rip = gadgets_.syscall_any.addr();
    }
    r.rax = static_cast<uint64_t>(nr);
    r.orig_rax = static_cast<uint64_t>(-1);  // no syscall restart on our registers
    r.eflags = kCleanFlags;
    r.rdi = a1;
    r.rsi = a2;
    r.rdx = a3;
    r.r10 = a4;
    r.r8 = a5;
    r.r9 = a6;
    set_regs(tid_, r);
    block_signals();
    step_to_syscall_exit(nr);
    return static_cast<long>(get_regs(tid_).rax);
}

long RemoteSyscalls::syscall(long nr, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                             uint64_t a5, uint64_t a6) {
    return do_syscall(frame_, nr, a1, a2, a3, a4, a5, a6);
}

long RemoteSyscalls::syscall_via(RemoteAddr frame, long nr, uint64_t a1, uint64_t a2) {
    return do_syscall(frame, nr, a1, a2, 0, 0, 0, 0);
}

long RemoteSyscalls::checked(const char* what, long nr, uint64_t a1, uint64_t a2, uint64_t a3,
                             uint64_t a4, uint64_t a5, uint64_t a6) {
    long r = syscall(nr, a1, a2, a3, a4, a5, a6);
    if (r < 0 && r > -4096)
        fail("remote {} in process {} failed: {}", what, pid_, errno_text(static_cast<int>(-r)));
    return r;
}

void RemoteSyscalls::run_code(RemoteAddr entry, RemoteAddr stack_top, uint64_t arg,
                              uint64_t arg2, long done_nr, uint64_t done_magic, long timeout_ms) {
    settle();
    Regs r = saved_.regs;
    r.rip = entry.addr();
    r.rsp = stack_top.addr();
    r.rdi = arg;
    r.rsi = arg2;
    r.orig_rax = static_cast<uint64_t>(-1);
    r.rax = 0;
    r.eflags = kCleanFlags;
    set_regs(tid_, r);
    block_signals();
    bool in_syscall = false;
    for (;;) {
        resume(tid_, PTRACE_SYSCALL);
        running_ = true;
        if (run_hook_) std::exchange(run_hook_, nullptr)();
        StopStatus st = wait_tid_for(tid_, timeout_ms);
        if (st.timed_out)
            fail("the parasite in thread {} did not finish within {} ms", tid_, timeout_ms);
        running_ = false;
        if (st.exited) fail("thread {} died while running the parasite", tid_);
        if (!st.syscall_stop()) {
            if (st.event() == PTRACE_EVENT_STOP) continue;
            handle_signal_stop(st, "in the parasite");
            continue;
        }
        if (!in_syscall) {
            Regs now = get_regs(tid_);
            if (static_cast<long>(now.orig_rax) == done_nr && now.rdi == done_magic) {
                at_syscall_entry_ = true;
                step_to_syscall_exit(done_nr);  // let the marker complete, to its exit stop
                return;
            }
        }
        in_syscall = !in_syscall;
    }
}

}  // namespace ckpt::tracer
