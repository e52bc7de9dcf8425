// Restoring the process attributes of tracer/process_attrs.h, and the stopped state.
#pragma once

#include "image/image.h"

namespace ckpt::restore {

// Attributes a process can only set on itself (loginuid) or that are simplest to set
// there: runs in the new process before it jumps into the restorer stub.
void restore_attrs_in_child(const image::Process& p);

// The process was in a group stop (SIGSTOP, SIGTSTP...) when it was dumped.
bool was_stopped(const image::Image& img, int pid);

}  // namespace ckpt::restore
