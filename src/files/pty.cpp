#include "files/pty.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "common/error.h"
#include "common/fs.h"
#include "common/log.h"
#include "files/outside_fds.h"
#include "files/target_fd.h"

namespace ckpt::files {

namespace {

using image::Fd;
using image::FdKind;

// The kernel's struct termios2 (asm/termbits.h cannot be included next to <termios.h>):
// TCGETS2 gives the speeds too, where glibc's struct termios only has the cflag's.
struct KernelTermios2 {
    uint32_t iflag, oflag, cflag, lflag;
    uint8_t line;
    uint8_t cc[19];
    uint32_t ispeed, ospeed;
};
static_assert(sizeof(KernelTermios2) == 44);
const unsigned long kTcGets2 = _IOR('T', 0x2A, KernelTermios2);
const unsigned long kTcSets2 = _IOW('T', 0x2B, KernelTermios2);

std::string slave_path(uint32_t index) { return fmt::format("/dev/pts/{}", index); }

bool is_master_link(std::string_view link) { return link == "/dev/ptmx" || link == "/dev/pts/ptmx"; }

// "tty-index:" of a master's fdinfo, or -1.
int index_in_fdinfo(const std::string& fdinfo_path) {
    std::string text;
    try {
        text = read_file(fdinfo_path);
    } catch (const std::exception&) {
        return -1;  // closed meanwhile
    }
    auto at = text.find("tty-index:");
    return at == std::string::npos ? -1 : std::atoi(text.c_str() + at + 10);
}

int get_int(int fd, unsigned long req, const char* what, uint32_t index) {
    int v = 0;
    if (::ioctl(fd, req, &v) != 0) fail_errno("pty {}: cannot read its {}", index, what);
    return v;
}

void set_int(int fd, unsigned long req, int v, const char* what, uint32_t index) {
    if (::ioctl(fd, req, &v) != 0) fail_errno("pty {}: cannot set its {}", index, what);
}

KernelTermios2 get_termios(int master, uint32_t index) {
    KernelTermios2 t{};
    if (::ioctl(master, kTcGets2, &t) != 0) fail_errno("pty {}: cannot read its termios", index);
    return t;
}

void set_termios(int master, const KernelTermios2& t, uint32_t index) {
    if (::ioctl(master, kTcSets2, &t) != 0) fail_errno("pty {}: cannot set its termios", index);
}

// The description's file flags with O_NONBLOCK added for as long as it lives: reading what
// is queued must not wait (the master's VMIN may ask for more). The tree is frozen and
// sees nothing of it.
class NonBlocking {
  public:
    NonBlocking(int fd, uint32_t index) : fd_(fd), flags_(::fcntl(fd, F_GETFL)) {
        if (flags_ < 0 || ::fcntl(fd, F_SETFL, flags_ | O_NONBLOCK) != 0)
            fail_errno("pty {}: cannot make its master non-blocking for reading", index);
    }
    ~NonBlocking() { ::fcntl(fd_, F_SETFL, flags_); }
    NonBlocking(const NonBlocking&) = delete;
    NonBlocking& operator=(const NonBlocking&) = delete;

