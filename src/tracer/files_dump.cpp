#include "tracer/files_dump.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <xxhash.h>

#include <algorithm>
#include <map>
#include <memory>
#include <vector>

#include "common/error.h"
#include "common/fd.h"
#include "common/fs.h"
#include "tracer/audit.h"
#include "tracer/file_identity.h"
#include "tracer/proc_parse.h"
#include "tracer/shared_files.h"

namespace ckpt::tracer {

namespace {

constexpr std::string_view kDeleted = " (deleted)";

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

}  // namespace

namespace {

bool all_zero(const char* p, size_t n) {
    for (size_t i = 0; i < n; ++i)
        if (p[i]) return false;
    return true;
}

// fdinfo without the fd's own flag (O_CLOEXEC in "flags:") and without what changes by
// itself between two reads (a timerfd's time left and expirations, an eventfd's counter,
// which the kernel may bump): what every fd of one open file description shows alike.
std::string description_state(const std::string& info) {
    std::string out;
    size_t pos = 0;
    while (pos < info.size()) {
        size_t end = info.find('\n', pos);
        if (end == std::string::npos) end = info.size();
        std::string_view line(info.data() + pos, end - pos);
        if (line.starts_with("it_value:") || line.starts_with("ticks:") || line.starts_with("eventfd-count:")) {
            pos = end + 1;
            continue;
        }
        if (line.starts_with("flags:")) {
            auto f = proc::parse_fdinfo(fmt::format("pos: 0\n{}\n", line)).flags & ~static_cast<uint32_t>(O_CLOEXEC);
            out += fmt::format("flags: {:o}\n", f);
        } else {
            out.append(line);
            out += '\n';
        }
        pos = end + 1;
    }
    return out;
}

}  // namespace

SavedContent save_content(int f, uint64_t size, const std::string& what, image::ImageWriter& out, bool skip_zero_pages) {
    SavedContent c;
    c.size = size;
    c.data_offset = out.data_offset();
    XXH3_state_t* h = XXH3_createState();
    if (!h) fail("out of memory hashing {}", what);
    std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> guard(h, XXH3_freeState);
    XXH3_64bits_reset(h);
    std::vector<char> buf(1 << 20);
    uint64_t off = 0;
    while (off < c.size) {
        off_t data = ::lseek(f, static_cast<off_t>(off), SEEK_DATA);
        if (data < 0) {
            if (errno == ENXIO) break;  // only a hole up to the end
            fail_errno("cannot find data in {}", what);
        }
        off_t hole = ::lseek(f, data, SEEK_HOLE);
        if (hole < 0) fail_errno("cannot find holes in {}", what);
        uint64_t from = static_cast<uint64_t>(data), to = std::min<uint64_t>(static_cast<uint64_t>(hole), c.size);
        if (from >= to) break;
        image::FileExtent ext{from, 0};
        uint64_t at = from;  // read up to here
        auto keep = [&](const char* p, size_t n, uint64_t where) {
            if (ext.length == 0) ext.offset = where;
            out.append_data(p, n);
            XXH3_64bits_update(h, p, n);
            ext.length += n;
        };
        auto close_extent = [&] {
            if (ext.length > 0) c.extents.push_back(ext);
            ext.length = 0;
        };
        while (at < to) {
            size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), to - at));
            ssize_t n = ::pread(f, buf.data(), want, static_cast<off_t>(at));
            if (n < 0) fail_errno("cannot read {}", what);
            if (n == 0) break;  // shrank meanwhile: keep what is there
            if (!skip_zero_pages) {
                keep(buf.data(), static_cast<size_t>(n), at);
            } else {
                // Pages of zeros become holes, like never-written ones.
                for (size_t b = 0; b < static_cast<size_t>(n); b += image::kPageSize) {
                    size_t len = std::min<size_t>(image::kPageSize, static_cast<size_t>(n) - b);
                    if (all_zero(buf.data() + b, len))
                        close_extent();
                    else
                        keep(buf.data() + b, len, at + b);
                }
            }
            at += static_cast<uint64_t>(n);
        }
        close_extent();
        if (at < to) {  // shrank
            c.size = at;
            break;
        }
        off = to;
    }
    c.checksum = XXH3_64bits_digest(h);
    return c;
}

