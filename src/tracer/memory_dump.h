// The address space of a frozen target: its VMAs, and the contents worth keeping streamed
// into data.img through the parasite (vmsplice in the target, splice here).
#pragma once

#include <sys/types.h>

#include <functional>
#include <vector>

#include "image/format.h"
#include "image/writer.h"
#include "tracer/parasite.h"
#include "tracer/pfn_cache.h"

namespace ckpt::tracer {

// Reads maps and smaps; refuses mappings that cannot be restored yet, with the reason.
std::vector<image::Vma> collect_vmas(pid_t pid);

// Shared anonymous memory (maybe mapped by several processes of a tree: fork() shares it)
// is saved whole, once per object, read by ckpt through /proc/PID/map_files (holes
// skipped): with the first VMA that maps it; every other VMA of it gets content_pid.
// `tree` is every process's VMAs.
void save_shared_memory(std::vector<std::vector<image::Vma>*>& tree, image::ImageWriter& out);

struct MemoryStats {
    uint64_t pages_candidate = 0;  // present or swapped pages that could hold data
    uint64_t pages_stored = 0;
    uint64_t pages_zero = 0;  // present but all zero: not stored
    uint64_t pages_inherited = 0;  // the parent's very pages (copy-on-write): not stored
};

// The parent of the process being dumped, frozen too, whose private memory the process may
// still share copy-on-write (same physical pages); its pagemap entries come from `pfns`.
struct ParentMemory {
    pid_t pid;
    const std::vector<image::Vma>* vmas;
    PfnCache* pfns;
};

struct CandidateSpan {
    uint64_t addr, nr_pages;
    size_t vma;  // index in the process's VMAs
};

// The pages of a process that are to be stored, found from outside before the parasite goes
// in (so that it is given pipes for what it will move, not for the most it could).
struct PagePlan {
    std::vector<CandidateSpan> spans;
    uint64_t pages = 0;
    uint64_t readable_pages = 0;  // of those, in readable VMAs: what goes through the pipes
};

// Finds every page that holds data the kernel cannot give back by itself (anonymous and
// private-dirty pages; never-touched and zero-page-mapped pages and clean file pages are
// left out). With `parent`, a private anonymous VMA that has pages physically shared with
// the parent's VMA at the same address is marked `inherit`, and those pages are left out.
PagePlan plan_pages(pid_t pid, std::vector<image::Vma>& vmas, const ParentMemory* parent, MemoryStats& stats);

// Writes the planned pages that are not all zero. `halfway` is called once, half through,
// for fault injection. Returns the runs, in order, without checksums; updates
// vmas[i].stored_pages (and the `zero` ranges of inheriting VMAs).
std::vector<image::PageRun> dump_memory(pid_t pid, Parasite& parasite, std::vector<image::Vma>& vmas,
                                        PagePlan plan, image::ImageWriter& out, MemoryStats& stats,
                                        const std::function<void()>& halfway);

}  // namespace ckpt::tracer
