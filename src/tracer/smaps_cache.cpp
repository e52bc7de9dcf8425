#include "tracer/smaps_cache.h"

#include <fmt/format.h>

#include <map>

#include "common/fs.h"

namespace ckpt::tracer {

namespace {
std::map<pid_t, std::string> cache;
}

const std::string& frozen_smaps(pid_t pid) {
    auto it = cache.find(pid);
    if (it == cache.end()) it = cache.emplace(pid, read_file(fmt::format("/proc/{}/smaps", pid))).first;
    return it->second;
}

void forget_frozen_smaps() { cache.clear(); }

}  // namespace ckpt::tracer