  private:
    int fd_, flags_;
};

// Writes what the slave side had written back into the pair, through `slave`, with output
// processing off for that moment (the bytes were processed when first written).
void write_through_slave(int master, int slave, const std::string& bytes, uint32_t index) {
    KernelTermios2 t = get_termios(master, index);
    KernelTermios2 raw = t;
    raw.oflag &= ~static_cast<uint32_t>(OPOST);
    set_termios(master, raw, index);
    struct Back {
        int m;
        const KernelTermios2& t;
        ~Back() { ::ioctl(m, kTcSets2, &t); }
    } back{master, t};
    size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = ::write(slave, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail_errno("pty {}: cannot put back the {} bytes its master had not read", index, bytes.size());
        done += static_cast<size_t>(n);
    }
}

// What the master has to read: taken (ttys have no peek) and put straight back, so that
// the pair holds it again whatever happens to the dump.
std::string take_and_put_back_output(int master, const image::Pty& rec, const std::vector<const Fd*>& slave_holders) {
    std::string out;
    {
        NonBlocking nb(master, rec.index);
        char buf[4096];
        for (;;) {
            pollfd p{master, POLLIN, 0};
            // poll runs the line discipline's pending input first: nothing in flight is missed
            if (::poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN)) break;
            ssize_t n = ::read(master, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;  // EAGAIN, or EIO: nothing more while the slave is closed
            // packet mode: every read starts with a status byte (TIOCPKT_DATA, 0, here)
            size_t skip = rec.packet ? 1 : 0;
            if (static_cast<size_t>(n) > skip) out.append(buf + skip, static_cast<size_t>(n) - skip);
        }
    }
    if (out.empty()) return out;
    UniqueFd slave;
    if (!slave_holders.empty()) {
        slave = copy_of_target_fd(slave_holders.front()->pid, slave_holders.front()->fd);
    } else {
        // Nobody holds the slave: opening and closing one leaves the hang-up the master saw.
        slave.reset(::open(slave_path(rec.index).c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC));
        if (!slave) fail_errno("pty {}: cannot open {} to put back what its master had not read", rec.index,
                               slave_path(rec.index));
    }
    write_through_slave(master, slave.get(), out, rec.index);
    return out;
}

}  // namespace

int pty_slave_index(uint64_t rdev) {
    unsigned maj = ::major(rdev), min = ::minor(rdev);
    if (maj < 136 || maj > 143) return -1;  // UNIX98_PTY_SLAVE_MAJOR and the 7 after it
    return static_cast<int>((maj - 136) * 256 + min);
}

std::set<int> pty_masters_held(const std::vector<pid_t>& pids) {
    std::set<int> out;
    for (pid_t pid : pids) {
        std::string dir = fmt::format("/proc/{}/fd", pid);
        DIR* d = ::opendir(dir.c_str());
        if (!d) continue;  // a zombie
        while (dirent* e = ::readdir(d)) {
            if (e->d_name[0] == '.') continue;
            char buf[64];
            ssize_t n = ::readlink(fmt::format("{}/{}", dir, e->d_name).c_str(), buf, sizeof buf);
            if (n <= 0 || !is_master_link(std::string_view(buf, static_cast<size_t>(n)))) continue;
            int index = index_in_fdinfo(fmt::format("/proc/{}/fdinfo/{}", pid, e->d_name));
            if (index >= 0) out.insert(index);
        }
        ::closedir(d);
    }
    return out;
}

std::vector<image::Pty> dump_ptys(std::vector<Fd>& fds, const std::vector<const image::Process*>& procs,
                                  const std::set<pid_t>& tree) {
    std::vector<image::Pty> out;
    std::map<uint32_t, const Fd*> master_of;  // by index
    std::map<uint32_t, UniqueFd> copy_of;     // ckpt's copy of each master description, by index
    for (const Fd& f : fds) {
        if (f.kind != FdKind::PtyMaster || f.dup_of >= 0) continue;
        if (std::any_of(out.begin(), out.end(), [&](const image::Pty& p) { return p.file_id == f.file_id; })) continue;
        UniqueFd m = copy_of_target_fd(f.pid, f.fd);
        image::Pty rec;
        rec.file_id = f.file_id;
        rec.index = static_cast<uint32_t>(get_int(m.get(), TIOCGPTN, "index", 0));
        master_of[rec.index] = &f;
        copy_of[rec.index] = std::move(m);
        out.push_back(std::move(rec));
    }
    if (out.empty()) return out;

    struct stat pts;
    if (::stat("/dev/pts", &pts) != 0) fail_errno("cannot stat /dev/pts");
    std::map<uint32_t, std::vector<const Fd*>> slaves;  // by index
    for (Fd& f : fds) {
        int index = f.kind == FdKind::Tty ? pty_slave_index(f.rdev) : -1;
        if (index < 0 || !master_of.count(static_cast<uint32_t>(index))) continue;
        if (f.dev != pts.st_dev || f.path != slave_path(static_cast<uint32_t>(index)))
            fail("process {} fd {} is {}, a pty of another devpts instance than /dev/pts: not supported yet", f.pid,
                 f.fd, f.path);
        f.kind = FdKind::PtySlave;
        slaves[static_cast<uint32_t>(index)].push_back(&f);
    }

    // A pair is only moved whole: nothing outside may hold either end.
    std::map<uint32_t, std::vector<std::string>> outside;  // by index
    for_each_fd_outside(tree, [&](pid_t pid, std::string_view fd, std::string_view link, const std::string& path) {
        int index = -1;
        if (is_master_link(link)) {
            index = index_in_fdinfo(fmt::format("/proc/{}/fdinfo/{}", pid, fd));
        } else if (link.starts_with("/dev/pts/")) {
            struct stat st;
            if (::stat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode)) index = pty_slave_index(st.st_rdev);
        }
        if (index >= 0 && master_of.count(static_cast<uint32_t>(index)))
            outside[static_cast<uint32_t>(index)].push_back(
                fmt::format("process {} fd {} holds the {}", pid, fd, is_master_link(link) ? "master" : "slave"));
    });
    if (!outside.empty()) {
        const auto& [index, who] = *outside.begin();
        const Fd& f = *master_of.at(index);
        fail("process {} fd {} is the master of pty {}, also held outside the dumped tree ({}): not supported",
             f.pid, f.fd, index, fmt::join(who, ", "));
    }

