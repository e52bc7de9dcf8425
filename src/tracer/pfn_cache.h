// The pagemap entries of frozen parents, read once per dump. A child's private memory is
// compared page by page with its parent's (same PFN: the page is still shared copy-on-write
// since fork, and is not stored); a parent of 100 children had the same entries of its
// whole memory read 100 times. The cache keeps what was read, in page-table-sized chunks,
// with a mark on every entry some child's page matched. verify() reads the chunks again at
// the end of the dump: if a matched page of a parent moved meanwhile (reclaim, migration,
// khugepaged), the child's page that matched the old PFN might be some other page now in
// that frame, so the dump fails rather than trust it.
#pragma once

#include <sys/types.h>

#include <array>
#include <bitset>
#include <cstdint>
#include <map>
#include <utility>

#include "common/fd.h"

namespace ckpt::tracer {

class PfnCache {
  public:
    static constexpr uint64_t kChunkPages = 512;
    struct Chunk {
        std::array<uint64_t, kChunkPages> entries;
        std::bitset<kChunkPages> matched;  // set by the caller: a child shares this page
    };
    // The entries of pages [index * kChunkPages, (index + 1) * kChunkPages) of process
    // `pid`, which is frozen; read on first use.
    Chunk& chunk(pid_t pid, uint64_t index);
    // Throws if the present bit or PFN of a matched entry differs from the kernel's now.
    void verify();

  private:
    int pagemap_of(pid_t pid);
    void load(pid_t pid, uint64_t index, std::array<uint64_t, kChunkPages>& into);

    std::map<pid_t, UniqueFd> pagemaps_;
    std::map<std::pair<pid_t, uint64_t>, Chunk> chunks_;
};

}  // namespace ckpt::tracer
