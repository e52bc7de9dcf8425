#include "restore/restore_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <vector>

#include "common/error.h"
#include "common/fd.h"
#include "common/fs.h"

namespace ckpt::restore {

namespace {

constexpr uint32_t kNotReopenable = O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY;

void place(int fd, int target, const image::Fd& rec) {
    if (fd != target) {
        if (::dup2(fd, target) < 0) fail_errno("cannot place fd {} ({})", target, rec.path);
        ::close(fd);
    }
    if (::fcntl(target, F_SETFD, rec.fd_flags) != 0) fail_errno("cannot set flags of fd {}", target);
}

// Files deleted while open, recreated once per inode: every fd on one of them (and only
// those) shares the new inode. Each is recreated under its original names while they are
// free, so that /proc shows the same "NAME (deleted)" for every fd, and the names are
// removed again before anything else happens.
class UnlinkedFiles {
  public:
    UnlinkedFiles(const image::Image& img, int pid, const FilesOptions& opts)
        : img_(img), pid_(pid), opts_(opts), floor_(std::max(max_image_fd(img, pid) + 1, 3)) {}

    // An fd on the recreated file, opened with the record's flags.
    int open(const image::Fd& rec) {
        if (!ready_.count(rec.fd)) recreate(rec);
        return ready_.at(rec.fd).release();
    }

  private:
    void recreate(const image::Fd& first) {
        std::vector<const image::Fd*> group;
        for (const auto& r : img_.fds)
            if (r.pid == pid_ && r.kind == image::FdKind::Unlinked && r.dup_of < 0 && r.dev == first.dev &&
                r.ino == first.ino)
                group.push_back(&r);

        std::vector<std::string> names;  // the names made here, removed at the end
        UniqueFd tmp(::open(first.path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
        if (tmp) {
            names.push_back(first.path);
        } else {
            size_t slash = first.path.rfind('/');
            std::string dir = slash == 0 || slash == std::string::npos ? std::string("/")
                                                                      : first.path.substr(0, slash);
            tmp.reset(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
            if (!tmp) fail_errno("cannot recreate unlinked file {}", first.path);
        }
        try {
            fill(tmp.get(), first);
            for (const image::Fd* r : group) {
                bool named = std::find(names.begin(), names.end(), r->path) != names.end();
                if (!named && !names.empty() && ::link(names.front().c_str(), r->path.c_str()) == 0) {
                    names.push_back(r->path);
                    named = true;
                }
                std::string via = named ? r->path : fmt::format("/proc/self/fd/{}", tmp.get());
                int fd = ::open(via.c_str(), static_cast<int>(r->open_flags & ~kNotReopenable) | O_CLOEXEC);
                if (fd < 0) fail_errno("cannot reopen unlinked file {} for fd {}", r->path, r->fd);
                // Above every number the image uses, until placed.
                int lifted = ::fcntl(fd, F_DUPFD_CLOEXEC, floor_);
                ::close(fd);
                if (lifted < 0) fail_errno("cannot move the recreated file {} out of the way", r->path);
                ready_[r->fd].reset(lifted);
            }
        } catch (...) {
            for (const auto& n : names) ::unlink(n.c_str());
            throw;
        }
        for (const auto& n : names) ::unlink(n.c_str());
        // Times last: writing the content moved them.
        timespec times[2] = {{first.file.atime_ns / 1000000000, first.file.atime_ns % 1000000000},
                             {first.file.mtime_ns / 1000000000, first.file.mtime_ns % 1000000000}};
        if (::futimens(tmp.get(), times) != 0) fail_errno("cannot set the times of unlinked file {}", first.path);
    }

    // Content with its holes (the size set, then only the saved extents written), owner and mode.
    void fill(int fd, const image::Fd& rec) {
        if (::ftruncate(fd, static_cast<off_t>(rec.size)) != 0)
            fail_errno("cannot size unlinked file {} to {} bytes", rec.path, rec.size);
        std::vector<char> buf(1 << 20);
        uint64_t src = rec.data_offset;
        for (const auto& e : rec.extents) {
            for (uint64_t done = 0; done < e.length;) {
                size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), e.length - done));
                pread_exact(opts_.data_fd, buf.data(), n, src, "data.img");
                if (::pwrite(fd, buf.data(), n, static_cast<off_t>(e.offset + done)) != static_cast<ssize_t>(n))
                    fail_errno("cannot write content of unlinked file {}", rec.path);
                done += n;
                src += n;
            }
        }
        // Owner before mode: chown clears the set-id bits.
        if (::fchown(fd, rec.file.uid, rec.file.gid) != 0)
            fail_errno("cannot give unlinked file {} its owner {}:{}", rec.path, rec.file.uid, rec.file.gid);
        const uint32_t perm = rec.file.mode & 07777;
        if (::fchmod(fd, perm) != 0) fail_errno("cannot set mode {:o} of unlinked file {}", perm, rec.path);
    }

    const image::Image& img_;
    int pid_;
    const FilesOptions& opts_;
    int floor_;
    std::map<int, UniqueFd> ready_;  // opened for the fd number of the image, not yet placed
};

}  // namespace

int max_image_fd(const image::Image& img, int pid) {
    int m = -1;
    for (const auto& f : img.fds)
        if (f.pid == pid && f.fd > m) m = f.fd;
    return m;
}

void restore_fd_table(const image::Image& img, int pid, const FilesOptions& opts) {
    UnlinkedFiles unlinked(img, pid, opts);
    for (const auto& rec : img.fds) {
        if (rec.pid != pid) continue;
        if (rec.dup_of >= 0) {
            if (::dup2(rec.dup_of, rec.fd) < 0) fail_errno("cannot duplicate fd {} as {}", rec.dup_of, rec.fd);
            if (::fcntl(rec.fd, F_SETFD, rec.fd_flags) != 0) fail_errno("cannot set flags of fd {}", rec.fd);
            continue;
        }
        int flags = static_cast<int>(rec.open_flags & ~kNotReopenable);
        int fd = -1;
        switch (rec.kind) {
            case image::FdKind::Regular:
            case image::FdKind::Directory:
            case image::FdKind::CharDev:
                fd = ::open(rec.path.c_str(), flags);
                if (fd < 0) fail_errno("cannot reopen fd {}: {}", rec.fd, rec.path);
                break;
            case image::FdKind::Unlinked: fd = unlinked.open(rec); break;
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
        }
        place(fd, rec.fd, rec);
        if (rec.kind == image::FdKind::Regular || rec.kind == image::FdKind::Unlinked ||
            rec.kind == image::FdKind::Directory) {
            if (::lseek(rec.fd, static_cast<off_t>(rec.pos), SEEK_SET) < 0)
                fail_errno("cannot seek fd {} ({}) to {}", rec.fd, rec.path, rec.pos);
        }
    }
}

}  // namespace ckpt::restore
