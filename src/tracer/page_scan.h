// Which pages of a range of the target exist, and how: from /proc/PID/pagemap, through the
// PAGEMAP_SCAN ioctl (6.7+: walks only populated page tables, so a terabyte reservation
// with a few pages costs microseconds) or, where the kernel lacks it, by reading one
// pagemap entry per page.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/fd.h"

namespace ckpt::tracer {

// Bits reported for a run of pages, named after pagemap's (present 63, swapped 62,
// file-or-shared 61, guard 58); kPageZero: the shared zero page is mapped there.
inline constexpr uint64_t kPagePresent = 1ull << 63;
inline constexpr uint64_t kPageSwapped = 1ull << 62;
inline constexpr uint64_t kPageFile = 1ull << 61;
inline constexpr uint64_t kPageGuard = 1ull << 58;
inline constexpr uint64_t kPageZero = 1ull << 0;

class PageScanner {
  public:
    explicit PageScanner(int pid);
    // Calls run(addr, nr_pages, bits) for the pages of [start, end) that are present,
    // swapped or guard pages, in address order; pages with none of these are skipped.
    void scan(uint64_t start, uint64_t end,
              const std::function<void(uint64_t, uint64_t, uint64_t)>& run);
    bool uses_ioctl() const { return ioctl_ok_; }

  private:
    bool scan_ioctl(uint64_t start, uint64_t end,
                    const std::function<void(uint64_t, uint64_t, uint64_t)>& run);
    void scan_read(uint64_t start, uint64_t end,
                   const std::function<void(uint64_t, uint64_t, uint64_t)>& run);

    std::string path_;
    UniqueFd fd_;
    bool ioctl_ok_ = true;
};

}  // namespace ckpt::tracer
