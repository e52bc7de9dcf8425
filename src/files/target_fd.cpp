#include "files/target_fd.h"

#include <sys/syscall.h>
#include <unistd.h>

#include "common/error.h"

namespace ckpt::files {

UniqueFd copy_of_target_fd(pid_t pid, int fd) {
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!pidfd) fail_errno("process {}: cannot open a pidfd", pid);
    UniqueFd mine(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), fd, 0)));
    if (!mine) fail_errno("process {} fd {}: cannot take a copy of it (pidfd_getfd)", pid, fd);
    return mine;
}

}  // namespace ckpt::files