    for (auto& rec : out) {
        const Fd& f = *master_of.at(rec.index);
        const auto& holders = slaves[rec.index];
        const UniqueFd& m = copy_of.at(rec.index);
        KernelTermios2 t = get_termios(m.get(), rec.index);
        rec.termios.assign(reinterpret_cast<const char*>(&t), sizeof t);
        winsize ws{};
        if (::ioctl(m.get(), TIOCGWINSZ, &ws) != 0) fail_errno("pty {}: cannot read its window size", rec.index);
        rec.winsize.assign(reinterpret_cast<const char*>(&ws), sizeof ws);
        rec.packet = static_cast<uint32_t>(get_int(m.get(), TIOCGPKT, "packet mode", rec.index));
        rec.locked = static_cast<uint32_t>(get_int(m.get(), TIOCGPTLCK, "lock", rec.index));
        pid_t sid = 0, pgrp = 0;
        if (::ioctl(m.get(), TIOCGSID, &sid) != 0) sid = 0;  // ENOTTY: no session has it
        if (sid > 0 && ::ioctl(m.get(), TIOCGPGRP, &pgrp) != 0) pgrp = 0;
        rec.sid = sid;
        rec.fg_pgrp = pgrp;
        if (sid > 0) {
            auto leader = std::find_if(procs.begin(), procs.end(), [&](const image::Process* p) { return p->pid == sid; });
            if (leader == procs.end() || (*leader)->zombie)
                fail("pty {} is the controlling terminal of session {}, whose leader is not a live process of the "
                     "tree: not supported yet", rec.index, sid);
            if (pgrp > 0 && std::none_of(procs.begin(), procs.end(), [&](const image::Process* p) {
                    return !p->zombie && p->pgid == pgrp && p->sid == sid;
                }))
                fail("pty {}: its foreground process group {} has no process in the tree (it cannot be set again)",
                     rec.index, pgrp);
        }
        pollfd p{m.get(), POLLIN | POLLPRI, 0};
        if (::poll(&p, 1, 0) < 0) fail_errno("pty {}: cannot poll its master", rec.index);
        if (rec.packet && (p.revents & POLLPRI))
            fail("pty {}: a packet-mode status byte is waiting to be read by process {} fd {}: not supported",
                 rec.index, f.pid, f.fd);
        rec.slave_closed = (p.revents & POLLHUP) ? 1 : 0;
        if (!holders.empty()) {
            UniqueFd s = copy_of_target_fd(holders.front()->pid, holders.front()->fd);
            int queued = 0;
            if (::ioctl(s.get(), FIONREAD, &queued) != 0) fail_errno("pty {}: cannot see what its slave has to read", rec.index);
            if (queued > 0)
                fail("pty {}: {} bytes typed into it are not read yet by its slave {} (process {} fd {}): the line "
                     "discipline cannot be given them back as they were", rec.index, queued,
                     slave_path(rec.index), holders.front()->pid, holders.front()->fd);
        }
        rec.output = take_and_put_back_output(m.get(), rec, holders);
        log::info("pty {}: master held by process {} fd {}, {} slave descriptor(s), {} bytes unread", rec.index,
                  f.pid, f.fd, holders.size(), rec.output.size());
    }
    for (const image::Process* p : procs) {
        if (p->zombie || p->ctty == 0 || p->sid != p->pid) continue;
        int index = pty_slave_index(p->ctty);
        if (index < 0 || !master_of.count(static_cast<uint32_t>(index))) continue;
        auto rec = std::find_if(out.begin(), out.end(), [&](const image::Pty& r) { return r.index == static_cast<uint32_t>(index); });
        if (rec->sid != p->pid)
            fail("process {} leads a session with pty {} as controlling terminal, which names session {}", p->pid,
                 index, rec->sid);
    }
    return out;
}

