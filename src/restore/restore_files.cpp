#include "restore/restore_files.h"

#include "files/pty.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <vector>

#include "common/error.h"
#include "common/fd.h"
#include "common/fs.h"
#include "files/file_locks.h"
#include "files/pty.h"
#include "restore/shared_pool.h"

namespace ckpt::restore {

namespace {

constexpr uint32_t kNotReopenable = O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY;
constexpr std::string_view kDeletedSuffix = " (deleted)";

void place(int fd, int target, const image::Fd& rec) {
    if (fd != target) {
        if (::dup2(fd, target) < 0) fail_errno("cannot place fd {} ({})", target, rec.path);
        ::close(fd);
    }
    if (::fcntl(target, F_SETFD, rec.fd_flags) != 0) fail_errno("cannot set flags of fd {}", target);
}

}  // namespace

UnlinkedFiles::UnlinkedFiles(const image::Image& img, int pid, const FilesOptions& opts)
    : img_(img), pid_(pid), opts_(opts),
      floor_(pid == kAllProcesses ? pool_floor(img) : std::max(max_image_fd(img, pid) + 1, 3)) {}

int UnlinkedFiles::open_fd(const image::Fd& rec) {
    if (!ready_.count(rec.file_id)) recreate(rec.file.dev, rec.file.ino);
    auto it = ready_.find(rec.file_id);
    if (it == ready_.end()) fail("unlinked file {} of fd {} was not recreated", rec.path, rec.fd);
    return it->second.release();
}

int UnlinkedFiles::open_mapping(const image::Vma& v) {
    std::string key = mapping_key(v);
    if (!mappings_.count(key)) recreate(v.file.dev, v.file.ino);
    auto it = mappings_.find(key);
    if (it == mappings_.end()) fail("deleted file {} mapped at {:#x} was not recreated", v.path, v.start);
    int fd = ::fcntl(it->second.get(), F_DUPFD_CLOEXEC, floor_);
    if (fd < 0) fail_errno("cannot duplicate the recreated file {}", v.path);
    return fd;
}

std::vector<int> UnlinkedFiles::held_fds() const {
    std::vector<int> out;
    for (const auto& [n, fd] : ready_) out.push_back(fd.get());
    for (const auto& [k, fd] : mappings_) out.push_back(fd.get());
    return out;
}

void UnlinkedFiles::close_all() {
    ready_.clear();
    mappings_.clear();
}

std::string UnlinkedFiles::mapping_key(const image::Vma& v) {
    return fmt::format("{}:{}:{}", v.file.dev, v.file.ino, v.path);
}

void UnlinkedFiles::recreate(uint64_t dev, uint64_t ino) {
    std::vector<const image::Fd*> fds;
    std::vector<const image::Vma*> vmas;
    for (const auto& r : img_.fds)
        if ((pid_ == kAllProcesses || r.pid == pid_) && r.kind == image::FdKind::Unlinked && r.dup_of < 0 &&
            r.file.dev == dev &&
            r.file.ino == ino)
            fds.push_back(&r);
    for (const auto& v : img_.vmas)
        if ((pid_ == kAllProcesses || v.pid == pid_) && v.unlinked && v.file.dev == dev && v.file.ino == ino)
            vmas.push_back(&v);
    auto strip = [](std::string p) {
        if (p.ends_with(kDeletedSuffix)) p.resize(p.size() - kDeletedSuffix.size());
        return p;
    };
    // The content: from an fd's record if there is one, else from a mapping's.
    struct {
        std::string path;
        uint64_t size, data_offset;
        const std::vector<image::FileExtent>* extents;
        const image::FileStat* file;
    } src;
    if (!fds.empty())
        src = {fds.front()->path, fds.front()->size, fds.front()->data_offset, &fds.front()->extents,
               &fds.front()->file};
    else if (!vmas.empty())
        src = {strip(vmas.front()->path), vmas.front()->file.size, vmas.front()->data_offset,
               &vmas.front()->extents, &vmas.front()->file};
    else
        fail("no record holds the content of deleted file (device {}, inode {})", dev, ino);

    std::vector<std::string> names;  // the names made here, removed at the end
    std::vector<std::string> dirs;   // directories made here for them, removed after them
    UniqueFd tmp(::open(src.path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!tmp && errno == ENOENT) {
        // Its directories were removed too (dir1/dir2/file, all deleted): make them for the
        // moment the name is needed, so that /proc shows the path the process had.
        dirs = make_missing_dirs(src.path);
        tmp.reset(::open(src.path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    }
    auto remove_names = [&] {
        for (const auto& n : names) ::unlink(n.c_str());
        for (auto d = dirs.rbegin(); d != dirs.rend(); ++d) ::rmdir(d->c_str());
    };
    if (tmp) {
        names.push_back(src.path);
    } else {
        // The name is taken or its directory is gone: a nameless file, in the same directory
        // if possible. Only the name /proc shows differs.
        size_t slash = src.path.rfind('/');
        std::string dir = slash == 0 || slash == std::string::npos ? std::string("/") : src.path.substr(0, slash);
        for (const std::string& d : {dir, std::string("/tmp"), std::string("/dev/shm")}) {
            tmp.reset(::open(d.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
            if (tmp) break;
        }
        if (!tmp) fail_errno("cannot recreate deleted file {} (not even as an O_TMPFILE in {} or /tmp)", src.path, dir);
    }
    // Opens the file through `name` when that name could be made, so that /proc shows the
    // name the process had; returns the fd above every number the image uses.
    auto open_as = [&](const std::string& name, int flags) {
        bool named = std::find(names.begin(), names.end(), name) != names.end();
        if (!named && !names.empty() && ::link(names.front().c_str(), name.c_str()) == 0) {
            names.push_back(name);
            named = true;
        }
        std::string via = named ? name : fmt::format("/proc/self/fd/{}", tmp.get());
        int fd = ::open(via.c_str(), flags | O_CLOEXEC);
        if (fd < 0) fail_errno("cannot reopen deleted file {}", name);
        int lifted = ::fcntl(fd, F_DUPFD_CLOEXEC, floor_);
        ::close(fd);
        if (lifted < 0) fail_errno("cannot move the recreated file {} out of the way", name);
        return lifted;
    };
    try {
        fill(tmp.get(), src.path, src.size, src.data_offset, *src.extents, *src.file);
        for (const image::Fd* r : fds)
            if (!ready_.count(r->file_id))  // one open file description, however many hold it
                ready_[r->file_id].reset(open_as(r->path, static_cast<int>(r->open_flags & ~kNotReopenable)));
        for (const image::Vma* v : vmas)
            if (!mappings_.count(mapping_key(*v))) mappings_[mapping_key(*v)].reset(open_as(strip(v->path), O_RDWR));
    } catch (...) {
        remove_names();
        throw;
    }
    remove_names();
    // Times last: writing the content moved them.
    const image::FileStat& f = *src.file;
    timespec times[2] = {{f.atime_ns / 1000000000, f.atime_ns % 1000000000},
                         {f.mtime_ns / 1000000000, f.mtime_ns % 1000000000}};
    if (::futimens(tmp.get(), times) != 0) fail_errno("cannot set the times of deleted file {}", src.path);
}

std::vector<std::string> UnlinkedFiles::make_missing_dirs(const std::string& path) {
    std::vector<std::string> made;
    std::vector<std::string> missing;
    for (size_t slash = path.rfind('/'); slash != std::string::npos && slash > 0; slash = path.rfind('/', slash - 1)) {
        std::string dir = path.substr(0, slash);
        if (::access(dir.c_str(), F_OK) == 0) break;
        missing.push_back(dir);
    }
    for (auto d = missing.rbegin(); d != missing.rend(); ++d) {
        if (::mkdir(d->c_str(), 0700) != 0) break;  // the O_TMPFILE fallback takes over
        made.push_back(*d);
    }
    return made;
}

void UnlinkedFiles::fill(int fd, const std::string& path, uint64_t size, uint64_t data_offset,
                         const std::vector<image::FileExtent>& extents, const image::FileStat& file) {
    // Holes come back as holes: the size is set, then only the saved extents are written.
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0)
        fail_errno("cannot size deleted file {} to {} bytes", path, size);
    write_extents(fd, opts_.data_fd, data_offset, extents, fmt::format("deleted file {}", path));
    // Owner before mode: chown clears the set-id bits.
    if (::fchown(fd, file.uid, file.gid) != 0)
        fail_errno("cannot give deleted file {} its owner {}:{}", path, file.uid, file.gid);
    const uint32_t perm = file.mode & 07777;
    if (::fchmod(fd, perm) != 0) fail_errno("cannot set mode {:o} of deleted file {}", perm, path);
}

void write_extents(int fd, int data_fd, uint64_t data_offset, const std::vector<image::FileExtent>& extents,
                   const std::string& what) {
    std::vector<char> buf(1 << 20);
    uint64_t src = data_offset;
    for (const auto& e : extents) {
        for (uint64_t done = 0; done < e.length;) {
            size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), e.length - done));
            pread_exact(data_fd, buf.data(), n, src, "data.img");
            if (::pwrite(fd, buf.data(), n, static_cast<off_t>(e.offset + done)) != static_cast<ssize_t>(n))
                fail_errno("cannot write the content of {}", what);
            done += n;
            src += n;
        }
    }
}

int reopen_flags(uint32_t open_flags) { return static_cast<int>(open_flags & ~kNotReopenable); }

int max_image_fd(const image::Image& img, int pid) {
    int m = -1;
    for (const auto& f : img.fds)
        if (f.pid == pid && f.fd > m) m = f.fd;
    return m;
}

int open_description(const image::Fd& rec, const FilesOptions& opts) {
    int flags = static_cast<int>(rec.open_flags & ~kNotReopenable);
    int fd = -1;
    switch (rec.kind) {
        case image::FdKind::Regular:
        case image::FdKind::Directory:
        case image::FdKind::CharDev:
            fd = ::open(rec.path.c_str(), flags);
            if (fd < 0) fail_errno("cannot reopen fd {}: {}", rec.fd, rec.path);
            break;
        case image::FdKind::Tty:
            if (opts.shell_job) {
                fd = ::fcntl(opts.shell_tty, F_DUPFD_CLOEXEC, 0);
                if (fd < 0) fail_errno("cannot duplicate the terminal for fd {}", rec.fd);
            } else {
                fd = ::open(rec.path.c_str(), flags | O_NOCTTY);
                if (fd < 0)
                    fail_errno("cannot reopen terminal {} for fd {} (use --shell-job to give the "
                               "process this terminal)", rec.path, rec.fd);
            }
            break;
        case image::FdKind::EventFd:
        case image::FdKind::Epoll:
        case image::FdKind::SignalFd:
        case image::FdKind::TimerFd:
        case image::FdKind::Inotify:
            if (!opts.events) fail("process {} fd {} ({}): no event descriptor state given", rec.pid, rec.fd, rec.path);
            return opts.events->open(rec);
        case image::FdKind::Unlinked:
        case image::FdKind::Pipe:
        case image::FdKind::Fifo:
        case image::FdKind::Memfd:
        case image::FdKind::UnixSocket:
        case image::FdKind::InetSocket:
        case image::FdKind::PtyMaster:
        case image::FdKind::PtySlave:
            fail("process {} fd {} ({}): not reopened by path", rec.pid, rec.fd, rec.path);
    }
    if (rec.kind == image::FdKind::Regular || rec.kind == image::FdKind::Directory) {
        if (::lseek(fd, static_cast<off_t>(rec.pos), SEEK_SET) < 0) {
            int e = errno;
            ::close(fd);
            errno = e;
            fail_errno("cannot seek fd {} ({}) to {}", rec.fd, rec.path, rec.pos);
        }
    }
    return fd;
}

void restore_fd_table(const image::Image& img, int pid, const FilesOptions& opts, const SharedPool& pool) {
    for (const auto& rec : img.fds) {
        if (rec.pid != pid) continue;
        if (rec.dup_of >= 0) {
            if (::dup2(rec.dup_of, rec.fd) < 0) fail_errno("cannot duplicate fd {} as {}", rec.dup_of, rec.fd);
            if (::fcntl(rec.fd, F_SETFD, rec.fd_flags) != 0) fail_errno("cannot set flags of fd {}", rec.fd);
            continue;
        }
        int fd;
        if (int shared = pool.fd_for(rec.file_id); shared >= 0) {
            // Opened once by ckpt for every process that holds it: one description, one offset.
            fd = ::fcntl(shared, F_DUPFD_CLOEXEC, 0);
            if (fd < 0) fail_errno("cannot take fd {} ({}) from the shared descriptions", rec.fd, rec.path);
        } else if (rec.kind == image::FdKind::PtySlave) {
            // The pair is the tree's own (the shared pool made it again), whatever --shell-job says.
            fd = files::open_pty_slave(rec, pool.fd_for(files::pty_of_slave(img, rec).file_id));
        } else if (rec.kind == image::FdKind::Unlinked || rec.kind == image::FdKind::Memfd) {
            fail("process {} fd {}: {} was not recreated", pid, rec.fd, rec.path);
        } else {
            fd = open_description(rec, opts);
        }
        place(fd, rec.fd, rec);
    }
    if (opts.events) opts.events->register_epoll_targets(pid);
    // POSIX locks come later, in the restorer stub: closing any descriptor of a file drops them.
    files::take_description_locks(img, pid);
}

}  // namespace ckpt::restore