namespace {

// A file whose name was removed while open: no links at all, or (when another hard link
// still exists) /proc shows "(deleted)" and that name leads to no such inode. Its other
// names cannot be found without searching every file system, so it is saved by content
// like a file with no links. (A path that merely does not resolve here, say in another
// mount namespace, is not taken for a deleted file.)
bool is_unlinked(const std::string& path, const struct stat& st) {
    if (st.st_nlink == 0) return true;
    if (!path.ends_with(kDeleted)) return false;
    struct stat now;
    return ::stat(path.c_str(), &now) != 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino;
}

}  // namespace

std::vector<image::Fd> dump_files(pid_t pid, image::ImageWriter& out, files::FdInfoTexts& texts) {
    std::vector<image::Fd> result;
    // dup()ed descriptors share one open file (and its offset): found among the fds on one
    // inode (kcmp), recorded as links to the lowest fd of the description.
    std::vector<FdInode> inodes;
    std::vector<struct stat> stats;
    std::vector<std::string> infos;
    for (int fd : list_fds(pid)) {
        struct stat st;
        std::string link = fmt::format("/proc/{}/fd/{}", pid, fd);
        if (::stat(link.c_str(), &st) != 0) fail_errno("process {} fd {}: cannot stat it", pid, fd);
        std::string info = read_file(fmt::format("/proc/{}/fdinfo/{}", pid, fd));
        inodes.push_back({fd, fmt::format("{}:{}\n{}", st.st_dev, st.st_ino, description_state(info))});
        stats.push_back(st);
        infos.push_back(std::move(info));
    }
    std::vector<int> dup_of = find_dups(pid, inodes);
    std::map<int, size_t> record_of;  // fd -> index in result
    for (size_t k = 0; k < inodes.size(); ++k) {
        const int fd = inodes[k].fd;
        if (dup_of[k] >= 0) {
            const image::Fd& earlier = result[record_of.at(dup_of[k])];
            image::Fd rec = earlier;
            rec.fd = fd;
            rec.dup_of = earlier.fd;
            auto info = proc::parse_fdinfo(infos[k]);
            rec.fd_flags = (info.flags & O_CLOEXEC) ? FD_CLOEXEC : 0;
            rec.size = 0;
            rec.checksum = 0;
            rec.data_offset = 0;
            rec.extents.clear();
            record_of[fd] = result.size();
            result.push_back(std::move(rec));
            continue;
        }
        record_of[fd] = result.size();
        std::string link = fmt::format("/proc/{}/fd/{}", pid, fd);
        image::Fd rec;
        rec.pid = pid;
        rec.fd = fd;
        rec.path = read_link(link);
        std::string& info_text = infos[k];
        auto info = proc::parse_fdinfo(info_text);
        rec.pos = info.pos;
        rec.open_flags = info.flags & ~static_cast<uint32_t>(O_CLOEXEC);
        rec.fd_flags = (info.flags & O_CLOEXEC) ? FD_CLOEXEC : 0;
        const struct stat& st = stats[k];
        rec.mode = st.st_mode;
        rec.dev = st.st_dev;
        rec.ino = st.st_ino;
        rec.rdev = st.st_rdev;
        rec.size = static_cast<uint64_t>(st.st_size);

        struct statfs sfs;
        if (::statfs(link.c_str(), &sfs) != 0) fail_errno("process {} fd {}: cannot statfs {}", pid, fd, rec.path);
        // One list of kinds for the audit and for saving: the audit has refused the dump
        // before this point for anything without `saved_as`.
        const FdKindInfo* kind = classify_fd(rec.path, st, static_cast<int64_t>(sfs.f_type),
                                             S_ISSOCK(st.st_mode) ? socket_protocol(link) : std::string());
        if (!kind) fail("process {} fd {} ({}): a descriptor kind ckpt does not know", pid, fd, rec.path);
        if (!kind->saved_as) fail("process {} fd {} ({}): {}: {}", pid, fd, rec.path, kind->name, kind->why);
        rec.kind = *kind->saved_as;
        if (files::is_event_fd(rec.kind)) texts[{pid, fd}] = std::move(info_text);
        if (rec.kind == image::FdKind::Regular || rec.kind == image::FdKind::Unlinked) {
            UniqueFd f(open_for_identity(link));
            if (!f) fail_errno("process {} fd {}: cannot open {} to record it", pid, fd, rec.path);
            rec.file = identify_file(f.get(), rec.path);
            // A name removed while another hard link remains is saved by content too.
            if (is_unlinked(rec.path, st)) rec.kind = image::FdKind::Unlinked;
            if (rec.kind == image::FdKind::Unlinked) {
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
                    SavedContent c = save_content(
                        f.get(), rec.size,
                        fmt::format("unlinked file {} (process {} fd {})", rec.path, pid, fd), out);
                    rec.size = c.size;
                    rec.data_offset = c.data_offset;
                    rec.checksum = c.checksum;
                    rec.extents = std::move(c.extents);
                }
            }
        }
        result.push_back(std::move(rec));
    }
    return result;
}