std::map<uint32_t, UniqueFd> make_ptys(const image::Image& img) {
    std::map<uint32_t, UniqueFd> out;
    std::vector<const image::Pty*> todo;
    for (const auto& p : img.ptys) todo.push_back(&p);
    std::sort(todo.begin(), todo.end(), [](auto* a, auto* b) { return a->index < b->index; });
    std::vector<UniqueFd> spare;  // lower free indices, held until every pair has its own
    for (const image::Pty* rec : todo) {
        const Fd* master = nullptr;
        for (const auto& f : img.fds)
            if (f.file_id == rec->file_id && f.dup_of < 0) master = &f;
        int flags = O_RDWR | O_NOCTTY | O_CLOEXEC | (master ? static_cast<int>(master->open_flags & O_NONBLOCK) : 0);
        UniqueFd m;
        for (;;) {
            UniqueFd next(::open("/dev/ptmx", flags));
            if (!next) fail_errno("cannot open /dev/ptmx to make pty {} again", rec->index);
            int got = get_int(next.get(), TIOCGPTN, "index", rec->index);
            if (got == static_cast<int>(rec->index)) {
                m = std::move(next);
                break;
            }
            if (got > static_cast<int>(rec->index))
                fail("cannot make pty {} again: {} is in use by another terminal", rec->index, slave_path(rec->index));
            spare.push_back(std::move(next));
        }
        KernelTermios2 t;
        std::memcpy(&t, rec->termios.data(), sizeof t);
        set_termios(m.get(), t, rec->index);
        winsize ws;
        std::memcpy(&ws, rec->winsize.data(), sizeof ws);
        if (::ioctl(m.get(), TIOCSWINSZ, &ws) != 0) fail_errno("pty {}: cannot set its window size", rec->index);
        set_int(m.get(), TIOCSPTLCK, 0, "lock", rec->index);
        bool tree_holds_slave = std::any_of(img.fds.begin(), img.fds.end(), [&](const Fd& f) {
            return f.kind == FdKind::PtySlave && f.path == slave_path(rec->index);
        });
        if (!rec->output.empty() || (rec->slave_closed && !tree_holds_slave)) {
            // Closed again right away: the master sees the hang-up it saw, until the tree
            // opens the slave again.
            UniqueFd s(::open(slave_path(rec->index).c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC));
            if (!s) fail_errno("pty {}: cannot open {}", rec->index, slave_path(rec->index));
            if (!rec->output.empty()) write_through_slave(m.get(), s.get(), rec->output, rec->index);
        }
        if (rec->locked) set_int(m.get(), TIOCSPTLCK, 1, "lock", rec->index);
        if (rec->packet) set_int(m.get(), TIOCPKT, 1, "packet mode", rec->index);
        out[rec->file_id] = std::move(m);
    }
    return out;
}

