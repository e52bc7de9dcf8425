#include "tracer/pfn_cache.h"

#include <fcntl.h>

#include "common/error.h"
#include "common/fs.h"

namespace ckpt::tracer {

namespace {
constexpr uint64_t kPage = 4096;
constexpr uint64_t kPresent = 1ull << 63;
constexpr uint64_t kPfnMask = (1ull << 55) - 1;
}  // namespace

int PfnCache::pagemap_of(pid_t pid) {
    auto it = pagemaps_.find(pid);
    if (it == pagemaps_.end()) {
        std::string path = fmt::format("/proc/{}/pagemap", pid);
        UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
        if (!fd) fail_errno("cannot open {}", path);
        it = pagemaps_.emplace(pid, std::move(fd)).first;
    }
    return it->second.get();
}

void PfnCache::load(pid_t pid, uint64_t index, std::array<uint64_t, kChunkPages>& into) {
    pread_exact(pagemap_of(pid), into.data(), sizeof into, index * kChunkPages * 8,
                fmt::format("/proc/{}/pagemap", pid));
}

PfnCache::Chunk& PfnCache::chunk(pid_t pid, uint64_t index) {
    auto key = std::make_pair(pid, index);
    auto it = chunks_.find(key);
    if (it == chunks_.end()) {
        it = chunks_.emplace(key, Chunk{}).first;
        load(pid, index, it->second.entries);
    }
    return it->second;
}

void PfnCache::verify() {
    std::array<uint64_t, kChunkPages> now;
    for (const auto& [key, c] : chunks_) {
        if (c.matched.none()) continue;
        load(key.first, key.second, now);
        for (uint64_t i = 0; i < kChunkPages; ++i) {
            if (!c.matched[i] || (c.entries[i] & (kPresent | kPfnMask)) == (now[i] & (kPresent | kPfnMask)))
                continue;
            fail("a page of process {} moved during the dump (at {:#x}): pages of its children that were "
                 "the same page cannot be trusted to be; try again",
                 key.first, (key.second * kChunkPages + i) * kPage);
        }
    }
}

}  // namespace ckpt::tracer
