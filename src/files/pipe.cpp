#include "files/pipe.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "common/error.h"
#include "common/fs.h"

namespace ckpt::files {

namespace {

using image::Fd;
using image::FdKind;

std::string pipe_name(uint64_t ino) { return fmt::format("pipe:[{}]", ino); }

// Every process outside the tree that holds a descriptor of one of `inos`, by pipe.
std::map<uint64_t, std::vector<std::string>> outside_holders(const std::set<uint64_t>& inos,
                                                             const std::set<pid_t>& tree) {
    std::map<uint64_t, std::vector<std::string>> out;
    DIR* proc = ::opendir("/proc");
    if (!proc) fail_errno("cannot list /proc");
    while (dirent* e = ::readdir(proc)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        pid_t pid = std::atoi(e->d_name);
        if (tree.count(pid) || pid == ::getpid()) continue;
        std::string dir = fmt::format("/proc/{}/fd", pid);
        DIR* d = ::opendir(dir.c_str());
        if (!d) continue;  // gone, or a kernel thread
        while (dirent* f = ::readdir(d)) {
            if (f->d_name[0] == '.') continue;
            char buf[64];
            ssize_t n = ::readlink(fmt::format("{}/{}", dir, f->d_name).c_str(), buf, sizeof buf - 1);
            if (n <= 6 || std::string_view(buf, 6) != "pipe:[") continue;
            buf[n] = 0;
            uint64_t ino = std::strtoull(buf + 6, nullptr, 10);
            if (inos.count(ino)) out[ino].push_back(fmt::format("process {} fd {}", pid, f->d_name));
        }
        ::closedir(d);
    }
    ::closedir(proc);
    return out;
}

struct Buffered {
    uint32_t capacity = 0;
    std::string bytes;
};

// The pipe's capacity and a copy of what is buffered in it, through a new read end opened
// on it (/proc/PID/fd/N of either end reopens the pipe itself) and tee(), which does not
// consume what it copies.
Buffered read_buffered(const Fd& rec) {
    std::string link = fmt::format("/proc/{}/fd/{}", rec.pid, rec.fd);
    std::string what = fmt::format("process {} fd {} ({})", rec.pid, rec.fd, pipe_name(rec.ino));
    UniqueFd r(::open(link.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    if (!r) fail_errno("{}: cannot open the pipe to read what it holds", what);
    Buffered b;
    int cap = ::fcntl(r.get(), F_GETPIPE_SZ);
    if (cap <= 0) fail_errno("{}: cannot read the pipe's size", what);
    b.capacity = static_cast<uint32_t>(cap);
    int queued = 0;
    if (::ioctl(r.get(), FIONREAD, &queued) != 0) fail_errno("{}: cannot read how much the pipe holds", what);
    if (queued == 0) return b;
    int tmp[2];
    if (::pipe2(tmp, O_CLOEXEC | O_NONBLOCK) != 0) fail_errno("{}: pipe", what);
    UniqueFd tr(tmp[0]), tw(tmp[1]);
    // As many slots as the source, so that one tee() takes every buffer.
    if (::fcntl(tw.get(), F_SETPIPE_SZ, cap) < cap) fail_errno("{}: cannot size a pipe to copy it", what);
    ssize_t n = ::tee(r.get(), tw.get(), static_cast<size_t>(queued), SPLICE_F_NONBLOCK);
    if (n != queued)
        fail("{}: could copy only {} of the {} bytes it holds", what, n < 0 ? 0 : n, queued);
    b.bytes.resize(static_cast<size_t>(queued));
    size_t got = 0;
    while (got < b.bytes.size()) {
        ssize_t k = ::read(tr.get(), b.bytes.data() + got, b.bytes.size() - got);
        if (k <= 0) fail_errno("{}: cannot read the copy of its bytes", what);
        got += static_cast<size_t>(k);
    }
    return b;
}

}  // namespace

void dump_pipes(std::vector<Fd>& fds, const std::set<pid_t>& tree, image::ImageWriter& out) {
    std::set<uint64_t> inos;
    for (const auto& f : fds)
        if (f.kind == FdKind::Pipe) inos.insert(f.ino);
    if (inos.empty()) return;
    auto outside = outside_holders(inos, tree);
    for (uint64_t ino : inos) {
        auto first = std::find_if(fds.begin(), fds.end(), [&](const Fd& f) { return f.kind == FdKind::Pipe && f.ino == ino; });
        if (outside.count(ino)) {
            const auto& who = outside[ino];
            fail("process {} fd {} ({}) is also held by {} outside the dumped tree: pipes to processes "
                 "outside the tree are not supported yet", first->pid, first->fd, pipe_name(ino),
                 who.size() > 3 ? fmt::format("{}, {} and {} more", who[0], who[1], who.size() - 2)
                                : fmt::format("{}", fmt::join(who, ", ")));
        }
        Buffered b = read_buffered(*first);
        bool direct_any = false, direct_all = true;
        for (const auto& f : fds) {
            if (f.kind != FdKind::Pipe || f.ino != ino) continue;
            bool direct = (f.open_flags & O_DIRECT) != 0;
            direct_any = direct_any || direct;
            direct_all = direct_all && direct;
        }
        // Packet mode keeps write boundaries, which the copy does not record.
        if (direct_any && (!direct_all || !b.bytes.empty()))
            fail("process {} fd {} ({}): a packet-mode (O_DIRECT) pipe {}: not supported yet", first->pid,
                 first->fd, pipe_name(ino),
                 direct_all ? fmt::format("holding {} bytes", b.bytes.size()) : "with ends in both modes");
        for (auto& f : fds)
            if (f.kind == FdKind::Pipe && f.ino == ino) f.pipe_size = b.capacity;
        first->size = b.bytes.size();
        first->data_offset = out.data_offset();
        first->checksum = XXH3_64bits(b.bytes.data(), b.bytes.size());
        if (!b.bytes.empty()) out.append_data(b.bytes.data(), b.bytes.size());
    }
}

std::map<uint32_t, UniqueFd> make_pipes(const image::Image& img, int data_fd) {
    std::map<uint32_t, UniqueFd> out;
    std::set<uint64_t> done;
    for (const auto& first : img.fds) {
        if (first.kind != FdKind::Pipe || !done.insert(first.ino).second) continue;
        std::string what = fmt::format("{} of process {} fd {}", pipe_name(first.ino), first.pid, first.fd);
        bool direct = (first.open_flags & O_DIRECT) != 0;
        int p[2];
        if (::pipe2(p, O_CLOEXEC | (direct ? O_DIRECT : 0)) != 0) fail_errno("cannot make {}", what);
        UniqueFd end[2] = {UniqueFd(p[0]), UniqueFd(p[1])};
        if (first.pipe_size && ::fcntl(p[1], F_SETPIPE_SZ, first.pipe_size) < static_cast<int>(first.pipe_size))
            fail_errno("cannot give {} its size of {} bytes", what, first.pipe_size);
        if (first.size > 0) {
            if (first.size > first.pipe_size) fail("{}: the image holds more bytes than the pipe can", what);
            std::string bytes(first.size, '\0');
            pread_exact(data_fd, bytes.data(), bytes.size(), first.data_offset, "data.img");
            if (::write(p[1], bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()))
                fail_errno("cannot put {} bytes back into {}", bytes.size(), what);
        }
        // One descriptor per open file description of the pipe: the ends pipe2() made for the
        // first of each direction, a reopened end (a new description) for any further one.
        bool used[2] = {false, false};
        for (const auto& f : img.fds) {
            if (f.kind != FdKind::Pipe || f.ino != first.ino || out.count(f.file_id)) continue;
            int acc = static_cast<int>(f.open_flags & O_ACCMODE);
            int side = acc == O_WRONLY ? 1 : 0;
            int fd;
            if (acc != O_RDWR && !used[side]) {
                used[side] = true;
                fd = ::fcntl(end[side].get(), F_DUPFD_CLOEXEC, 0);
            } else {
                fd = ::open(fmt::format("/proc/self/fd/{}", end[side].get()).c_str(), acc | O_CLOEXEC | O_NONBLOCK);
            }
            if (fd < 0) fail_errno("cannot open an end of {} for process {} fd {}", what, f.pid, f.fd);
            UniqueFd own(fd);
            int cur = ::fcntl(fd, F_GETFL);
            int fl = (cur & ~O_NONBLOCK) | static_cast<int>(f.open_flags & O_NONBLOCK);
            if (cur < 0 || ::fcntl(fd, F_SETFL, fl) != 0)
                fail_errno("cannot set the flags of {} for process {} fd {}", what, f.pid, f.fd);
            out.emplace(f.file_id, std::move(own));
        }
    }
    return out;
}

}  // namespace ckpt::files
