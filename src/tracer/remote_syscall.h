// Executing code and system calls inside a frozen thread, rr-style: constructing the object
// saves the thread's registers, FPU state and signal mask; the destructor puts every one of
// them back and returns the thread to the interrupt stop it was frozen in. Error paths need
// no cleanup code of their own.
//
// The destructor only runs if ckpt does. For the case where ckpt is killed outright, the
// thread is never left where it could not find its own way back: once a frame is placed
// (place_frame), a syscall is run by pointing the thread at a borrowed `syscall; ret`
// sequence with rsp on the frame, so whatever ptrace stop ckpt vanishes in, the thread
// finishes the call, returns into rt_sigreturn and resumes its original state (sigframe.h).
// Without a frame (the target offers no gadgets) a bare `syscall` instruction is used and a
// SIGKILL of ckpt mid-call would leave the thread lost: that mode is logged.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/remote_ptr.h"
#include "tracer/gadgets.h"
#include "tracer/ptrace.h"
#include "tracer/sigframe.h"

namespace ckpt::tracer {

class RemoteSyscalls {
  public:
    RemoteSyscalls(pid_t pid, pid_t tid, const Gadgets& gadgets);
    ~RemoteSyscalls();
    RemoteSyscalls(const RemoteSyscalls&) = delete;
    RemoteSyscalls& operator=(const RemoteSyscalls&) = delete;

    pid_t pid() const { return pid_; }
    pid_t tid() const { return tid_; }
    const ThreadContext& saved() const { return saved_; }

    // Writes the thread's way home at `at` (returning through `sigreturn_gadget`) and parks
    // the thread on it. Later calls use it until the next place_frame.
    void place_frame(RemoteAddr at, RemoteAddr sigreturn_gadget);
    RemoteAddr frame() const { return frame_; }
    bool protected_mode() const { return !frame_.null(); }

    // Returns the raw result (-errno on failure), like the kernel does.
    long syscall(long nr, uint64_t a1 = 0, uint64_t a2 = 0, uint64_t a3 = 0, uint64_t a4 = 0,
                 uint64_t a5 = 0, uint64_t a6 = 0);
    // Same, but throws with `what` in the message when the call fails.
    long checked(const char* what, long nr, uint64_t a1 = 0, uint64_t a2 = 0, uint64_t a3 = 0,
                 uint64_t a4 = 0, uint64_t a5 = 0, uint64_t a6 = 0);
    // A syscall whose way home is `frame` (already written) instead of the current one: for
    // the call that unmaps the memory holding the current frame.
    long syscall_via(RemoteAddr frame, long nr, uint64_t a1, uint64_t a2);

    // Runs code at `entry` with rdi = arg, rsi = arg2 and rsp = stack until it makes the
    // syscall `done_nr` with rdi == done_magic (its way of saying it has finished). The
    // thread is left stopped at that syscall's exit. Throws if that takes more than
    // `timeout_ms` (between two stops); the destructor then takes the thread back.
    void run_code(RemoteAddr entry, RemoteAddr stack_top, uint64_t arg, uint64_t arg2,
                  long done_nr, uint64_t done_magic, long timeout_ms);

    // Test hooks (fault injection): called once, at the next remote syscall's entry stop /
    // right after the next run_code has set the thread running.
    void on_next_syscall_entry(std::function<void()> f) { entry_hook_ = std::move(f); }
    void on_next_run(std::function<void()> f) { run_hook_ = std::move(f); }
    // `*flag` becomes true once the thread has really been given its state back.
    void report_restored_to(bool* flag) { restored_ = flag; }

  private:
    void block_signals();
    void defer_if_signal(const StopStatus& st);
    // Brings the thread to a quiet stop after an abandoned call (see at_syscall_entry_).
    void settle();
    bool handle_signal_stop(const StopStatus& st, const char* where);
    long do_syscall(RemoteAddr frame, long nr, uint64_t a1, uint64_t a2, uint64_t a3,
                    uint64_t a4, uint64_t a5, uint64_t a6);
    void step_to_syscall_exit(long expected_nr);
    void restore() noexcept;

    pid_t pid_, tid_;
    Gadgets gadgets_;
    ThreadContext saved_;
    RemoteAddr frame_;
    bool at_syscall_entry_ = false;  // stopped before a call ran: cancel it when restoring
    bool signals_blocked_ = false;
    bool running_ = false;  // resumed into our code, not yet stopped again
    std::vector<int> deferred_signals_;  // sent from outside while ckpt's code ran
    std::function<void()> entry_hook_, run_hook_;
    bool* restored_ = nullptr;
};

}  // namespace ckpt::tracer
