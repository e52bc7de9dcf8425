#include "tracer/files_dump.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <xxhash.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "common/error.h"
#include "common/fd.h"
#include "common/fs.h"
#include "tracer/file_identity.h"
#include "tracer/proc_parse.h"

namespace ckpt::tracer {

namespace {

constexpr std::string_view kDeleted = " (deleted)";

bool is_tty_major(unsigned major) {
    // 4: tty/console, 5: /dev/tty,/dev/ptmx, 136-143: pty slaves
    return major == 4 || major == 5 || (major >= 136 && major <= 143);
}

std::vector<int> list_fds(pid_t pid) {
    std::string dir = fmt::format("/proc/{}/fd", pid);
    DIR* d = ::opendir(dir.c_str());
    if (!d) fail_errno("cannot list fds of process {}", pid);
    std::vector<int> fds;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        fds.push_back(std::atoi(e->d_name));
    }
    ::closedir(d);
    std::sort(fds.begin(), fds.end());
    return fds;
}

// Copies the data ranges of an unlinked file into data.img. Holes are skipped (SEEK_DATA /
// SEEK_HOLE) and recorded as the gaps between extents, so a sparse file stays small in the
// image and comes back sparse.
void save_unlinked_content(pid_t pid, image::Fd& rec, int f, image::ImageWriter& out) {
    rec.data_offset = out.data_offset();
    rec.extents.clear();
    XXH3_state_t* h = XXH3_createState();
    if (!h) fail("out of memory hashing unlinked file {}", rec.path);
    std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> guard(h, XXH3_freeState);
    XXH3_64bits_reset(h);
    std::vector<char> buf(1 << 20);
    uint64_t off = 0;
    while (off < rec.size) {
        off_t data = ::lseek(f, static_cast<off_t>(off), SEEK_DATA);
        if (data < 0) {
            if (errno == ENXIO) break;  // only a hole up to the end
            fail_errno("process {} fd {}: cannot find data in unlinked file {}", pid, rec.fd, rec.path);
        }
        off_t hole = ::lseek(f, data, SEEK_HOLE);
        if (hole < 0) fail_errno("process {} fd {}: cannot find holes in unlinked file {}", pid, rec.fd, rec.path);
        uint64_t from = static_cast<uint64_t>(data), to = std::min<uint64_t>(static_cast<uint64_t>(hole), rec.size);
        if (from >= to) break;
        image::FileExtent ext{from, 0};
        while (from + ext.length < to) {
            size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), to - from - ext.length));
            ssize_t n = ::pread(f, buf.data(), want, static_cast<off_t>(from + ext.length));
            if (n < 0) fail_errno("process {} fd {}: cannot read unlinked file {}", pid, rec.fd, rec.path);
            if (n == 0) break;  // shrank meanwhile: keep what is there
            out.append_data(buf.data(), static_cast<size_t>(n));
            XXH3_64bits_update(h, buf.data(), static_cast<size_t>(n));
            ext.length += static_cast<uint64_t>(n);
        }
        if (ext.length > 0) rec.extents.push_back(ext);
        if (from + ext.length < to) {  // shrank
            rec.size = from + ext.length;
            break;
        }
        off = to;
    }
    rec.checksum = XXH3_64bits_digest(h);
}

// A file whose name was removed while open: no links at all, or (when another hard link
// still exists) /proc shows "(deleted)" and the recorded name leads to no such inode. Its
// other names cannot be found without searching every file system, so it is saved by
// content like a file with no links.
bool is_unlinked(const std::string& path, const struct stat& st) {
    if (st.st_nlink == 0) return true;
    struct stat now;
    return ::stat(path.c_str(), &now) != 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino;
}

}  // namespace

