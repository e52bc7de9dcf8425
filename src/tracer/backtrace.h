// Stack unwinding of a frozen thread with libunwind's ptrace support, done at dump time so
// `ckpt info --backtrace` can show it later without the process.
#pragma once

#include <sys/types.h>

#include <vector>

#include "image/format.h"

namespace ckpt::tracer {

// Best effort: a thread whose stack cannot be unwound gets the frames found so far.
std::vector<image::BacktraceFrame> unwind_thread(pid_t tid, const std::vector<image::Vma>& vmas);

}  // namespace ckpt::tracer
