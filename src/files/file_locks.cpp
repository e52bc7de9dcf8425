#include "files/file_locks.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/sysmacros.h>

#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <tuple>

#include "common/error.h"
#include "common/fs.h"
#include "tracer/proc_parse.h"

namespace ckpt::files {

namespace {

std::vector<std::string> words(std::string_view line) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
        size_t j = i;
        while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
        if (j > i) out.emplace_back(line.substr(i, j - i));
        i = j;
    }
    return out;
}

// The byte range of a lock line's last two words ("0 EOF", "10 20"); false if malformed.
bool parse_range(const std::vector<std::string>& w, image::FileLock& l) {
    try {
        l.start = std::stoull(w[6]);
        l.end = w[7] == "EOF" ? ~0ull : std::stoull(w[7]);
        return true;
    } catch (const std::exception&) {
        return false;
    }
}

// Takes an flock or OFD lock `l` on `fd` again; 0 or -1 with errno.
int take_lock(int fd, const image::FileLock& l) {
    if (l.kind == image::FileLockKind::Flock) return ::flock(fd, (l.write ? LOCK_EX : LOCK_SH) | LOCK_NB);
    struct flock fl {};
    fl.l_type = static_cast<short>(l.write ? F_WRLCK : F_RDLCK);
    fl.l_whence = SEEK_SET;
    fl.l_start = static_cast<off_t>(l.start);
    fl.l_len = l.end == ~0ull ? 0 : static_cast<off_t>(l.end - l.start + 1);
    return ::fcntl(fd, F_OFD_SETLK, &fl);
}

bool held_by_another(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EACCES; }

}  // namespace

std::string lock_inode_name(uint64_t dev, uint64_t ino) {
    return fmt::format("{:02x}:{:02x}:{}", major(dev), minor(dev), ino);
}

std::set<std::string> locked_inodes() {
    std::set<std::string> out;
    const std::string all = read_file("/proc/locks");
    for (auto line : proc::fdinfo_lines(all, "")) {
        auto w = words(line);  // "1: POSIX  ADVISORY  WRITE 1234 fe:00:131 0 EOF", waiters with "->"
        size_t at = w.size() > 1 && w[1] == "->" ? 6 : 5;
        if (w.size() > at) out.insert(w[at]);
    }
    return out;
}

std::vector<image::FileLock> dump_file_locks(const std::vector<image::Fd>& fds,
                                             const std::vector<std::pair<pid_t, std::vector<image::Vma>*>>& tree_vmas) {
    std::vector<image::FileLock> out;
    const std::set<std::string> locked = locked_inodes();
    if (locked.empty()) return out;
    // (kind, owner: pid for POSIX, file_id otherwise, dev:ino, start, end, write)
    std::set<std::tuple<int, long, std::string, uint64_t, uint64_t, int>> seen;
    std::set<std::string> held_through_fd;  // "inode TYPE" some descriptor of the tree showed a lock of
    for (const auto& f : fds) {
        if (f.dup_of >= 0) continue;  // a dup shows the same locks as the fd it duplicates
        if (!locked.count(lock_inode_name(f.dev, f.ino))) continue;
        std::string info = read_file(fmt::format("/proc/{}/fdinfo/{}", f.pid, f.fd));
        for (auto line : proc::fdinfo_lines(info, "lock:")) {
            // "lock:\t1: POSIX  ADVISORY  WRITE 1234 fe:00:131 0 EOF"; a waiter has "->" after the id
            auto w = words(line.substr(5));
            if (w.size() >= 2 && w[1] == "->") continue;
            if (w.size() < 8) fail("process {} fd {}: malformed lock line '{}'", f.pid, f.fd, line);
            image::FileLock l;
            if (w[1] == "POSIX") l.kind = image::FileLockKind::Posix;
            else if (w[1] == "FLOCK") l.kind = image::FileLockKind::Flock;
            else if (w[1] == "OFDLCK") l.kind = image::FileLockKind::Ofd;
            else fail("process {} fd {} ({}) holds a {} lock: not supported yet", f.pid, f.fd, f.path, w[1]);
            if (w[2] != "ADVISORY")
                fail("process {} fd {} ({}) holds a {} {} lock: not supported", f.pid, f.fd, f.path, w[2], w[1]);
            if (w[3] != "READ" && w[3] != "WRITE")
                fail("process {} fd {} ({}): a {} lock of unknown type {}", f.pid, f.fd, f.path, w[1], w[3]);
            l.pid = f.pid;
            l.fd = f.fd;
            l.file_id = f.file_id;
            l.write = w[3] == "WRITE";
            if (!parse_range(w, l)) fail("process {} fd {}: malformed lock range in '{}'", f.pid, f.fd, line);
            long owner = l.kind == image::FileLockKind::Posix ? f.pid : static_cast<long>(f.file_id);
            if (seen.insert({static_cast<int>(l.kind), owner, w[5], l.start, l.end, l.write}).second) out.push_back(l);
            held_through_fd.insert(w[5] + " " + w[1]);
        }
    }
    // /proc/locks: flocks a tree process took on an inode no fd of the tree shows one on,
    // held through a mapping of that inode (the audit refused any other kind).
    std::map<pid_t, std::vector<image::Vma>*> vmas_of(tree_vmas.begin(), tree_vmas.end());
    const std::string all = read_file("/proc/locks");
    for (auto line : proc::fdinfo_lines(all, "")) {
        auto w = words(line);
        if (w.size() < 8 || w[1] == "->" || held_through_fd.count(w[5] + " " + w[1])) continue;
        // OFD locks through a mapping only were refused by the audit (no pid tells whose).
        if (w[1] != "FLOCK") continue;
        auto vmas = vmas_of.find(static_cast<pid_t>(std::atoi(w[4].c_str())));
        if (vmas == vmas_of.end()) continue;  // not the tree's
        for (const auto& v : *vmas->second) {
            if (v.kind != image::VmaKind::File || lock_inode_name(v.file.dev, v.file.ino) != w[5]) continue;
            image::FileLock l;
            l.kind = image::FileLockKind::Flock;
            l.pid = vmas->first;
            l.fd = -1;
            l.vma_start = v.start;
            l.write = w[3] == "WRITE";
            if (!parse_range(w, l)) fail("process {}: malformed lock range in '{}'", l.pid, line);
            out.push_back(l);
            break;
        }
    }
    return out;
}

void take_mapping_locks(const image::Image& img, int pid, const image::Vma& v, int fd) {
    for (const auto& l : img.file_locks) {
        if (l.pid != pid || l.vma_start != v.start) continue;
        if (take_lock(fd, l) != 0)
            fail_errno("process {}: cannot take the lock it held through its mapping of {} again{}", pid, v.path,
                       held_by_another(errno) ? " (another process holds a conflicting lock now)" : "");
    }
}

void take_description_locks(const image::Image& img, int pid) {
    for (const auto& l : img.file_locks) {
        if (l.pid != pid || l.kind == image::FileLockKind::Posix || l.vma_start != 0) continue;
        int r = take_lock(l.fd, l);
        if (r != 0) {
            bool taken = held_by_another(errno);
            fail_errno("process {} fd {}: cannot take its {} lock again{}", pid, l.fd,
                       l.kind == image::FileLockKind::Flock ? "flock" : "OFD",
                       taken ? " (another process holds a conflicting lock now)" : "");
        }
    }
}

}  // namespace ckpt::files
