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
#include <vector>

#include "common/error.h"
#include "common/fd.h"
#include "common/fs.h"
#include "tracer/audit.h"
#include "tracer/proc_parse.h"

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

void save_unlinked_content(pid_t pid, image::Fd& rec, image::ImageWriter& out) {
    std::string link = fmt::format("/proc/{}/fd/{}", pid, rec.fd);
    UniqueFd f(::open(link.c_str(), O_RDONLY | O_CLOEXEC));
    if (!f) fail_errno("process {} fd {}: cannot open unlinked file {} to save it", pid, rec.fd, rec.path);
    rec.data_offset = out.data_offset();
    XXH3_state_t* h = XXH3_createState();
    XXH3_64bits_reset(h);
    std::vector<char> buf(1 << 20);
    uint64_t off = 0;
    while (off < rec.size) {
        size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), rec.size - off));
        ssize_t n = ::pread(f.get(), buf.data(), want, static_cast<off_t>(off));
        if (n < 0) {
            XXH3_freeState(h);
            fail_errno("process {} fd {}: cannot read unlinked file", pid, rec.fd);
        }
        if (n == 0) break;  // shrank meanwhile: keep what is there
        out.append_data(buf.data(), static_cast<size_t>(n));
        XXH3_64bits_update(h, buf.data(), static_cast<size_t>(n));
        off += static_cast<uint64_t>(n);
    }
    rec.size = off;
    rec.checksum = XXH3_64bits_digest(h);
    XXH3_freeState(h);
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

        struct statfs sfs;
        if (::statfs(link.c_str(), &sfs) != 0) fail_errno("process {} fd {}: cannot statfs {}", pid, fd, rec.path);
        // One list of kinds for the audit and for saving: the audit has refused the dump
        // before this point for anything without `saved_as`.
        const FdKindInfo* kind = classify_fd(rec.path, st, static_cast<int64_t>(sfs.f_type));
        if (!kind) fail("process {} fd {} ({}): a descriptor kind ckpt does not know", pid, fd, rec.path);
        if (!kind->saved_as) fail("process {} fd {} ({}): {}: {}", pid, fd, rec.path, kind->name, kind->why);
        rec.kind = *kind->saved_as;
        if (rec.kind == image::FdKind::Unlinked) {
            if (rec.path.ends_with(kDeleted)) rec.path.resize(rec.path.size() - kDeleted.size());
            save_unlinked_content(pid, rec, out);
        }
        result.push_back(std::move(rec));
    }
    return result;
}

}  // namespace ckpt::tracer
