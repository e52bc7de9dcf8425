#include "tracer/fault.h"

#include <signal.h>

#include <algorithm>
#include <array>

#include "common/error.h"
#include "common/interrupt.h"

namespace ckpt::fault {

namespace {

constexpr std::array<Step, 17> kSteps = {{
    {"seize", false},             // after every thread is frozen
    {"collect", false},           // after /proc and ptrace state is read
    {"files", false},             // after the fd table is read
    {"bootstrap", false},         // in the remote mmap that makes room for the parasite
    {"remote-syscall", false},    // in the first remote syscall once the parasite is loaded
    {"infect", false},            // after the parasite is mapped into the target
    {"thread-command", false},    // while a non-leader thread runs a parasite command
    {"parasite-hang", false},     // the parasite is made to hang: ckpt's timeout takes over
    {"parasite-state", false},    // after the parasite reported signal state
    {"parasite-running", false},  // while the parasite splices the first batch of pages
    {"parasite-fault", false},    // the parasite is made to touch an unmapped page (SIGSEGV)
    {"memory", false},            // halfway through streaming memory
    {"unmap", true},              // in the remote munmap that removes the parasite
    {"cure", false},              // after the parasite is removed, before the target is released
    {"checksum", false},          // after page data is checksummed
    {"write-image", false},       // after the records are written, before the image is complete
    {"commit", false},            // just before the image is made visible
}};

std::string_view armed;
enum class Mode { Error, Kill, Stop } mode = Mode::Error;

void hit(std::string_view step) {
    if (armed.empty() || armed != step) return;
    switch (mode) {
        case Mode::Kill: ::kill(::getpid(), SIGKILL); break;
        case Mode::Stop: ::raise(SIGSTOP); return;
        case Mode::Error: break;
    }
    fail("injected fault at dump step '{}'", step);
}

}  // namespace

std::span<const Step> dump_steps() { return kSteps; }

void arm(std::string_view spec) {
    std::string_view step = spec;
    mode = Mode::Error;
    for (auto [suffix, m] : {std::pair{std::string_view(":kill"), Mode::Kill}, std::pair{std::string_view(":stop"), Mode::Stop}}) {
        if (spec.size() > suffix.size() && spec.ends_with(suffix)) {
            step = spec.substr(0, spec.size() - suffix.size());
            mode = m;
        }
    }
    auto it = std::find_if(kSteps.begin(), kSteps.end(), [&](const Step& s) { return s.name == step; });
    if (it == kSteps.end())
        fail("unknown fault-injection step '{}' (see --list-fault-steps)", step);
    if (it->kill_only && mode == Mode::Error)
        fail("fault-injection step '{}' only exists as '{}:kill' or '{}:stop'", step, step, step);
    armed = it->name;
}

void point(std::string_view step) {
    interrupt::check();
    hit(step);
}

bool fires(std::string_view step) {
    interrupt::check();
    if (armed.empty() || armed != step) return false;
    if (mode == Mode::Error) return true;
    hit(step);
    return false;
}

void kill_point(std::string_view step) {
    if (mode != Mode::Error) hit(step);
}

}  // namespace ckpt::fault