void save_unlinked_mappings(pid_t pid, std::vector<image::Vma>& vmas, const std::vector<image::Fd>& fds,
                            image::ImageWriter& out) {
    // The executable is reopened by path for PR_SET_MM_EXE_FILE, which a recreated deleted
    // file open for writing cannot serve.
    std::string exe_link = fmt::format("/proc/{}/exe", pid);
    std::string exe = read_link(exe_link);
    struct stat exe_st;
    if (exe.ends_with(kDeleted) && ::stat(exe_link.c_str(), &exe_st) == 0 && is_unlinked(exe, exe_st))
        fail("process {}: its executable {} was deleted or replaced since it started: not supported yet",
             pid, exe.substr(0, exe.size() - kDeleted.size()));
    for (size_t i = 0; i < vmas.size(); ++i) {
        image::Vma& v = vmas[i];
        if (v.kind != image::VmaKind::File || !v.path.ends_with(kDeleted)) continue;
        std::string link = fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, v.start, v.end);
        struct stat st;
        if (::stat(link.c_str(), &st) != 0) fail_errno("process {}: cannot stat mapped file {}", pid, v.path);
        if (!is_unlinked(v.path, st)) continue;
        if (!S_ISREG(st.st_mode))
            fail("process {}: mapping {:x}-{:x} of deleted {}: only regular files are supported", pid,
                 v.start, v.end, v.path);
        v.unlinked = 1;
        // One copy per inode: an earlier mapping's, or an fd's, or a new one.
        auto same_vma = std::find_if(vmas.begin(), vmas.begin() + static_cast<ptrdiff_t>(i), [&](const image::Vma& e) {
            return e.unlinked && e.file.dev == v.file.dev && e.file.ino == v.file.ino;
        });
        auto same_fd = std::find_if(fds.begin(), fds.end(), [&](const image::Fd& e) {
            return e.kind == image::FdKind::Unlinked && e.dup_of < 0 && e.file.dev == v.file.dev &&
                   e.file.ino == v.file.ino;
        });
        if (same_vma != vmas.begin() + static_cast<ptrdiff_t>(i)) {
            v.file.size = same_vma->file.size;
            v.data_offset = same_vma->data_offset;
            v.checksum = same_vma->checksum;
            v.extents = same_vma->extents;
        } else if (same_fd != fds.end()) {
            v.file.size = same_fd->size;
            v.data_offset = same_fd->data_offset;
            v.checksum = same_fd->checksum;
            v.extents = same_fd->extents;
        } else {
            UniqueFd f(open_for_identity(link));
            if (!f) fail_errno("process {}: cannot open deleted mapped file {}", pid, v.path);
            SavedContent c = save_content(
                f.get(), v.file.size, fmt::format("deleted file {} mapped by process {}", v.path, pid), out);
            v.file.size = c.size;
            v.data_offset = c.data_offset;
            v.checksum = c.checksum;
            v.extents = std::move(c.extents);
        }
    }
}

}  // namespace ckpt::tracer
