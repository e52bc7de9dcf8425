// Fault injection for the dump: `ckpt dump --fault-inject STEP` makes the named step fail
// as if the kernel had refused it, so tests can prove every error path rolls back.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace ckpt::fault {

// Every step a dump passes through, in order.
std::span<const std::string_view> dump_steps();

// Arms injection for `step`; throws on an unknown step name. "STEP:stop" makes ckpt stop
// itself with SIGSTOP at that step instead of failing, so that a test can SIGKILL it there.
void arm(std::string_view step);

// Called at each step; throws a ckpt::Error if this step is armed.
void point(std::string_view step);

}  // namespace ckpt::fault
