// Stack unwinding of frozen threads with libunwind's ptrace support, done at dump time so
// `ckpt info --backtrace` can show it later without the process.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "image/format.h"
#include "tracer/ptrace.h"

namespace ckpt::tracer {

// One unwinder per process. libunwind's ptrace accessors look up the ELF image of every
// address by re-reading /proc/PID/maps, and keep one cache per thread handle; with many
// threads that dominates the dump. Here all threads share one handle (the address space is
// the same), registers come from what the dump already read, memory is read with
// process_vm_readv, and symbol names are cached by address.
class Unwinder {
  public:
    Unwinder(pid_t pid, const std::vector<image::Vma>& vmas);
    ~Unwinder();
    Unwinder(const Unwinder&) = delete;
    Unwinder& operator=(const Unwinder&) = delete;

    // Best effort: a stack that cannot be unwound gets the frames found so far.
    std::vector<image::BacktraceFrame> unwind(const Regs& regs);

    struct Context;

  private:
    std::unique_ptr<Context> ctx_;
};

}  // namespace ckpt::tracer
