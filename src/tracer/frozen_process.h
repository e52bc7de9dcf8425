// Seizing and freezing a process: every thread is attached with PTRACE_SEIZE and stopped
// with PTRACE_INTERRUPT (the target never sees a SIGSTOP). The object owns the frozen state:
// its destructor detaches every thread so the target continues as before, on every path,
// unless the dump succeeded and asked for the target to be killed.
#pragma once

#include <sys/types.h>

#include <vector>

namespace ckpt::tracer {

struct FrozenThread {
    pid_t tid;
    char state;  // /proc state letter before the freeze (R, S, D, ...)
};

class FrozenProcess {
  public:
    explicit FrozenProcess(pid_t pid);
    ~FrozenProcess();
    FrozenProcess(const FrozenProcess&) = delete;
    FrozenProcess& operator=(const FrozenProcess&) = delete;

    pid_t pid() const { return pid_; }
    const std::vector<FrozenThread>& threads() const { return threads_; }

    // Lets the target go now (detach) instead of at destruction.
    void release();
    // The dump is complete and the target should not continue: SIGKILL it on release.
    void kill_on_release() { kill_ = true; }

  private:
    void seize(pid_t tid);
    void wait_frozen(pid_t tid);

    pid_t pid_;
    std::vector<FrozenThread> threads_;
    bool kill_ = false;
    bool released_ = false;
};

// Moves a thread that sits in any ptrace stop (e.g. a syscall-exit stop after remote work)
// back into an interrupt stop, so that on detach the kernel runs its syscall-restart logic
// against the registers we restore, exactly as it would have without us.
void return_to_interrupt_stop(pid_t tid);

}  // namespace ckpt::tracer
