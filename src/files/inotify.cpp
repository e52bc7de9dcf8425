// inotify: every watch with its number (wd) and mask, added again under the same number.
//
// The kernel keeps a file handle of each watched inode (fdinfo "f_handle"); the dump opens it
// (open_by_handle_at, through a mount of that filesystem) to learn the path. At restore the
// watches are added in wd order; the kernel numbers them cyclically, so a gap in the numbers
// (a watch removed since) is skipped by adding and removing a watch on a scratch directory,
// and the IN_IGNORED events that leaves behind are read away before the program runs.
// Events queued but not read at dump time are not kept (docs/audit.md).
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include "common/error.h"
#include "common/fd.h"
#include "common/fs.h"
#include "files/event_fds.h"
#include "tracer/proc_parse.h"

namespace ckpt::files {

namespace {

constexpr int kMaxGap = 1 << 20;  // watch numbers skipped at restore, in all

// A directory on the filesystem of kernel device number `sdev`, to open handles through.
int mount_fd_for(uint32_t sdev, std::map<uint32_t, UniqueFd>& cache) {
    if (auto it = cache.find(sdev); it != cache.end()) return it->second.get();
    const unsigned major = sdev >> 20, minor = sdev & 0xfffff;
    std::string want = fmt::format("{}:{}", major, minor), best;
    const std::string mountinfo = read_file("/proc/self/mountinfo");  // outlives the views into it
    for (auto line : proc::fdinfo_lines(mountinfo, "")) {
        // "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw": id parent dev root mountpoint ...
        std::string l(line);
        char dev[64], root[4096], point[4096];
        if (std::sscanf(l.c_str(), "%*d %*d %63s %4095s %4095s", dev, root, point) != 3 || want != dev) continue;
        if (best.empty() || std::string(root) == "/") best = point;  // a mount of the whole filesystem if there is one
        if (std::string(root) == "/") break;
    }
    if (best.empty()) fail("no mount of device {} to find the watched file on", want);
    UniqueFd fd(::open(best.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));  // not O_PATH: open_by_handle_at refuses one
    if (!fd) fail_errno("cannot open mount point {}", best);
    return cache.emplace(sdev, std::move(fd)).first->second.get();
}

void drain(int fd) {
    char buf[64 * 1024];
    while (::read(fd, buf, sizeof buf) > 0) {
    }
}

}  // namespace

std::vector<image::InotifyWatch> dump_inotify(const image::Fd& f, std::string_view fdinfo) {
    std::vector<image::InotifyWatch> out;
    std::map<uint32_t, UniqueFd> mounts;
    for (auto line : proc::fdinfo_lines(fdinfo, "inotify ")) {
        std::string l(line);
        unsigned wd = 0, sdev = 0, mask = 0, ignored = 0, bytes = 0;
        int type = 0;
        unsigned long ino = 0;
        char hex[2 * 128 + 1] = {};
        if (std::sscanf(l.c_str(),
                        "inotify wd:%x ino:%lx sdev:%x mask:%x ignored_mask:%x fhandle-bytes:%x fhandle-type:%x f_handle:%256s",
                        &wd, &ino, &sdev, &mask, &ignored, &bytes, &type, hex) != 8 ||
            bytes > 128 || std::string_view(hex).size() != 2 * bytes)
            fail("process {} fd {} (inotify): malformed or unsupported watch line '{}'", f.pid, f.fd, l);
        alignas(file_handle) unsigned char buf[sizeof(file_handle) + 128] = {};
        auto* fh = reinterpret_cast<file_handle*>(buf);
        fh->handle_bytes = bytes;
        fh->handle_type = type;
        for (unsigned i = 0; i < bytes; ++i)  // f_handle, the flexible array, starts at the end of the struct
            buf[sizeof(file_handle) + i] = static_cast<unsigned char>(std::strtoul(std::string(hex + 2 * i, 2).c_str(), nullptr, 16));
        UniqueFd watched(::open_by_handle_at(mount_fd_for(sdev, mounts), fh, O_PATH | O_CLOEXEC));
        if (!watched)
            fail_errno("process {} fd {} (inotify): cannot find the file of watch {} (inode {})", f.pid, f.fd, wd, ino);
        std::string path = read_link(fmt::format("/proc/self/fd/{}", watched.get()));
        struct stat st;
        if (::fstat(watched.get(), &st) != 0) fail_errno("process {} fd {} (inotify): cannot stat {}", f.pid, f.fd, path);
        struct stat by_path;
        if (path.ends_with(" (deleted)") || path.empty() || path[0] != '/' || ::lstat(path.c_str(), &by_path) != 0 ||
            by_path.st_ino != st.st_ino || by_path.st_dev != st.st_dev)
            fail("process {} fd {} (inotify) watches {} (watch {}), which has no path any more: not supported yet",
                 f.pid, f.fd, path, wd);
        image::InotifyWatch w;
        w.file_id = f.file_id;
        w.wd = static_cast<int32_t>(wd);
        w.mask = mask;
        w.path = path;
        w.dev = st.st_dev;
        w.ino = st.st_ino;
        out.push_back(std::move(w));
    }
    // Restore spends the unused watch numbers below the highest one, one by one.
    std::vector<int32_t> wds;
    for (const auto& w : out) wds.push_back(w.wd);
    std::sort(wds.begin(), wds.end());
    long gaps = 0, prev = 0;
    for (int32_t wd : wds) {
        gaps += wd - prev - 1;
        prev = wd;
    }
    if (gaps > kMaxGap)
        fail("process {} fd {} (inotify): its watch numbers leave {} unused below {}: more than the {} restore can skip",
             f.pid, f.fd, gaps, prev, kMaxGap);
    return out;
}

int open_inotify(uint32_t open_flags, std::vector<const image::InotifyWatch*> watches) {
    UniqueFd fd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (!fd) fail_errno("cannot create an inotify instance");
    std::sort(watches.begin(), watches.end(), [](auto* a, auto* b) { return a->wd < b->wd; });
    std::string scratch;  // a directory to spend watch numbers on
    struct RemoveScratch {
        std::string& dir;
        ~RemoveScratch() {
            if (!dir.empty()) ::rmdir(dir.c_str());
        }
    } remove_scratch{scratch};
    int next = 1, skipped = 0;
    for (const auto* w : watches) {
        while (next < w->wd) {
            if (scratch.empty()) {
                char tmpl[] = "/tmp/.ckpt-inotify-XXXXXX";
                if (!::mkdtemp(tmpl)) fail_errno("cannot make a scratch directory for inotify watch numbers");
                scratch = tmpl;
            }
            if (++skipped > kMaxGap)
                fail("inotify watch {} ({}): more than {} watch numbers to skip", w->wd, w->path, kMaxGap);
            int got = ::inotify_add_watch(fd.get(), scratch.c_str(), IN_ATTRIB);
            if (got < 0) fail_errno("cannot add a scratch inotify watch");
            ::inotify_rm_watch(fd.get(), got);
            if (got >= w->wd) fail("inotify watch {} ({}): the kernel gave number {} first", w->wd, w->path, got);
            next = got + 1;
            if (skipped % 4096 == 0) drain(fd.get());  // the queue holds only so many IN_IGNORED
        }
        struct stat st;
        if (::lstat(w->path.c_str(), &st) != 0) fail_errno("inotify watch {}: cannot find {}", w->wd, w->path);
        if (st.st_dev != w->dev || st.st_ino != w->ino)
            fail("inotify watch {}: {} is another file than at dump time", w->wd, w->path);
        // The path names the watched inode itself: never follow it further.
        int got = ::inotify_add_watch(fd.get(), w->path.c_str(), w->mask | IN_DONT_FOLLOW);
        if (got < 0) fail_errno("cannot add inotify watch {} on {}", w->wd, w->path);
        if (got != w->wd) fail("inotify watch on {}: the kernel gave number {}, the program had {}", w->path, got, w->wd);
        next = got + 1;
    }
    // The scratch directory goes before the last drain: a watch of its parent would report it.
    if (!scratch.empty()) {
        ::rmdir(scratch.c_str());
        scratch.clear();
    }
    drain(fd.get());
    if (!(open_flags & O_NONBLOCK) && ::fcntl(fd.get(), F_SETFL, 0) != 0)
        fail_errno("cannot make the inotify instance blocking");
    return fd.release();
}

}  // namespace ckpt::files