std::vector<image::Fd> dump_files(pid_t pid, image::ImageWriter& out) {
    std::vector<image::Fd> result;
    for (int fd : list_fds(pid)) {
        // dup()ed descriptors share one open file (and its offset): record the link only.
        bool dup = false;
        for (const auto& earlier : result) {
            if (::syscall(SYS_kcmp, pid, pid, KCMP_FILE, earlier.fd, fd) == 0) {
                image::Fd rec = earlier;
                rec.fd = fd;
                rec.dup_of = earlier.dup_of >= 0 ? earlier.dup_of : earlier.fd;
                auto info = proc::parse_fdinfo(read_file(fmt::format("/proc/{}/fdinfo/{}", pid, fd)));
                rec.fd_flags = (info.flags & O_CLOEXEC) ? FD_CLOEXEC : 0;
                rec.size = 0;
                rec.checksum = 0;
                rec.data_offset = 0;
                rec.extents.clear();
                result.push_back(std::move(rec));
                dup = true;
                break;
            }
        }
        if (dup) continue;
        std::string link = fmt::format("/proc/{}/fd/{}", pid, fd);
        image::Fd rec;
        rec.pid = pid;
        rec.fd = fd;
        rec.path = read_link(link);
        auto info = proc::parse_fdinfo(read_file(fmt::format("/proc/{}/fdinfo/{}", pid, fd)));
        rec.pos = info.pos;
        rec.open_flags = info.flags & ~static_cast<uint32_t>(O_CLOEXEC);
        rec.fd_flags = (info.flags & O_CLOEXEC) ? FD_CLOEXEC : 0;
        struct stat st;
        if (::stat(link.c_str(), &st) != 0) fail_errno("process {} fd {}: cannot stat {}", pid, fd, rec.path);
        rec.mode = st.st_mode;
        rec.dev = st.st_dev;
        rec.ino = st.st_ino;
        rec.rdev = st.st_rdev;
        rec.size = static_cast<uint64_t>(st.st_size);

        auto unsupported = [&](const char* what) {
            fail("process {} fd {} ({}): {} not supported yet", pid, fd, rec.path, what);
        };
        if (rec.path.starts_with("anon_inode:")) {
            unsupported("this kind of descriptor is");
        } else if (S_ISREG(st.st_mode)) {
            if (rec.path.starts_with("/memfd:")) unsupported("memfd is");
            UniqueFd f(open_for_identity(link));
            if (!f) fail_errno("process {} fd {}: cannot open {} to record it", pid, fd, rec.path);
            rec.file = identify_file(f.get(), rec.path);
            if (is_unlinked(rec.path, st)) {
                rec.kind = image::FdKind::Unlinked;
                if (rec.path.ends_with(kDeleted)) rec.path.resize(rec.path.size() - kDeleted.size());
                // Another fd on the same inode (not a dup): one copy of the content.
                auto same = std::find_if(result.begin(), result.end(), [&](const image::Fd& e) {
                    return e.kind == image::FdKind::Unlinked && e.dup_of < 0 && e.dev == rec.dev &&
                           e.ino == rec.ino;
                });
                if (same != result.end()) {
                    rec.size = same->size;
                    rec.data_offset = same->data_offset;
                    rec.checksum = same->checksum;
                    rec.extents = same->extents;
                } else {
                    save_unlinked_content(pid, rec, f.get(), out);
                }
            } else {
                rec.kind = image::FdKind::Regular;
            }
        } else if (S_ISDIR(st.st_mode)) {
            rec.kind = image::FdKind::Directory;
        } else if (S_ISCHR(st.st_mode)) {
            rec.kind = is_tty_major(major(st.st_rdev)) ? image::FdKind::Tty : image::FdKind::CharDev;
            if (rec.path.ends_with(kDeleted)) unsupported("a deleted device node is");
        } else if (S_ISFIFO(st.st_mode)) {
            unsupported("a pipe or FIFO is");
        } else if (S_ISSOCK(st.st_mode)) {
            unsupported("a socket is");
        } else {
            unsupported("this file type is");
        }
        result.push_back(std::move(rec));
    }
    return result;
}

}  // namespace ckpt::tracer
