#include "tracer/memory_dump.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <map>
#include <sys/stat.h>
#include <chrono>
#include <exception>
#include <thread>
#include <cstring>

#include "common/error.h"
#include "common/fs.h"
#include "common/interrupt.h"
#include "common/log.h"
#include "tracer/file_identity.h"
#include "tracer/files_dump.h"
#include "tracer/fault.h"
#include "tracer/page_scan.h"
#include "tracer/pfn_cache.h"
#include "tracer/proc_parse.h"
#include "tracer/smaps_cache.h"
#include "tracer/vma_flags.h"

namespace ckpt::tracer {

using image::Vma;
using image::VmaKind;
constexpr uint64_t kPage = image::kPageSize;

namespace {

constexpr uint64_t kPmPresent = 1ull << 63;
constexpr uint64_t kPmSwapped = 1ull << 62;
constexpr uint64_t kPmGuard = 1ull << 58;  // a guard region (6.15+); shows as swapped too
constexpr uint64_t kPmFile = 1ull << 61;  // file page or shared anonymous

bool has(const std::vector<std::string>& flags, const char* f) {
    return std::find(flags.begin(), flags.end(), f) != flags.end();
}

Vma classify(pid_t pid, const proc::MapsEntry& m, const std::vector<std::string>& vmflags) {
    Vma v;
    v.pid = pid;
    v.start = m.start;
    v.end = m.end;
    v.prot = (m.read ? PROT_READ : 0) | (m.write ? PROT_WRITE : 0) | (m.exec ? PROT_EXEC : 0);
    v.flags = m.shared ? MAP_SHARED : MAP_PRIVATE;
    v.pgoff = m.offset;
    v.path = m.path;
    v.dev = makedev(m.dev_major, m.dev_minor);
    v.ino = m.inode;
    if (has(vmflags, "gd")) v.flags |= MAP_GROWSDOWN;
    if (has(vmflags, "hg")) v.advice |= image::kAdviceHugepage;
    if (has(vmflags, "nh")) v.advice |= image::kAdviceNoHugepage;
    if (has(vmflags, "dd")) v.advice |= image::kAdviceDontDump;
    if (has(vmflags, "dc")) v.advice |= image::kAdviceDontFork;
    if (has(vmflags, "wf")) v.advice |= image::kAdviceWipeOnFork;
    if (has(vmflags, "lo")) v.advice |= image::kAdviceLocked;

    auto unsupported = [&](const char* why) {
        fail("process {}: mapping {:x}-{:x} {}: {} (not supported yet)", pid, m.start, m.end,
             m.path.empty() ? "(anonymous)" : m.path, why);
    };
    if (m.path == "[vdso]") {
        v.kind = VmaKind::Vdso;
    } else if (m.path == "[vvar]") {
        v.kind = VmaKind::Vvar;
    } else if (m.path == "[vvar_vclock]") {
        v.kind = VmaKind::VvarVclock;
    } else if (m.path == "[vsyscall]") {
        v.kind = VmaKind::Vsyscall;
    } else if (m.path == "[heap]") {
        v.kind = VmaKind::Heap;
        v.flags |= MAP_ANONYMOUS;
    } else if (m.path == "[stack]") {
        v.kind = VmaKind::Stack;
        v.flags |= MAP_ANONYMOUS;
    } else if (m.path.empty() || m.path.starts_with("[anon:")) {
        v.kind = VmaKind::Anon;
        v.flags |= MAP_ANONYMOUS;
        if (m.shared) unsupported("unnamed shared mapping");
    } else if (m.path == "/dev/zero (deleted)" && m.shared) {
        v.kind = VmaKind::Anon;  // MAP_SHARED | MAP_ANONYMOUS shows like this
        v.flags |= MAP_ANONYMOUS;
    } else if (m.path.starts_with("/SYSV") && m.shared) {
        v.kind = VmaKind::SysvShm;  // its segment: ipc/sysv_shm.h
    } else if (m.path.starts_with("/memfd:") && m.path.ends_with(" (deleted)")) {
        v.kind = VmaKind::Memfd;  // its object: files/memfd.h
    } else if (m.path.starts_with("/")) {
        v.kind = VmaKind::File;
    } else {
        unsupported("special kernel mapping");
    }
    if (v.kind != VmaKind::Vvar && v.kind != VmaKind::VvarVclock &&
        (has(vmflags, "io") || has(vmflags, "pf")))
        unsupported("device (VM_IO/VM_PFNMAP) mapping");
    return v;
}

// Which present/swapped pages of a VMA may hold data not recoverable from elsewhere.
bool page_wanted(const Vma& v, uint64_t pm) {
    switch (v.kind) {
        case VmaKind::Vdso:
        case VmaKind::Vvar:
        case VmaKind::VvarVclock:
        case VmaKind::Vsyscall: return false;
        case VmaKind::File:
        case VmaKind::Memfd:
            if (v.flags & MAP_SHARED) return false;  // the file holds it
            return (pm & kPmSwapped) || ((pm & kPmPresent) && !(pm & kPmFile));
        case VmaKind::SysvShm: return false;  // saved whole, once, with its segment
        case VmaKind::Anon:
            if (v.flags & MAP_SHARED) return false;  // saved whole, once (save_shared_memory)
            return (pm & kPmSwapped) || ((pm & kPmPresent) && !(pm & kPmFile));
        default: return (pm & (kPmPresent | kPmSwapped)) != 0;
    }
}

bool has_guard_regions(const Vma& v) { return (" " + v.vmflags + " ").find(" gu ") != std::string::npos; }

void add_guard(Vma& v, uint64_t addr) {
    if (!v.guards.empty() && v.guards.back().addr + v.guards.back().nr_pages * kPage == addr)
        ++v.guards.back().nr_pages;
    else
        v.guards.push_back({addr, 1});
}

// Candidate spans of every VMA from /proc/PID/pagemap. Guard pages are recorded in their
// VMA instead: touching one, even from the parasite, raises SIGSEGV. Pages where the shared
// zero page is mapped are left out: they read as zeros, as an untouched page restores.
std::vector<CandidateSpan> candidate_spans(pid_t pid, std::vector<Vma>& vmas) {
    PageScanner scanner(pid);
    std::vector<CandidateSpan> spans;
    // A reservation of terabytes (JVMs, Go, sanitizers) holding no page at all is skipped
    // without a look: smaps says so.
    auto resident = proc::parse_smaps_resident_kb(frozen_smaps(pid));
    for (size_t i = 0; i < vmas.size(); ++i) {
        Vma& v = vmas[i];
        const bool guarded = has_guard_regions(v);
        if (!guarded && !page_wanted(v, kPmPresent | kPmSwapped)) continue;  // whole kinds with no data
        auto usage = resident.find(v.start);
        if (!guarded && usage != resident.end() && usage->second == 0) continue;
        scanner.scan(v.start, v.end, [&](uint64_t a, uint64_t n, uint64_t bits) {
            if (bits & kPageGuard) {
                for (uint64_t k = 0; k < n; ++k) add_guard(v, a + k * kPage);
                return;
            }
            if ((bits & kPageZero) && !(bits & kPageSwapped)) return;
            if (!page_wanted(v, bits)) return;
            if (!spans.empty() && spans.back().vma == i && spans.back().addr + spans.back().nr_pages * kPage == a)
                spans.back().nr_pages += n;
            else
                spans.push_back({a, n, i});
        });
    }
    log::debug("pages of {} found with {}", pid, scanner.uses_ioctl() ? "PAGEMAP_SCAN" : "pagemap reads");
    return spans;
}

// Whether a VMA can take over its parent's VMA at restore: private anonymous writable memory
// (heap included; not the stack, which grows down), at the same place in the parent.
const Vma* inheritable_from(const Vma& v, const std::vector<Vma>& parent) {
    if ((v.kind != VmaKind::Anon && v.kind != VmaKind::Heap) || (v.flags & (MAP_SHARED | MAP_GROWSDOWN)) ||
        !(v.prot & PROT_WRITE) || v.advice & (image::kAdviceDontFork | image::kAdviceWipeOnFork))
        return nullptr;
    for (const auto& p : parent)
        if (p.start == v.start && p.end == v.end && p.kind == v.kind && !(p.flags & MAP_SHARED) &&
            (p.flags & MAP_NORESERVE) == (v.flags & MAP_NORESERVE))
            return &p;
    return nullptr;
}

void add_range(std::vector<image::GuardRange>& rs, uint64_t addr, uint64_t n) {
    if (!rs.empty() && rs.back().addr + rs.back().nr_pages * kPage == addr)
        rs.back().nr_pages += n;
    else
        rs.push_back({addr, n});
}

// Reads pagemap entries of [addr, addr + n pages) of a process.
void read_pagemap(int fd, uint64_t addr, uint64_t n, std::vector<uint64_t>& out, const std::string& what) {
    out.resize(n);
    pread_exact(fd, out.data(), n * 8, addr / kPage * 8, what);
}

// Takes out of `spans` the pages a VMA shares physically with the parent's VMA at the same
// address (same PFN: one page, copy-on-write since fork), marks such VMAs `inherit` and
// records in `zero` the pages they have none of. PFNs are visible to root only; without
// them nothing is shared and everything is stored as before. The parent's entries come
// from `parent.pfns`, read before this process's own (see pfn_cache.h for why that order).
std::vector<CandidateSpan> take_inherited(pid_t pid, std::vector<Vma>& vmas, const std::vector<CandidateSpan>& spans,
                                          const ParentMemory& parent, MemoryStats& stats) {
    std::string mine_path = fmt::format("/proc/{}/pagemap", pid);
    UniqueFd mine(::open(mine_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!mine) fail_errno("cannot open the pagemap of process {}", pid);
    constexpr uint64_t kPfnMask = (1ull << 55) - 1;
    constexpr uint64_t kChunk = PfnCache::kChunkPages;
    std::vector<CandidateSpan> out;
    std::vector<uint64_t> a;
    std::vector<PfnCache::Chunk*> theirs;
    size_t i = 0;
    while (i < spans.size()) {
        const size_t vi = spans[i].vma;
        size_t j = i;
        while (j < spans.size() && spans[j].vma == vi) ++j;  // the spans of this VMA
        Vma& v = vmas[vi];
        if (!inheritable_from(v, *parent.vmas)) {
            out.insert(out.end(), spans.begin() + static_cast<ptrdiff_t>(i), spans.begin() + static_cast<ptrdiff_t>(j));
            i = j;
            continue;
        }
        std::vector<CandidateSpan> own;
        uint64_t shared = 0, covered_to = v.start;
        std::vector<image::GuardRange> zero;
        // Marks are set only once the VMA is known to inherit: a VMA that shares nothing
        // is stored whole, and its comparisons need no check at the end.
        std::vector<std::pair<PfnCache::Chunk*, uint64_t>> matches;
        for (size_t k = i; k < j; ++k) {
            const CandidateSpan& s = spans[k];
            if (s.addr > covered_to) add_range(zero, covered_to, (s.addr - covered_to) / kPage);
            covered_to = s.addr + s.nr_pages * kPage;
            const uint64_t first = s.addr / kPage;
            theirs.clear();
            for (uint64_t c = first / kChunk; c <= (first + s.nr_pages - 1) / kChunk; ++c)
                theirs.push_back(&parent.pfns->chunk(parent.pid, c));
            read_pagemap(mine.get(), s.addr, s.nr_pages, a, mine_path);
            for (uint64_t p = 0; p < s.nr_pages; ++p) {
                const uint64_t page = first + p;
                PfnCache::Chunk* c = theirs[page / kChunk - first / kChunk];
                const uint64_t b = c->entries[page % kChunk];
                bool same = (a[p] & kPmPresent) && (b & kPmPresent) && (a[p] & kPfnMask) != 0 &&
                            (a[p] & kPfnMask) == (b & kPfnMask);
                uint64_t addr = s.addr + p * kPage;
                if (same) {
                    ++shared;
                    matches.emplace_back(c, page % kChunk);
                } else if (!own.empty() && own.back().addr + own.back().nr_pages * kPage == addr) {
                    ++own.back().nr_pages;
                } else {
                    own.push_back({addr, 1, vi});
                }
            }
        }
        if (shared == 0) {  // nothing to gain: restore it on its own
            out.insert(out.end(), spans.begin() + static_cast<ptrdiff_t>(i), spans.begin() + static_cast<ptrdiff_t>(j));
            i = j;
            continue;
        }
        for (const auto& [c, k] : matches) c->matched.set(k);
        if (v.end > covered_to) add_range(zero, covered_to, (v.end - covered_to) / kPage);
        v.inherit = 1;
        v.zero = std::move(zero);
        stats.pages_inherited += shared;
        out.insert(out.end(), own.begin(), own.end());
        i = j;
    }
    return out;
}

bool all_zero(const char* p) {
    static const char zero[kPage] = {};
    return std::memcmp(p, zero, kPage) == 0;
}

void splice_at(int pipe_rd, int data_fd, uint64_t offset, uint64_t bytes) {
    loff_t off = static_cast<loff_t>(offset);
    uint64_t left = bytes;
    while (left > 0) {
        ssize_t n = ::splice(pipe_rd, nullptr, data_fd, &off, left, SPLICE_F_MOVE);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_errno("cannot splice pages into the image");
        }
        if (n == 0) fail("page pipe ended early ({} bytes missing)", left);
        left -= static_cast<uint64_t>(n);
    }
}

// Drains a batch's pipes into data.img, pipe k at offset + k * pipe_bytes. Copying into the
// page cache is the bottleneck of a dump, so the pipes are drained on two threads at once.
void drain_pipes(Parasite& parasite, image::ImageWriter& out, uint64_t bytes, uint64_t pipe_bytes) {
    std::vector<std::pair<int, uint64_t>> work;  // pipe fd, bytes
    for (uint64_t left = bytes, k = 0; left > 0; ++k) {
        uint64_t n = std::min(left, pipe_bytes);
        work.emplace_back(parasite.pipe_read(k), n);
        left -= n;
    }
    const uint64_t base = out.data_offset();
    std::exception_ptr helper_error;
    auto run = [&](size_t first, size_t step) {
        for (size_t k = first; k < work.size(); k += step)
            splice_at(work[k].first, out.data_fd(), base + k * pipe_bytes, work[k].second);
    };
    if (work.size() > 1) {
        std::thread helper([&] {
            try {
                run(1, 2);
            } catch (...) {
                helper_error = std::current_exception();
            }
        });
        try {
            run(0, 2);
        } catch (...) {
            helper.join();
            throw;
        }
        helper.join();
        if (helper_error) std::rethrow_exception(helper_error);
    } else {
        run(0, 1);
    }
    out.data_appended(bytes);
}

class RunBuilder {
  public:
    RunBuilder(pid_t pid, std::vector<Vma>& vmas) : pid_(pid), vmas_(vmas) {}
    // A run never crosses into the next VMA (even an adjacent one): restore may fill one VMA
    // elsewhere than the next (premapped, inherited by children).
    void add_page(size_t vma, uint64_t addr, uint64_t data_off) {
        ++vmas_[vma].stored_pages;
        if (!runs_.empty() && last_vma_ == vma) {
            auto& r = runs_.back();
            if (r.addr + r.nr_pages * kPage == addr && r.data_offset + r.nr_pages * kPage == data_off) {
                ++r.nr_pages;
                return;
            }
        }
        image::PageRun r;
        r.pid = pid_;
        r.addr = addr;
        r.nr_pages = 1;
        r.data_offset = data_off;
        runs_.push_back(r);
        last_vma_ = vma;
    }
    std::vector<image::PageRun> take() { return std::move(runs_); }

