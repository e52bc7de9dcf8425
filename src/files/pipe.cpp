#include "files/pipe.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "common/error.h"
#include "common/fs.h"
#include "common/log.h"
#include "files/outside_fds.h"

namespace ckpt::files {

namespace {

using image::Fd;
using image::FdKind;

using PipeKey = std::pair<uint64_t, uint64_t>;  // dev, ino

bool is_pipe(const Fd& f) { return f.kind == FdKind::Pipe || f.kind == FdKind::Fifo; }
PipeKey key_of(const Fd& f) { return {f.dev, f.ino}; }
std::string pipe_name(const Fd& f) { return f.kind == FdKind::Fifo ? "FIFO " + f.path : fmt::format("pipe:[{}]", f.ino); }

// Every process outside the tree that holds a descriptor of one of the pipes (or FIFOs,
// found by path and then by inode), by pipe.
std::map<PipeKey, std::vector<std::string>> outside_holders(const std::set<PipeKey>& pipes,
                                                            const std::set<std::string>& fifo_paths,
                                                            const std::set<pid_t>& tree) {
    std::map<PipeKey, std::vector<std::string>> out;
    for_each_fd_outside(tree, [&](pid_t pid, std::string_view fd, std::string_view link, const std::string& path) {
        bool named = fifo_paths.count(std::string(link)) != 0;
        if (!named && !link.starts_with("pipe:[")) return;
        struct stat st;
        if (::stat(path.c_str(), &st) != 0) return;
        PipeKey k{st.st_dev, st.st_ino};
        if (pipes.count(k)) out[k].push_back(fmt::format("process {} fd {}", pid, fd));
    });
    return out;
}

struct Buffered {
    uint32_t capacity = 0;
    std::string bytes;
};

// The pipe's capacity and a copy of what is buffered in it, through a new read end opened
// on it (/proc/PID/fd/N of either end reopens the pipe itself) and tee(), which does not
// consume what it copies.
UniqueFd open_end(const Fd& rec) {
    UniqueFd r(::open(fmt::format("/proc/{}/fd/{}", rec.pid, rec.fd).c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    if (!r) fail_errno("process {} fd {} ({}): cannot open the pipe to read what it holds", rec.pid, rec.fd, pipe_name(rec));
    return r;
}

Buffered read_buffered(const Fd& rec) {
    std::string what = fmt::format("process {} fd {} ({})", rec.pid, rec.fd, pipe_name(rec));
    UniqueFd r = open_end(rec);
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
    std::set<PipeKey> pipes;
    std::set<std::string> fifo_paths;
    for (const auto& f : fds) {
        if (!is_pipe(f)) continue;
        pipes.insert(key_of(f));
        if (f.kind == FdKind::Fifo) fifo_paths.insert(f.path);
    }
    if (pipes.empty()) return;
    auto outside = outside_holders(pipes, fifo_paths, tree);
    for (const PipeKey& key : pipes) {
        auto first = std::find_if(fds.begin(), fds.end(), [&](const Fd& f) { return is_pipe(f) && key_of(f) == key; });
        if (outside.count(key)) {
            // Its bytes stay in the pipe, which the outside holder keeps alive.
            const auto& who = outside[key];
            log::info("process {} fd {} ({}) is also held by {} outside the dumped tree: recorded as external",
                      first->pid, first->fd, pipe_name(*first),
                      who.size() > 3 ? fmt::format("{}, {} and {} more", who[0], who[1], who.size() - 2)
                                     : fmt::format("{}", fmt::join(who, ", ")));
            int cap = ::fcntl(open_end(*first).get(), F_GETPIPE_SZ);
            for (auto& f : fds)
                if (is_pipe(f) && key_of(f) == key) {
                    if (f.open_flags & O_ASYNC)
                        fail("process {} fd {} ({}) asks for SIGIO (O_ASYNC): signal-driven I/O is not supported yet",
                             f.pid, f.fd, pipe_name(f));
                    f.external = 1;
                    f.pipe_size = cap > 0 ? static_cast<uint32_t>(cap) : 0;
                }
            continue;
        }
        for (const auto& f : fds)
            if (is_pipe(f) && key_of(f) == key && (f.open_flags & O_ASYNC))
                fail("process {} fd {} ({}) asks for SIGIO (O_ASYNC): signal-driven I/O is not supported yet", f.pid,
                     f.fd, pipe_name(f));
        Buffered b = read_buffered(*first);
        bool direct_any = false, direct_all = true;
        for (const auto& f : fds) {
            if (!is_pipe(f) || key_of(f) != key) continue;
            bool direct = (f.open_flags & O_DIRECT) != 0;
            direct_any = direct_any || direct;
            direct_all = direct_all && direct;
        }
        // Packet mode keeps write boundaries, which the copy does not record.
        if (direct_any && (!direct_all || !b.bytes.empty()))
            fail("process {} fd {} ({}): a packet-mode (O_DIRECT) pipe {}: not supported yet", first->pid,
                 first->fd, pipe_name(*first),
                 direct_all ? fmt::format("holding {} bytes", b.bytes.size()) : "with ends in both modes");
        for (auto& f : fds)
            if (is_pipe(f) && key_of(f) == key) f.pipe_size = b.capacity;
        first->size = b.bytes.size();
        first->data_offset = out.data_offset();
        first->checksum = XXH3_64bits(b.bytes.data(), b.bytes.size());
        if (!b.bytes.empty()) out.append_data(b.bytes.data(), b.bytes.size());
    }
}

std::string external_pipe_name(const Fd& f) { return fmt::format("pipe:[{}]", f.ino); }

namespace {

// The descriptions of an external pipe, from the descriptor the user gave for it: a new
// description per record (reopened through /proc, so that flags set on one do not change
// the caller's), or the given one itself when it cannot be reopened (a socket) or shares
// an offset (a regular file).
void take_external(const image::Image& img, const Fd& first, int given, std::map<uint32_t, UniqueFd>& out) {
    struct stat st;
    if (::fstat(given, &st) != 0) fail_errno("cannot stat the descriptor given for {}", pipe_name(first));
    bool reopen = S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode);
    for (const auto& f : img.fds) {
        if (!is_pipe(f) || key_of(f) != key_of(first) || out.count(f.file_id)) continue;
        int acc = static_cast<int>(f.open_flags & O_ACCMODE);
        // O_NOCTTY: a terminal given for a pipe must not become ckpt's controlling one
        int fd = reopen ? ::open(fmt::format("/proc/self/fd/{}", given).c_str(), acc | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
                        : ::fcntl(given, F_DUPFD_CLOEXEC, 0);
        if (fd < 0)
            fail_errno("cannot open the descriptor given for {} ({}) for process {} fd {}", pipe_name(f),
                       acc == O_WRONLY ? "for writing" : acc == O_RDONLY ? "for reading" : "read-write", f.pid, f.fd);
        UniqueFd own(fd);
        if (reopen) {
            int cur = ::fcntl(fd, F_GETFL);
            constexpr int kSettable = O_NONBLOCK | O_DIRECT;
            int fl = (cur & ~kSettable) | static_cast<int>(f.open_flags & kSettable);
            if (cur < 0 || ::fcntl(fd, F_SETFL, fl) != 0)
                fail_errno("cannot set the flags of {} for process {} fd {}", pipe_name(f), f.pid, f.fd);
        }
        out.emplace(f.file_id, std::move(own));
    }
}

}  // namespace

std::map<uint32_t, UniqueFd> make_pipes(const image::Image& img, int data_fd, const std::map<std::string, int>& given) {
    std::map<uint32_t, UniqueFd> out;
    std::set<PipeKey> done;
    for (const auto& first : img.fds) {
        if (!is_pipe(first) || !done.insert(key_of(first)).second) continue;
        std::string what = fmt::format("{} of process {} fd {}", pipe_name(first), first.pid, first.fd);
        if (first.external && first.kind == FdKind::Pipe) {
            auto it = given.find(external_pipe_name(first));
            if (it == given.end())
                fail("process {} fd {} is {}, a pipe to outside the dumped tree: say what it connects to with "
                     "--inherit-fd fd[N]:{} (or --inherit-stdio for stdin, stdout and stderr)",
                     first.pid, first.fd, pipe_name(first), external_pipe_name(first));
            take_external(img, first, it->second, out);
            continue;
        }
        bool direct = (first.open_flags & O_DIRECT) != 0;
        // end[0] reads, end[1] writes. A FIFO is opened by path: one read-write keeper makes
        // the pipe exist (and keeps the opens below from blocking) until every end is open.
        UniqueFd end[2];
        if (first.kind == FdKind::Fifo) {
            end[1].reset(::open(first.path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC));
            struct stat st;
            if (!end[1]) fail_errno("cannot open {}", what);
            if (::fstat(end[1].get(), &st) != 0 || !S_ISFIFO(st.st_mode)) fail("{}: {} is no longer a FIFO", what, first.path);
        } else {
            int p[2];
            if (::pipe2(p, O_CLOEXEC | (direct ? O_DIRECT : 0)) != 0) fail_errno("cannot make {}", what);
            end[0].reset(p[0]);
            end[1].reset(p[1]);
        }
        if (first.pipe_size && ::fcntl(end[1].get(), F_SETPIPE_SZ, first.pipe_size) < static_cast<int>(first.pipe_size))
            fail_errno("cannot give {} its size of {} bytes", what, first.pipe_size);
        if (first.size > 0) {  // never for an external FIFO: its bytes stayed in it
            if (first.size > first.pipe_size) fail("{}: the image holds more bytes than the pipe can", what);
            std::string bytes(first.size, '\0');
            pread_exact(data_fd, bytes.data(), bytes.size(), first.data_offset, "data.img");
            if (::write(end[1].get(), bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()))
                fail_errno("cannot put {} bytes back into {}", bytes.size(), what);
        }
        // One descriptor per open file description: the ends pipe2() made for the first of
        // each direction, a reopened end (a new description) for any further one.
        bool used[2] = {first.kind == FdKind::Fifo, first.kind == FdKind::Fifo};
        for (const auto& f : img.fds) {
            if (!is_pipe(f) || key_of(f) != key_of(first) || out.count(f.file_id)) continue;
            int acc = static_cast<int>(f.open_flags & O_ACCMODE);
            int side = acc == O_WRONLY ? 1 : 0;
            int fd;
            if (acc != O_RDWR && !used[side]) {
                used[side] = true;
                fd = ::fcntl(end[side].get(), F_DUPFD_CLOEXEC, 0);
            } else {
                std::string via = f.kind == FdKind::Fifo ? f.path : fmt::format("/proc/self/fd/{}", end[side].get());
                fd = ::open(via.c_str(), acc | O_CLOEXEC | O_NONBLOCK);
            }
            if (fd < 0) fail_errno("cannot open an end of {} for process {} fd {}", what, f.pid, f.fd);
            UniqueFd own(fd);
            int cur = ::fcntl(fd, F_GETFL);
            constexpr int kSettable = O_NONBLOCK | O_DIRECT;  // F_SETFL can set O_DIRECT on a pipe, open() cannot
            int fl = (cur & ~kSettable) | static_cast<int>(f.open_flags & kSettable);
            if (cur < 0 || ::fcntl(fd, F_SETFL, fl) != 0)
                fail_errno("cannot set the flags of {} for process {} fd {}", what, f.pid, f.fd);
            out.emplace(f.file_id, std::move(own));
        }
    }
    return out;
}

}  // namespace ckpt::files
