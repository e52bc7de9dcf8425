#include "tracer/fault.h"

#include <algorithm>
#include <array>
#include <csignal>

#include "common/error.h"

namespace ckpt::fault {

namespace {

constexpr std::array<std::string_view, 10> kSteps = {
    "seize",           // after every thread is frozen
    "collect",         // after /proc and ptrace state is read
    "files",           // after the fd table is read
    "infect",          // after the parasite is mapped into the target
    "parasite-state",  // after the parasite reported signal state
    "memory",          // halfway through streaming memory
    "cure",            // after the parasite is removed, before the target is released
    "checksum",        // after page data is checksummed
    "write-image",     // after the records are written, before the image is complete
    "commit",          // just before the image is made visible
};

std::string_view armed;
bool stop_instead = false;  // STEP:stop

}  // namespace

std::span<const std::string_view> dump_steps() { return kSteps; }

void arm(std::string_view step) {
    constexpr std::string_view kStop = ":stop";
    stop_instead = step.size() > kStop.size() && step.ends_with(kStop);
    if (stop_instead) step.remove_suffix(kStop.size());
    if (std::find(kSteps.begin(), kSteps.end(), step) == kSteps.end())
        fail("unknown fault-injection step '{}' (see --list-fault-steps)", step);
    armed = step;
}

void point(std::string_view step) {
    if (armed.empty() || armed != step) return;
    // a test kills ckpt here (SIGKILL cannot be caught; this makes the moment exact)
    if (stop_instead) {
        ::raise(SIGSTOP);
        return;
    }
    fail("injected fault at dump step '{}'", step);
}

}  // namespace ckpt::fault
