#include "tracer/page_scan.h"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <vector>

#include "common/error.h"
#include "common/fs.h"

namespace ckpt::tracer {

namespace {

constexpr uint64_t kPage = 4096;

// The kernel's uapi (linux/fs.h of 6.7+; Debian 12's headers are older).
struct PageRegion {
    uint64_t start, end, categories;
};
struct PmScanArg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
    uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
constexpr unsigned long kPagemapScan = _IOWR('f', 16, PmScanArg);
constexpr uint64_t kIsFile = 1 << 2, kIsPresent = 1 << 3, kIsSwapped = 1 << 4,
                   kIsPfnZero = 1 << 5, kIsGuard = 1 << 8;

}  // namespace

PageScanner::PageScanner(int pid) : path_(fmt::format("/proc/{}/pagemap", pid)) {
    fd_.reset(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd_) fail_errno("cannot open {}", path_);
}

void PageScanner::scan(uint64_t start, uint64_t end,
                       const std::function<void(uint64_t, uint64_t, uint64_t)>& run) {
    if (ioctl_ok_ && scan_ioctl(start, end, run)) return;
    scan_read(start, end, run);
}

bool PageScanner::scan_ioctl(uint64_t start, uint64_t end,
                             const std::function<void(uint64_t, uint64_t, uint64_t)>& run) {
    std::vector<PageRegion> regions(4096);
    uint64_t cursor = start;
    while (cursor < end) {
        PmScanArg a{};
        a.size = sizeof a;
        a.start = cursor;
        a.end = end;
        a.vec = reinterpret_cast<uint64_t>(regions.data());
        a.vec_len = regions.size();
        a.category_anyof_mask = kIsPresent | kIsSwapped | kIsGuard;
        a.return_mask = kIsPresent | kIsSwapped | kIsFile | kIsPfnZero | kIsGuard;
        long n = ::ioctl(fd_.get(), kPagemapScan, &a);
        if (n < 0) {
            if (errno == EINTR) continue;
            // An older kernel (no PAGEMAP_SCAN, or no guard category): read pagemap instead.
            if (cursor == start && (errno == ENOTTY || errno == EINVAL)) {
                ioctl_ok_ = false;
                return false;
            }
            fail_errno("PAGEMAP_SCAN of {:#x}-{:#x} in {}", cursor, end, path_);
        }
        for (long k = 0; k < n; ++k) {
            const PageRegion& r = regions[static_cast<size_t>(k)];
            uint64_t bits = 0;
            if (r.categories & kIsGuard) bits |= kPageGuard;
            if (r.categories & kIsPresent) bits |= kPagePresent;
            if (r.categories & kIsSwapped) bits |= kPageSwapped;
            if (r.categories & kIsFile) bits |= kPageFile;
            if (r.categories & kIsPfnZero) bits |= kPageZero;
            run(r.start, (r.end - r.start) / kPage, bits);
        }
        if (a.walk_end <= cursor) fail("PAGEMAP_SCAN of {} made no progress at {:#x}", path_, cursor);
        cursor = a.walk_end;
    }
    return true;
}

void PageScanner::scan_read(uint64_t start, uint64_t end,
                            const std::function<void(uint64_t, uint64_t, uint64_t)>& run) {
    constexpr uint64_t kChunk = 65536;
    std::vector<uint64_t> entries(kChunk);
    for (uint64_t addr = start; addr < end;) {
        uint64_t n = std::min(kChunk, (end - addr) / kPage);
        pread_exact(fd_.get(), entries.data(), n * 8, addr / kPage * 8, path_);
        for (uint64_t k = 0; k < n; ++k) {
            uint64_t e = entries[k];
            uint64_t bits = e & (kPagePresent | kPageSwapped | kPageFile | kPageGuard);
            if (bits & (kPagePresent | kPageSwapped | kPageGuard)) run(addr + k * kPage, 1, bits);
        }
        addr += n * kPage;
    }
}

}  // namespace ckpt::tracer
