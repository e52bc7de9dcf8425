// The descriptors of every process outside a dumped tree: kinds whose objects may be shared
// with the outside (pipes, sockets) look there for other holders.
#pragma once

#include <sys/types.h>

#include <functional>
#include <set>
#include <string>
#include <string_view>

namespace ckpt::files {

// Calls `each(pid, fd, link, path)` for every descriptor of every process not in `tree` (and
// not ckpt): `link` is what /proc/PID/fd/N points to, `path` that /proc path itself.
void for_each_fd_outside(const std::set<pid_t>& tree,
                         const std::function<void(pid_t, std::string_view fd, std::string_view link, const std::string& path)>& each);

}  // namespace ckpt::files