  private:
    pid_t pid_;
    std::vector<Vma>& vmas_;
    std::vector<image::PageRun> runs_;
    size_t last_vma_ = SIZE_MAX;
};

}  // namespace

std::vector<Vma> collect_vmas(pid_t pid) {
    auto maps = proc::parse_maps(read_file(fmt::format("/proc/{}/maps", pid)));
    auto vmflags = proc::parse_smaps_vmflags(frozen_smaps(pid));
    std::vector<Vma> out;
    out.reserve(maps.size());
    for (const auto& m : maps) {
        out.push_back(classify(pid, m, vmflags[m.start]));
        apply_vmflags(out.back(), vmflags[m.start]);
    }
    identify_mapped_files(pid, out);
    for (auto& v : out) {
        if (v.kind != VmaKind::Anon || !(v.flags & MAP_SHARED)) continue;
        // The size of the shared memory object (it may be mapped only in part).
        struct stat st;
        std::string link = fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, v.start, v.end);
        if (::stat(link.c_str(), &st) != 0) fail_errno("process {}: cannot stat shared memory {}", pid, link);
        v.file.dev = st.st_dev;
        v.file.ino = st.st_ino;
        v.file.size = std::max<uint64_t>(static_cast<uint64_t>(st.st_size), v.pgoff + (v.end - v.start));
    }
    return out;
}

