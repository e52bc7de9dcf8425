// Lays out the restorer region (blob, RestorerArgs, tables, signal frames, stacks) for one
// process, at an address no VMA of the image and nothing mapped now uses.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <vector>

#include "image/image.h"
#include "restorer/restorer_abi.h"

namespace ckpt::restore {

struct CurrentVdso {  // the running kernel's pieces in this process
    uint64_t vvar = 0, vvar_len = 0;
    uint64_t vclock = 0, vclock_len = 0;
    uint64_t vdso = 0, vdso_len = 0;
};

CurrentVdso find_current_vdso();

// Refuses (with the reason) an image whose vDSO layout this kernel cannot provide.
void check_vdso_compatible(const image::Image& img, int pid, const CurrentVdso& cur);

struct RegionInputs {
    const image::Image* img = nullptr;
    int pid = 0;
    int data_fd = -1;
    int exe_fd = -1;
    std::vector<int> vma_fds;    // per image VMA of pid (same order), -1 if anonymous
    std::vector<int> close_fds;  // everything the stub must close before the program runs
    CurrentVdso vdso;
    // VMAs already filled elsewhere in this process (by VMA start: where they are now); the
    // stub moves them into place and writes none of their pages.
    std::map<uint64_t, uint64_t> premaps;
};

// Maps `len` bytes (PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|extra_flags) in this
// process at an address in a gap between the `used` ranges, also free here.
uint64_t map_in_gap(std::vector<std::pair<uint64_t, uint64_t>> used, uint64_t len, int extra_flags, int prot);

struct Region {
    uint64_t start = 0, len = 0;
    restorer::RestorerArgs* args = nullptr;  // inside the region
    uint64_t entry = 0, stack_top = 0;
};

// Maps and fills the region in the calling process (ckpt's child, about to become `pid`).
Region build_region(const RegionInputs& in);

// The register state a thread resumes with: a syscall it was interrupted in is re-executed.
void fill_sigframe(restorer::RtSigframe& f, const image::Thread& t, uint64_t fpstate);

}  // namespace ckpt::restore
