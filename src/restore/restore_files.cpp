#include "restore/restore_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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

// The file was deleted while open: make a file with the saved content, open it as the
// process had it, and delete it again. Its original name is used if it is free.
int recreate_unlinked(const image::Fd& rec, const FilesOptions& opts) {
    std::string path = rec.path;
    UniqueFd tmp(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, rec.mode & 07777));
    if (!tmp) {
        size_t slash = path.rfind('/');
        std::string dir = slash == 0 || slash == std::string::npos ? std::string("/")
                                                                  : path.substr(0, slash);
        tmp.reset(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, rec.mode & 07777));
        if (!tmp) fail_errno("cannot recreate unlinked file {}", rec.path);
        path.clear();
    }
    std::vector<char> buf(1 << 20);
    for (uint64_t off = 0; off < rec.size;) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), rec.size - off));
        pread_exact(opts.data_fd, buf.data(), n, rec.data_offset + off, "data.img");
        if (::pwrite(tmp.get(), buf.data(), n, static_cast<off_t>(off)) != static_cast<ssize_t>(n))
            fail_errno("cannot write content of unlinked file {}", rec.path);
        off += n;
    }
    int fd;
    if (!path.empty()) {
        fd = ::open(path.c_str(), static_cast<int>(rec.open_flags & ~kNotReopenable));
        int saved = errno;
        ::unlink(path.c_str());
        errno = saved;
    } else {
        fd = ::open(fmt::format("/proc/self/fd/{}", tmp.get()).c_str(),
                    static_cast<int>(rec.open_flags & ~kNotReopenable));
    }
    if (fd < 0) fail_errno("cannot reopen unlinked file {}", rec.path);
    return fd;
}

}  // namespace

int max_image_fd(const image::Image& img, int pid) {
    int m = -1;
    for (const auto& f : img.fds)
        if (f.pid == pid && f.fd > m) m = f.fd;
    return m;
}

void restore_fd_table(const image::Image& img, int pid, const FilesOptions& opts) {
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
            case image::FdKind::Unlinked: fd = recreate_unlinked(rec, opts); break;
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