void save_shared_memory(std::vector<std::vector<Vma>*>& tree, image::ImageWriter& out) {
    std::map<std::pair<uint64_t, uint64_t>, int32_t> stored;  // object -> the pid whose VMA holds it
    for (auto* vmas : tree) {
        for (auto& v : *vmas) {
            if (v.kind != VmaKind::Anon || !(v.flags & MAP_SHARED)) continue;
            auto key = std::make_pair(v.file.dev, v.file.ino);
            if (auto it = stored.find(key); it != stored.end()) {
                v.content_pid = it->second;
                continue;
            }
            std::string link = fmt::format("/proc/{}/map_files/{:x}-{:x}", v.pid, v.start, v.end);
            UniqueFd f(::open(link.c_str(), O_RDONLY | O_CLOEXEC));
            if (!f) fail_errno("process {}: cannot open its shared memory at {:#x}", v.pid, v.start);
            struct stat st;
            if (::fstat(f.get(), &st) != 0) fail_errno("process {}: cannot stat its shared memory at {:#x}", v.pid, v.start);
            SavedContent c = save_content(f.get(), static_cast<uint64_t>(st.st_size),
                                          fmt::format("shared memory at {:#x} of process {}", v.start, v.pid), out);
            v.data_offset = c.data_offset;
            v.checksum = c.checksum;
            v.extents = std::move(c.extents);
            v.stored_pages = image::stored_bytes(v.extents) / kPage;
            stored.emplace(key, v.pid);
        }
    }
}

