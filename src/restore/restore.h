// `ckpt restore`: bring a dumped process back with its PID.
#pragma once

#include <string>
#include <vector>

namespace ckpt::restore {

struct RestoreOptions {
    std::string dir;
    bool detach = false;     // let the restored process go instead of waiting for it
    bool shell_job = false;  // give it ckpt's terminal
    bool print_stats = false;
    bool allow_changed_files = false;  // restore although open or mapped files changed
    std::vector<std::string> inherit_fds;  // fd[N]:pipe:[INO], for pipes to outside the tree
    bool inherit_stdio = false;            // external pipes at fds 0-2 get ckpt restore's own
};

// Returns the exit code ckpt should exit with: the restored process's status when waiting
// for it (128 + signal if it was killed), 0 when detached. Throws ckpt::Error on failure,
// with nothing of the half-restored process left behind.
int restore(const RestoreOptions& opts);

}  // namespace ckpt::restore
