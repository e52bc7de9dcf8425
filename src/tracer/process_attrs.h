// Process and thread attributes beyond ids, memory, files and signals: oom_score_adj,
// loginuid, THP disable, child subreaper, membarrier registrations, resource limits,
// no_new_privs, cgroup membership.
#pragma once

#include <sys/types.h>

#include <vector>

#include "image/format.h"
#include "parasite/parasite_abi.h"

namespace ckpt::tracer {

// What /proc shows from outside, for the process and each of its threads.
void collect_attrs(pid_t pid, image::Process& p, std::vector<image::Thread>& threads);

// What only the process itself can read (the parasite's process_state command).
void take_parasite_attrs(const parasite::ProcessState& ps, image::Process& p);

}  // namespace ckpt::tracer
