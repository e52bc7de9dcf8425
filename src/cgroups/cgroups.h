// cgroup membership: what /proc/PID/cgroup says at dump, and putting a restored process back
// into the same cgroups. Both cgroup v1 hierarchies (one line per hierarchy, matched by its
// controller list, since hierarchy ids can change at boot) and cgroup v2 ("0::/path").
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "image/format.h"

namespace ckpt::cgroups {

// The lines of a /proc/.../cgroup file; `what` names the file in errors.
std::vector<image::Cgroup> parse(std::string_view text, const std::string& what);

// The cgroups of a process (its main thread), or of one thread.
std::vector<image::Cgroup> of_process(pid_t pid);
std::vector<image::Cgroup> of_thread(pid_t pid, pid_t tid);

// For messages: "cgroup v2", "cgroup v1 hierarchy cpu,cpuacct".
std::string hierarchy_name(const image::Cgroup& c);

// A thread whose cgroups differ from its process's (cgroup v2 threaded mode, or one thread
// written to a v1 `tasks` file): "thread 12 is in /a of cgroup v2 (the process in /)", or
// empty. Restore moves whole processes only, so such a thread would be put back wrongly.
std::string thread_difference(pid_t pid, pid_t tid);

// Why restore could not put process `pid` back into its cgroups, or empty: a cgroup in a
// hierarchy not mounted here, or a cgroup v2 that is threaded. Checked at dump, where the
// target can still be left alone.
std::string restore_obstacle(pid_t pid);

// Moves the (not yet running) restored process `pid` into the recorded cgroups wherever it
// is elsewhere, and checks that the kernel shows it there afterwards. Fails, naming the
// hierarchy and the path, if a recorded cgroup does not exist here, its hierarchy is not
// mounted, or the kernel refuses the move.
void restore_membership(pid_t pid, const std::vector<image::Cgroup>& recorded);

}  // namespace ckpt::cgroups