PagePlan plan_pages(pid_t pid, std::vector<Vma>& vmas, const ParentMemory* parent, MemoryStats& stats) {
    PagePlan plan;
    plan.spans = candidate_spans(pid, vmas);
    if (parent) plan.spans = take_inherited(pid, vmas, plan.spans, *parent, stats);
    for (const auto& s : plan.spans) {
        plan.pages += s.nr_pages;
        if (vmas[s.vma].prot & PROT_READ) plan.readable_pages += s.nr_pages;
    }
    return plan;
}

std::vector<image::PageRun> dump_memory(pid_t pid, Parasite& parasite, std::vector<Vma>& vmas, PagePlan plan,
                                        image::ImageWriter& out, MemoryStats& stats,
                                        const std::function<void()>& halfway) {
    std::vector<CandidateSpan>& spans = plan.spans;
    const uint64_t total = plan.pages;
    stats.pages_candidate = total;
    RunBuilder runs(pid, vmas);

    // Unreadable VMAs (PROT_NONE, exec-only) would fault in the parasite: read them through
    // /proc/PID/mem, which may read what the process itself cannot.
    std::string mem_path = fmt::format("/proc/{}/mem", pid);
    UniqueFd mem;
    std::vector<char> page(kPage);

    auto& dp = parasite.args().pages;
    const uint64_t pipe_pages = parasite.pipe_capacity() / kPage;
    const uint64_t batch_pages =
        std::min<uint64_t>(parasite::kMaxBatchPages, pipe_pages * parasite.nr_pipes());
    uint64_t done = 0;
    double parasite_s = 0, splice_s = 0;
    bool half_reported = false;
    size_t i = 0;
    while (i < spans.size()) {
        interrupt::check();
        if (!half_reported && done * 2 >= total && total > 0) {
            half_reported = true;
            halfway();
        }
        if (!(vmas[spans[i].vma].prot & PROT_READ)) {
            if (!mem) {
                mem.reset(::open(mem_path.c_str(), O_RDONLY | O_CLOEXEC));
                if (!mem) fail_errno("cannot open {}", mem_path);
            }
            const CandidateSpan& s = spans[i];
            for (uint64_t p = 0; p < s.nr_pages; ++p) {
                uint64_t a = s.addr + p * kPage;
                pread_exact(mem.get(), page.data(), kPage, a, mem_path);
                if (all_zero(page.data())) {
                    ++stats.pages_zero;
                    if (vmas[s.vma].inherit) add_range(vmas[s.vma].zero, a, 1);
                    continue;
                }
                runs.add_page(s.vma, a, out.append_data(page.data(), kPage));
                ++stats.pages_stored;
            }
            done += s.nr_pages;
            ++i;
            continue;
        }
        // Fill one batch with readable spans (splitting a span that does not fit).
        if (batch_pages == 0) fail("internal error: the parasite of process {} has no page pipes", pid);
        dp.nr_spans = 0;
        dp.nr_pipes = static_cast<uint32_t>(parasite.nr_pipes());
        dp.pipe_pages = static_cast<uint32_t>(pipe_pages);
        for (size_t k = 0; k < parasite.nr_pipes(); ++k) dp.pipe_fds[k] = parasite.pipe_remote_write(k);
        uint64_t in_batch = 0;
        std::vector<size_t> span_vma;
        while (i < spans.size() && dp.nr_spans < parasite::kMaxSpans && in_batch < batch_pages &&
               (vmas[spans[i].vma].prot & PROT_READ)) {
            CandidateSpan& s = spans[i];
            uint64_t take = std::min(s.nr_pages, batch_pages - in_batch);
            dp.spans[dp.nr_spans++] = {s.addr, take};
            span_vma.push_back(s.vma);
            in_batch += take;
            if (take == s.nr_pages) {
                ++i;
            } else {
                s.addr += take * kPage;
                s.nr_pages -= take;
            }
        }
        // Test: a page the parasite cannot read (a fault must leave the target unharmed).
        if (fault::fires("parasite-fault")) dp.spans[0] = {0x1000, 1};
        auto t0 = std::chrono::steady_clock::now();
        long r = parasite.run(parasite::kCmdDumpPages);
        auto t1 = std::chrono::steady_clock::now();
        parasite_s += std::chrono::duration<double>(t1 - t0).count();
        if (r < 0) fail("parasite could not dump pages of process {}: {}", pid, errno_text(static_cast<int>(-r)));
        uint64_t data_start = out.data_offset();
        drain_pipes(parasite, out, dp.bytes_spliced, pipe_pages * kPage);
        splice_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
        uint64_t idx = 0, off = data_start;
        for (uint32_t k = 0; k < dp.nr_spans; ++k) {
            for (uint64_t p = 0; p < dp.spans[k].nr_pages; ++p, ++idx) {
                if (dp.nonzero_bitmap[idx / 64] & (1ull << (idx % 64))) {
                    runs.add_page(span_vma[k], dp.spans[k].addr + p * kPage, off);
                    off += kPage;
                    ++stats.pages_stored;
                } else {
                    ++stats.pages_zero;
                    if (vmas[span_vma[k]].inherit) add_range(vmas[span_vma[k]].zero, dp.spans[k].addr + p * kPage, 1);
                }
            }
        }
        if (off - data_start != dp.bytes_spliced)
            fail("parasite of process {} spliced {} bytes, bitmap says {}", pid,
                 dp.bytes_spliced, off - data_start);
        done += in_batch;
    }
    if (!half_reported) halfway();
    log::debug("memory of {}: {} candidate pages, {} stored, {} zero; {:.3f} s in the parasite, "
               "{:.3f} s splicing", pid, total, stats.pages_stored, stats.pages_zero, parasite_s, splice_s);
    return runs.take();
}

}  // namespace ckpt::tracer
