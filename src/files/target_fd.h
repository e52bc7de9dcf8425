// A copy, in ckpt, of a descriptor of a frozen target: the same open file description
// (pidfd_getfd), to ask what only a descriptor can tell (socket options, queued data)
// without changing the target's fd table.
#pragma once

#include <sys/types.h>

#include "common/fd.h"

namespace ckpt::files {

UniqueFd copy_of_target_fd(pid_t pid, int fd);

}  // namespace ckpt::files
