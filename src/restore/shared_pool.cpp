#include "restore/shared_pool.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "common/error.h"
#include "common/fs.h"
#include "files/memfd.h"
#include "files/pipe.h"
#include "files/pty.h"
#include "files/inet_socket.h"
#include "files/unix_socket.h"

namespace ckpt::restore {

namespace {

// A MAP_SHARED anonymous object of `size` bytes, as a descriptor: made by mmap() and
// reopened through map_files, so every mapping of it is the same shmem object and shows
// as "/dev/zero (deleted)" as it did.
int make_shared_memory(uint64_t size, bool noreserve) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS | (noreserve ? MAP_NORESERVE : 0), -1, 0);
    if (p == MAP_FAILED) fail_errno("cannot make {} bytes of shared memory", size);
    auto start = reinterpret_cast<uint64_t>(p);
    int fd = ::open(fmt::format("/proc/self/map_files/{:x}-{:x}", start, start + size).c_str(), O_RDWR | O_CLOEXEC);
    int e = errno;
    ::munmap(p, size);
    errno = e;
    if (fd < 0) fail_errno("cannot open the shared memory object just made");
    return fd;
}

}  // namespace

int pool_floor(const image::Image& img) {
    int m = 2;
    for (const auto& f : img.fds) m = std::max(m, f.fd);
    return m + 1;
}

SharedPool::SharedPool(const image::Image& img, const FilesOptions& opts, int floor) : floor_(floor) {
    std::map<uint32_t, std::set<int32_t>> holders;
    for (const auto& f : img.fds) holders[f.file_id].insert(f.pid);
    for (auto& [id, fd] : files::make_pipes(img, opts.data_fd, opts.inherited)) files_[id].reset(lift(fd.release()));
    for (auto& [id, fd] : files::make_unix_sockets(img)) files_[id].reset(lift(fd.release()));
    for (auto& [id, fd] : files::make_inet_sockets(img)) files_[id].reset(lift(fd.release()));
    // Before any slave is opened by path: the pairs come back with their indices first.
    for (auto& [id, fd] : files::make_ptys(img)) files_[id].reset(lift(fd.release()));
    // Deleted files: recreated once for the whole tree, so that processes holding or mapping
    // one (a multiprocessing semaphore in /dev/shm) share it again.
    UnlinkedFiles unlinked(img, UnlinkedFiles::kAllProcesses, opts);
    for (const auto& f : img.fds) {
        if (f.kind != image::FdKind::Unlinked || f.dup_of >= 0 || files_.count(f.file_id)) continue;
        UniqueFd fd(lift(unlinked.open_fd(f)));
        if (::lseek(fd.get(), static_cast<off_t>(f.pos), SEEK_SET) < 0)
            fail_errno("cannot seek fd {} ({}) of process {} to {}", f.fd, f.path, f.pid, f.pos);
        files_[f.file_id] = std::move(fd);
    }
    for (const auto& v : img.vmas) {
        if (!v.unlinked) continue;
        std::string key = fmt::format("{}:{}:{}", v.file.dev, v.file.ino, v.path);
        if (!deleted_maps_.count(key)) deleted_maps_[key].reset(lift(unlinked.open_mapping(v)));
    }
    unlinked.close_all();
    for (auto& [key, fd] : files::make_memfds(img, opts.data_fd)) memfds_[key].reset(lift(fd.release()));
    for (const auto& f : img.fds) {
        if (f.kind != image::FdKind::Memfd || f.dup_of >= 0 || files_.count(f.file_id)) continue;
        auto obj = memfds_.find({f.dev, f.ino});
        if (obj == memfds_.end()) fail("process {} fd {}: the image has no memfd {}", f.pid, f.fd, f.path);
        UniqueFd fd(lift(files::open_memfd(obj->second.get(), reopen_flags(f.open_flags))));
        if (::lseek(fd.get(), static_cast<off_t>(f.pos), SEEK_SET) < 0)
            fail_errno("cannot seek fd {} ({}) of process {} to {}", f.fd, f.path, f.pid, f.pos);
        files_[f.file_id] = std::move(fd);
    }
    for (const auto& f : img.fds) {
        if (f.kind != image::FdKind::PtySlave || f.dup_of >= 0 || holders[f.file_id].size() < 2 || files_.count(f.file_id))
            continue;
        files_[f.file_id].reset(lift(files::open_pty_slave(f, fd_for(files::pty_of_slave(img, f).file_id))));
    }
    for (const auto& f : img.fds) {
        if (f.dup_of >= 0 || holders[f.file_id].size() < 2 || files_.count(f.file_id)) continue;
        files_[f.file_id].reset(lift(open_description(f, opts)));
    }
    std::map<std::pair<uint64_t, uint64_t>, std::pair<uint64_t, bool>> objects;  // size, noreserve
    for (const auto& v : img.vmas) {
        if (v.kind != image::VmaKind::Anon || !(v.flags & MAP_SHARED)) continue;
        auto& o = objects[{v.file.dev, v.file.ino}];
        o.first = std::max({o.first, v.file.size, v.pgoff + (v.end - v.start)});
        o.second = o.second || (v.flags & MAP_NORESERVE);
    }
    for (const auto& [key, o] : objects) {
        UniqueFd fd(lift(make_shared_memory(o.first, o.second)));
        for (const auto& v : img.vmas)
            if (v.kind == image::VmaKind::Anon && (v.flags & MAP_SHARED) && v.content_pid == 0 &&
                std::make_pair(v.file.dev, v.file.ino) == key)
                // Holes stay holes: never-touched pages cost nothing.
                write_extents(fd.get(), opts.data_fd, v.data_offset, v.extents,
                              fmt::format("the shared memory mapped at {:#x} by process {}", v.start, v.pid));
        memory_[key] = std::move(fd);
    }
}

int SharedPool::lift(int fd) const {
    int n = ::fcntl(fd, F_DUPFD_CLOEXEC, floor_);
    int e = errno;
    ::close(fd);
    errno = e;
    if (n < 0) fail_errno("cannot move a shared descriptor above {}", floor_);
    return n;
}

int SharedPool::fd_for(uint32_t file_id) const {
    auto it = files_.find(file_id);
    return it == files_.end() ? -1 : it->second.get();
}

int SharedPool::deleted_mapping_fd(const image::Vma& v) const {
    auto it = deleted_maps_.find(fmt::format("{}:{}:{}", v.file.dev, v.file.ino, v.path));
    return it == deleted_maps_.end() ? -1 : it->second.get();
}

int SharedPool::memfd_fd(const image::Vma& v) const {
    auto it = memfds_.find({v.file.dev, v.file.ino});
    return it == memfds_.end() ? -1 : it->second.get();
}

int SharedPool::memory_fd(const image::Vma& v) const {
    auto it = memory_.find({v.file.dev, v.file.ino});
    return it == memory_.end() ? -1 : it->second.get();
}

std::vector<int> SharedPool::fds() const {
    std::vector<int> out;
    for (const auto& [k, fd] : files_) out.push_back(fd.get());
    for (const auto& [k, fd] : memory_) out.push_back(fd.get());
    for (const auto& [k, fd] : deleted_maps_) out.push_back(fd.get());
    for (const auto& [k, fd] : memfds_) out.push_back(fd.get());
    return out;
}

void SharedPool::close_all() {
    files_.clear();
    memory_.clear();
    deleted_maps_.clear();
    memfds_.clear();
}

}  // namespace ckpt::restore
