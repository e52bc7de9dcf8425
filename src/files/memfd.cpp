#include "files/memfd.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <set>
#include <string>

#include "common/error.h"
#include "restore/restore_files.h"
#include "tracer/files_dump.h"

namespace ckpt::files {

namespace {

constexpr int64_t kHugetlbfsMagic = 0x958458f6;
constexpr std::string_view kPrefix = "/memfd:", kDeleted = " (deleted)";

std::string memfd_name(std::string_view path) {
    if (path.starts_with(kPrefix)) path.remove_prefix(kPrefix.size());
    if (path.ends_with(kDeleted)) path.remove_suffix(kDeleted.size());
    return std::string(path);
}

}  // namespace

std::vector<image::Memfd> dump_memfds(const std::vector<image::Fd>& fds,
                                      const std::vector<std::pair<pid_t, std::vector<image::Vma>*>>& tree_vmas,
                                      image::ImageWriter& out) {
    std::vector<image::Memfd> objects;
    std::set<std::pair<uint64_t, uint64_t>> seen;
    // Saves the object behind `link` unless it is saved already; returns its stat.
    auto save = [&](const std::string& link, const std::string& path, const std::string& who) {
        UniqueFd f(::open(link.c_str(), O_RDONLY | O_CLOEXEC));
        if (!f) fail_errno("{}: cannot open memfd {}", who, path);
        struct stat st;
        struct statfs sfs;
        if (::fstat(f.get(), &st) != 0 || ::fstatfs(f.get(), &sfs) != 0) fail_errno("{}: cannot stat memfd {}", who, path);
        if (static_cast<int64_t>(sfs.f_type) == kHugetlbfsMagic)
            fail("{}: memfd {} is backed by huge pages (MFD_HUGETLB): not supported yet", who, path);
        if (!seen.insert({st.st_dev, st.st_ino}).second) return st;
        int seals = ::fcntl(f.get(), F_GET_SEALS);
        if (seals < 0) fail_errno("{}: cannot read the seals of memfd {}", who, path);
        image::Memfd m;
        m.dev = st.st_dev;
        m.ino = st.st_ino;
        m.name = memfd_name(path);
        m.mode = st.st_mode & 07777;
        m.seals = static_cast<uint32_t>(seals);
        tracer::SavedContent c = tracer::save_content(f.get(), static_cast<uint64_t>(st.st_size),
                                                      fmt::format("memfd {} ({})", path, who), out, true);
        m.size = c.size;
        m.data_offset = c.data_offset;
        m.checksum = c.checksum;
        m.extents = std::move(c.extents);
        objects.push_back(std::move(m));
        return st;
    };
    for (const auto& f : fds)
        if (f.kind == image::FdKind::Memfd && f.dup_of < 0)
            save(fmt::format("/proc/{}/fd/{}", f.pid, f.fd), f.path, fmt::format("process {} fd {}", f.pid, f.fd));
    for (const auto& [pid, vmas] : tree_vmas) {
        for (auto& v : *vmas) {
            if (v.kind != image::VmaKind::Memfd) continue;
            std::string who = fmt::format("process {} mapping {:x}-{:x}", pid, v.start, v.end);
            struct stat st = save(fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, v.start, v.end), v.path, who);
            v.file.dev = st.st_dev;
            v.file.ino = st.st_ino;
            v.file.mode = st.st_mode;
            v.file.size = static_cast<uint64_t>(st.st_size);
            // Sealed against future writes, the memfd can no longer be mapped writable, which
            // restore would have to do (the seal is set before the mappings are made).
            bool may_write = (" " + v.vmflags + " ").find(" mw ") != std::string::npos;
            for (const auto& m : objects)
                if (m.dev == st.st_dev && m.ino == st.st_ino && (m.seals & F_SEAL_FUTURE_WRITE) &&
                    (v.flags & MAP_SHARED) && ((v.prot & PROT_WRITE) || may_write))
                    fail("{}: memfd {} is sealed with F_SEAL_FUTURE_WRITE and still mapped writable: not supported yet",
                         who, v.path);
        }
    }
    return objects;
}

std::map<std::pair<uint64_t, uint64_t>, UniqueFd> make_memfds(const image::Image& img, int data_fd) {
    std::map<std::pair<uint64_t, uint64_t>, UniqueFd> made;
    for (const auto& m : img.memfds) {
        std::string what = fmt::format("memfd {}", m.name);
        UniqueFd fd(::memfd_create(m.name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
        if (!fd) fail_errno("cannot create {}", what);
        if (::ftruncate(fd.get(), static_cast<off_t>(m.size)) != 0) fail_errno("cannot size {} to {} bytes", what, m.size);
        restore::write_extents(fd.get(), data_fd, m.data_offset, m.extents, what);
        // Mode before seals: F_SEAL_EXEC forbids changing it.
        if (::fchmod(fd.get(), m.mode) != 0) fail_errno("cannot set mode {:o} of {}", m.mode, what);
        if (m.seals && ::fcntl(fd.get(), F_ADD_SEALS, static_cast<int>(m.seals)) != 0)
            fail_errno("cannot seal {} with {:#x}", what, m.seals);
        made[{m.dev, m.ino}] = std::move(fd);
    }
    return made;
}

int open_memfd(int object, int flags) {
    int fd = ::open(fmt::format("/proc/self/fd/{}", object).c_str(), flags | O_CLOEXEC);
    if (fd < 0) fail_errno("cannot open a memfd again");
    return fd;
}

}  // namespace ckpt::files
