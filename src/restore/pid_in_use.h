// Why a pid (or thread id) that a restore needs is taken, in words a user can act on.
#pragma once

#include <sys/types.h>

#include <string>

namespace ckpt::restore {

// "pid N is in use by 'comm'", or "pid N is in use by a zombie (exited, not yet reaped by
// its parent M)": the holder is gone but its parent must wait() for it to free the pid.
std::string pid_in_use(pid_t pid, const char* what = "pid");

}  // namespace ckpt::restore
