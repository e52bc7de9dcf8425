// Fault injection for the dump: `ckpt dump --fault-inject STEP` makes the named step fail
// as if the kernel had refused it, so tests can prove every error path rolls back;
// `--fault-inject STEP:kill` makes ckpt SIGKILL itself there instead, to prove the target
// survives a ckpt that dies without any chance to clean up.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace ckpt::fault {

struct Step {
    std::string_view name;
    bool kill_only;  // an error here could not be rolled back by ckpt anyway (only tested killed)
};

// Every step a dump passes through, in order.
std::span<const Step> dump_steps();

// Arms injection for "STEP", "STEP:kill" or "STEP:stop" (ckpt stops itself with SIGSTOP
// there, so that a test can SIGKILL or SIGCONT it at an exact moment); throws on an
// unknown step name.
void arm(std::string_view spec);

// Called at each step; throws a ckpt::Error (or kills ckpt) if this step is armed. Also the
// place where a dump notices that ckpt was asked to stop (SIGINT, SIGTERM, SIGHUP).
void point(std::string_view step);
// A step where the caller itself makes the fault happen: true if it is armed in error mode
// (kill and stop modes act here like point()).
bool fires(std::string_view step);
// A step that only the kill and stop modes may arm.
void kill_point(std::string_view step);

}  // namespace ckpt::fault
