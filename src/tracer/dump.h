// `ckpt dump`: checkpoint a running process into an image directory.
#pragma once

#include <sys/types.h>

#include <string>

namespace ckpt::tracer {

struct DumpOptions {
    pid_t pid = 0;
    std::string dir;
    bool leave_running = false;
    bool print_stats = false;  // key=value lines on stdout, for tools/ benchmarks
    bool overwrite = false;    // replace an image already in dir (once the new one is complete)
};

// Throws ckpt::Error on failure; the target is then running exactly as before.
void dump(const DumpOptions& opts);

}  // namespace ckpt::tracer