const image::Pty& pty_of_slave(const image::Image& img, const Fd& slave) {
    for (const auto& p : img.ptys)
        if (slave.path == slave_path(p.index)) return p;
    fail("process {} fd {}: the image has no pty pair for {}", slave.pid, slave.fd, slave.path);
}

int open_pty_slave(const Fd& slave, int master) {
    constexpr uint32_t kNotReopenable = O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY;
    // No O_CLOEXEC: TIOCGPTPEER keeps it in the description's flags, where fdinfo would show
    // it forever (the descriptor flag is set where the descriptor is placed).
    int flags = static_cast<int>(slave.open_flags & ~kNotReopenable) | O_NOCTTY;
    int fd = ::ioctl(master, TIOCGPTPEER, flags);
    if (fd < 0) fail_errno("process {} fd {}: cannot open {} again from its master", slave.pid, slave.fd, slave.path);
    return fd;
}

const image::Pty* tree_pty_of(const image::Image& img, uint32_t ctty) {
    int index = ctty ? pty_slave_index(ctty) : -1;
    if (index < 0) return nullptr;
    for (const auto& p : img.ptys)
        if (p.index == static_cast<uint32_t>(index)) return &p;
    return nullptr;
}

void restore_controlling_terminal(const image::Image& img, const image::Process& proc, const image::Process* parent) {
    if (proc.sid == proc.pid) {
        const image::Pty* pty = tree_pty_of(img, proc.ctty);
        if (!pty) return;
        UniqueFd s(::open(slave_path(pty->index).c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC));
        if (!s || ::ioctl(s.get(), TIOCSCTTY, 0) != 0)
            fail_errno("process {}: cannot take {} as its controlling terminal again", proc.pid, slave_path(pty->index));
        return;
    }
    if (proc.ctty != 0 || !parent || parent->ctty == 0) return;
    // What the parent has is inherited by fork(); this process had given it up (TIOCNOTTY).
    // ENXIO: it inherited none (made by a session helper, or its parent's is not back).
    UniqueFd t(::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!t && errno == ENXIO) return;
    if (!t || ::ioctl(t.get(), TIOCNOTTY) != 0)
        fail_errno("process {}: cannot give up the controlling terminal it inherited", proc.pid);
}

void restore_foreground_group(const image::Image& img, const image::Process& proc) {
    if (proc.sid != proc.pid) return;
    const image::Pty* pty = tree_pty_of(img, proc.ctty);
    if (!pty || pty->fg_pgrp <= 0) return;
    UniqueFd s(::open(slave_path(pty->index).c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!s) fail_errno("process {}: cannot open {}", proc.pid, slave_path(pty->index));
    // A leader outside the foreground group would be stopped by SIGTTOU for asking.
    sigset_t ttou, old;
    sigemptyset(&ttou);
    sigaddset(&ttou, SIGTTOU);
    ::sigprocmask(SIG_BLOCK, &ttou, &old);
    int r = ::tcsetpgrp(s.get(), pty->fg_pgrp);
    int e = errno;
    ::sigprocmask(SIG_SETMASK, &old, nullptr);
    errno = e;
    if (r != 0)
        fail_errno("process {}: cannot make process group {} the foreground of {}", proc.pid, pty->fg_pgrp,
                   slave_path(pty->index));
}

}  // namespace ckpt::files
