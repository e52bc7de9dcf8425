#include "restore/restore_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <utility>
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
// those) shares the new inode. The descriptors sit above the image's fd numbers until the
// table is complete.
class UnlinkedFiles {
  public:
    UnlinkedFiles(const FilesOptions& opts, int floor) : opts_(opts), floor_(floor) {}

    // An fd on the recreated file, opened with the record's flags.
    int open(const image::Fd& rec) {
        auto key = std::make_pair(rec.dev, rec.ino);
        auto it = files_.find(key);
        if (it == files_.end()) it = files_.emplace(key, recreate(rec)).first;
        int fd = ::open(fmt::format("/proc/self/fd/{}", it->second.get()).c_str(),
                        static_cast<int>(rec.open_flags & ~kNotReopenable));
        if (fd < 0) fail_errno("cannot reopen unlinked file {} for fd {}", rec.path, rec.fd);
        return fd;
    }

  private:
    // Makes the file with the saved content under its original name if that is free (so
    // /proc shows the same name, "(deleted)"), or as an O_TMPFILE in its directory, then
    // removes the name again.
    UniqueFd recreate(const image::Fd& rec) {
        const uint32_t perm = rec.file.mode & 07777;
        UniqueFd tmp(::open(rec.path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
        if (tmp) {
            ::unlink(rec.path.c_str());
        } else {
            size_t slash = rec.path.rfind('/');
            std::string dir = slash == 0 || slash == std::string::npos ? std::string("/")
                                                                      : rec.path.substr(0, slash);
            tmp.reset(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
            if (!tmp) fail_errno("cannot recreate unlinked file {}", rec.path);
        }
        int lifted = ::fcntl(tmp.get(), F_DUPFD_CLOEXEC, floor_);
        if (lifted < 0) fail_errno("cannot move the recreated file {} out of the way", rec.path);
        tmp.reset(lifted);

        // Holes come back as holes: set the size, then write only the saved extents.
        if (::ftruncate(tmp.get(), static_cast<off_t>(rec.size)) != 0)
            fail_errno("cannot size unlinked file {} to {} bytes", rec.path, rec.size);
        std::vector<char> buf(1 << 20);
        uint64_t src = rec.data_offset;
        for (const auto& e : rec.extents) {
            for (uint64_t done = 0; done < e.length;) {
                size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), e.length - done));
                pread_exact(opts_.data_fd, buf.data(), n, src, "data.img");
                if (::pwrite(tmp.get(), buf.data(), n, static_cast<off_t>(e.offset + done)) !=
                    static_cast<ssize_t>(n))
                    fail_errno("cannot write content of unlinked file {}", rec.path);
                done += n;
                src += n;
            }
        }
        // Owner before mode (chown clears set-id bits), times last (writing moves mtime).
        if (::fchown(tmp.get(), rec.file.uid, rec.file.gid) != 0)
            fail_errno("cannot give unlinked file {} its owner {}:{}", rec.path, rec.file.uid, rec.file.gid);
        if (::fchmod(tmp.get(), perm) != 0) fail_errno("cannot set mode {:o} of unlinked file {}", perm, rec.path);
        timespec times[2] = {{rec.file.atime_ns / 1000000000, rec.file.atime_ns % 1000000000},
                             {rec.file.mtime_ns / 1000000000, rec.file.mtime_ns % 1000000000}};
        if (::futimens(tmp.get(), times) != 0) fail_errno("cannot set the times of unlinked file {}", rec.path);
        return tmp;
    }

    const FilesOptions& opts_;
    int floor_;
    std::map<std::pair<uint64_t, uint64_t>, UniqueFd> files_;
};

}  // namespace

int max_image_fd(const image::Image& img, int pid) {
    int m = -1;
    for (const auto& f : img.fds)
        if (f.pid == pid && f.fd > m) m = f.fd;
    return m;
}

void restore_fd_table(const image::Image& img, int pid, const FilesOptions& opts) {
    UnlinkedFiles unlinked(opts, std::max(max_image_fd(img, pid) + 1, 3));
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
