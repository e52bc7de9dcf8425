// /proc/PID/smaps of a frozen process, read once per dump. Reading it walks every page
// table entry of the process (to count Rss, Pss, ...): for a tree of processes sharing a
// big parent's memory, reading it three times (audit, VMAs, page scan) was a fifth of a
// dump. The process is frozen from the first read to the end of the dump, so its VMAs
// and page counts do not change meanwhile (the parasite's own mapping, added later, is
// rightly not in it).
#pragma once

#include <sys/types.h>

#include <string>

namespace ckpt::tracer {

const std::string& frozen_smaps(pid_t pid);

// Drops every cached text; a dump calls it when it ends, however it ends.
void forget_frozen_smaps();

}  // namespace ckpt::tracer
