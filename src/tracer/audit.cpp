#include "tracer/audit.h"

#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cgroups/cgroups.h"
#include "common/error.h"
#include "common/fd.h"
#include "common/fs.h"
#include "files/file_locks.h"
#include "files/pty.h"
#include "parasite/parasite_abi.h"
#include "tracer/ptrace.h"
#include "tracer/proc_parse.h"
#include "tracer/smaps_cache.h"
#include "tracer/frozen_tree.h"
#include <linux/kcmp.h>
#include <sys/syscall.h>

namespace ckpt::tracer {

namespace {

using image::FdKind;

constexpr std::string_view kNotYet = "not supported yet";

// The table of descriptor kinds. Saved kinds first; the anon_inode entries are matched on
// their link text (the names the kernel passes to anon_inode_getfile() and friends), the
// others by file type and filesystem in classify_fd().
constexpr FdKindInfo kFdKinds[] = {
    {"regular file", "/path", FdKind::Regular, ""},
    {"unlinked file", "/path (deleted)", FdKind::Unlinked, ""},
    {"directory", "/path", FdKind::Directory, ""},
    {"memory device", "/dev/null, /dev/zero, /dev/full, /dev/random, /dev/urandom", FdKind::CharDev, ""},
    {"terminal", "/dev/pts/N, /dev/ttyN, /dev/tty, /dev/console", FdKind::Tty, ""},
    {"pipe", "pipe:[N]", FdKind::Pipe, ""},
    {"FIFO", "/path (a named pipe)", FdKind::Fifo, ""},
    {"eventfd", "anon_inode:[eventfd]", FdKind::EventFd, ""},
    {"epoll", "anon_inode:[eventpoll]", FdKind::Epoll, ""},
    {"signalfd", "anon_inode:[signalfd]", FdKind::SignalFd, ""},
    {"timerfd", "anon_inode:[timerfd]", FdKind::TimerFd, ""},
    {"inotify", "anon_inode:inotify", FdKind::Inotify, ""},
    {"memfd", "/memfd:NAME (deleted)", FdKind::Memfd, ""},
    {"unix socket", "socket:[N] (AF_UNIX)", FdKind::UnixSocket, ""},
    {"TCP or UDP socket", "socket:[N] (TCP, UDP, TCPv6, UDPv6)", FdKind::InetSocket, ""},
    {"pseudo-terminal master", "/dev/ptmx (both ends held in the tree)", FdKind::PtyMaster, ""},

    {"character device", "/dev/... (other character devices)", std::nullopt,
     "its driver keeps per-open state ckpt cannot save; not supported yet"},
    {"deleted device node", "/dev/... (deleted)", std::nullopt, kNotYet},
    {"block device", "/dev/...", std::nullopt, kNotYet},
    {"socket", "socket:[N] (other than AF_UNIX, TCP and UDP)", std::nullopt, kNotYet},
    {"hugetlb memfd", "/memfd:NAME (deleted) (on hugetlbfs)", std::nullopt, kNotYet},
    {"memfd_secret", "/secretmem (deleted)", std::nullopt,
     "its memory cannot be read from outside; not supported yet"},
    {"POSIX message queue", "/NAME (on the mqueue filesystem)", std::nullopt, kNotYet},
    {"namespace descriptor", "net:[N], mnt:[N], ... (nsfs)", std::nullopt, kNotYet},
    {"DMA buffer", "/dmabuf:NAME", std::nullopt, kNotYet},
    {"O_PATH descriptor of a symbolic link", "/path", std::nullopt, kNotYet},

    {"fanotify", "anon_inode:[fanotify]", std::nullopt, kNotYet},
    {"io_uring", "anon_inode:[io_uring]", std::nullopt, kNotYet},
    {"userfaultfd", "anon_inode:[userfaultfd]", std::nullopt, kNotYet},
    {"pidfd", "anon_inode:[pidfd]", std::nullopt, kNotYet},
    {"perf_event", "anon_inode:[perf_event]", std::nullopt, kNotYet},
    {"BPF map", "anon_inode:bpf-map", std::nullopt, kNotYet},
    {"BPF program", "anon_inode:bpf-prog", std::nullopt, kNotYet},
    {"BPF link", "anon_inode:bpf_link", std::nullopt, kNotYet},
    {"BPF iterator", "anon_inode:bpf_iter", std::nullopt, kNotYet},
    {"BPF token", "anon_inode:[bpf_token]", std::nullopt, kNotYet},
    {"seccomp notifier", "anon_inode:seccomp notify", std::nullopt, kNotYet},
    {"mount context", "anon_inode:[fscontext]", std::nullopt, kNotYet},
    {"Landlock ruleset", "anon_inode:[landlock-ruleset]", std::nullopt, kNotYet},
    {"sync_file", "anon_inode:sync_file", std::nullopt, kNotYet},
    {"VFIO device", "anon_inode:[vfio-device]", std::nullopt, kNotYet},
    {"iommufd", "anon_inode:[iommufd]", std::nullopt, kNotYet},
    {"KVM VM", "anon_inode:kvm-vm", std::nullopt, kNotYet},
    {"KVM vCPU", "anon_inode:kvm-vcpu:N", std::nullopt, kNotYet},
    {"KVM device", "anon_inode:kvm-DEVICE", std::nullopt, kNotYet},
    {"KVM guest memfd", "anon_inode:[kvm-gmem]", std::nullopt, kNotYet},
};

// Filesystem magics (linux/magic.h) the classification needs.
constexpr int64_t kMqueueMagic = 0x19800202;
constexpr int64_t kSecretmemMagic = 0x5345434d;
constexpr int64_t kNsfsMagic = 0x6e736673;
constexpr int64_t kDmaBufMagic = 0x444d4142;
constexpr int64_t kPidfsMagic = 0x50494446;
constexpr int64_t kHugetlbfsMagic = 0x958458f6;

const FdKindInfo* by_name(std::string_view name) {
    for (const auto& k : kFdKinds)
        if (k.name == name) return &k;
    return nullptr;  // not reached: every name used below is in the table
}

const FdKindInfo* anon_kind(std::string_view link) {
    for (const auto& k : kFdKinds) {
        if (!k.form.starts_with("anon_inode:")) continue;
        if (k.form == link) return &k;
    }
    // KVM names carry a number or the device type.
    if (link.starts_with("anon_inode:kvm-vcpu:")) return by_name("KVM vCPU");
    if (link.starts_with("anon_inode:kvm-")) return by_name("KVM device");
    return nullptr;
}

bool is_tty_major(unsigned major) {
    // 4: tty/console, 5: /dev/tty,/dev/console (5:2 is /dev/ptmx), 136-143: pty slaves
    return major == 4 || major == 5 || (major >= 136 && major <= 143);
}

// Memory devices without per-open state: reopening them gives the same thing.
bool is_stateless_mem_device(dev_t rdev) {
    if (major(rdev) != 1) return false;
    switch (minor(rdev)) {
        case 3:  // null
        case 5:  // zero
        case 7:  // full
        case 8:  // random
        case 9:  // urandom
            return true;
        default:
            return false;  // mem, kmem, port, kmsg (a read position per open)
    }
}

constexpr VmFlagInfo kVmFlags[] = {
    {"rd", VmFlagUse::Mapped, "readable"},
    {"wr", VmFlagUse::Mapped, "writable"},
    {"ex", VmFlagUse::Mapped, "executable"},
    {"sh", VmFlagUse::Mapped, "shared"},
    {"mr", VmFlagUse::Mapped, "may read"},
    {"mw", VmFlagUse::Mapped, "may write"},
    {"me", VmFlagUse::Mapped, "may execute"},
    {"ms", VmFlagUse::Mapped, "may share"},
    {"ac", VmFlagUse::Mapped, "accountable (private writable memory)"},
    {"gd", VmFlagUse::Saved, "grows down (stack)"},
    {"lo", VmFlagUse::Saved, "locked (mlock)"},
    {"dc", VmFlagUse::Saved, "not copied on fork (MADV_DONTFORK)"},
    {"wf", VmFlagUse::Saved, "wiped on fork (MADV_WIPEONFORK)"},
    {"dd", VmFlagUse::Saved, "not in core dumps (MADV_DONTDUMP)"},
    {"hg", VmFlagUse::Saved, "huge pages advised (MADV_HUGEPAGE)"},
    {"nh", VmFlagUse::Saved, "no huge pages (MADV_NOHUGEPAGE)"},
    {"nr", VmFlagUse::Saved, "swap space not reserved (MAP_NORESERVE)"},
    {"de", VmFlagUse::Pending, "not expandable by mremap"},
    {"mg", VmFlagUse::Saved, "mergeable by KSM (MADV_MERGEABLE)"},
    {"sr", VmFlagUse::Saved, "sequential read advised (MADV_SEQUENTIAL)"},
    {"rr", VmFlagUse::Saved, "random read advised (MADV_RANDOM)"},
    {"gu", VmFlagUse::Saved, "has guard regions (MADV_GUARD_INSTALL): recorded from pagemap, never read, installed again"},
    {"sd", VmFlagUse::Ignored, "soft-dirty (change tracking; a restored process starts afresh)"},
    {"lf", VmFlagUse::Saved, "locked on fault (mlock2 MLOCK_ONFAULT)"},
    {"pf", VmFlagUse::Refused, "page-frame mapping of device memory (VM_PFNMAP)"},
    {"io", VmFlagUse::Refused, "memory-mapped I/O (VM_IO)"},
    {"mm", VmFlagUse::Refused, "driver mixed mapping (VM_MIXEDMAP)"},
    {"ar", VmFlagUse::Refused, "architecture-specific (x86: PAT memory type)"},
    {"ht", VmFlagUse::Refused, "hugetlb pages"},
    {"sf", VmFlagUse::Refused, "synchronous page faults (MAP_SYNC on DAX)"},
    {"um", VmFlagUse::Refused, "userfaultfd missing-page tracking"},
    {"uw", VmFlagUse::Refused, "userfaultfd write-protect tracking"},
    {"ui", VmFlagUse::Refused, "userfaultfd minor-fault tracking"},
    {"ss", VmFlagUse::Refused, "shadow stack"},
    {"dp", VmFlagUse::Refused, "droppable (MAP_DROPPABLE)"},
    {"sl", VmFlagUse::Refused, "sealed (mseal)"},
    {"bt", VmFlagUse::Refused, "arm64 branch target identification"},
    {"mt", VmFlagUse::Refused, "arm64 memory tagging"},
};

// Mappings the kernel makes itself: recreated by the kernel or left alone by restore, so
// their flags (vvar is "pf io") say nothing about the program.
bool is_kernel_mapping(std::string_view path) {
    return path == "[vdso]" || path == "[vvar]" || path == "[vvar_vclock]" || path == "[vsyscall]";
}

std::vector<int> list_numbers(const std::string& dir) {
    std::vector<int> out;
    DIR* d = ::opendir(dir.c_str());
    if (!d) return out;  // the caller knows whether a missing directory matters
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        out.push_back(std::atoi(e->d_name));
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

// A /proc file of another process, or "" if it is gone (it may exit while we look).
std::string read_optional(const std::string& path) {
    try {
        return read_file(path);
    } catch (const Error&) {
        return {};
    }
}

// The value of "Key:" in a status file, or "" without one.
std::string_view status_value(std::string_view text, std::string_view key) {
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = text.find('\n', pos);
        if (end == std::string_view::npos) end = text.size();
        std::string_view line = text.substr(pos, end - pos);
        if (line.size() > key.size() && line.starts_with(key) && line[key.size()] == ':') {
            line.remove_prefix(key.size() + 1);
            while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
            return line;
        }
        pos = end + 1;
    }
    return {};
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
    std::string out;
    for (size_t i = 0; i < parts.size(); ++i) {
        if (i) out += sep;
        out += parts[i];
    }
    return out;
}

constexpr uint64_t kUserCs64 = 0x33;  // __USER_CS: 64-bit user code

class Audit {
  public:
    explicit Audit(const FrozenProcess& frozen) : pid_(frozen.pid()) {
        for (const auto& t : frozen.threads()) tids_.insert(t.tid);
    }

    // "" if the process can be saved, else one sentence naming it and every problem.
    std::string run() {
        // Nothing else is worth reading for a process ckpt cannot even talk to.
        architecture();
        if (!problems_.empty()) return fmt::format("process {} {}", pid_, join(problems_, "; and "));
        timers();
        locks();
        capabilities();
        namespaces();
        cgroup_membership();
        paths();
        fds();
        vmas();
        if (problems_.empty()) return {};
        return fmt::format("process {} {}", pid_, join(problems_, "; and "));
    }

  private:
    // The parasite, the restorer and every saved register assume x86_64 code in a 64-bit
    // process: an ia32 program (or a thread that switched to 32-bit code) and an x32 one
    // are refused before anything is injected.
    void architecture() {
        for (pid_t tid : tids_) {
            uint64_t cs = get_regs(tid).cs;
            if (cs != kUserCs64) {
                problems_.push_back(fmt::format("runs 32-bit code (thread {}, code segment {:#x}): ia32 "
                                                "programs are not supported", tid, cs));
                return;
            }
        }
        std::string exe = fmt::format("/proc/{}/exe", pid_);
        UniqueFd fd(::open(exe.c_str(), O_RDONLY | O_CLOEXEC));
        unsigned char ident[EI_NIDENT] = {};
        if (fd && ::pread(fd.get(), ident, sizeof ident, 0) == static_cast<ssize_t>(sizeof ident) &&
            std::memcmp(ident, ELFMAG, SELFMAG) == 0 && ident[EI_CLASS] != ELFCLASS64)
            problems_.push_back("is a 32-bit ELF program (ia32 or x32): not supported");
    }

    void timers() {
        auto timers = proc::parse_timers(read_file(fmt::format("/proc/{}/timers", pid_)));
        if (timers.empty()) return;
        if (timers.size() > parasite::kMaxTimers)
            problems_.push_back(fmt::format("has {} POSIX timers: more than the {} ckpt saves", timers.size(),
                                            parasite::kMaxTimers));
        // Restore makes them with their ids: PR_TIMER_CREATE_RESTORE_IDS (Linux 6.17).
        constexpr int kPrTimerCreateRestoreIds = 77, kGet = 2;
        if (::prctl(kPrTimerCreateRestoreIds, kGet, 0, 0, 0) < 0)
            problems_.push_back(fmt::format("has POSIX timers, which this kernel cannot make again with their ids "
                                            "(PR_TIMER_CREATE_RESTORE_IDS needs Linux 6.17): not supported here"));
    }

    static std::string lock_kind(std::string_view type) {
        if (type == "POSIX") return "POSIX record lock";
        if (type == "FLOCK") return "flock lock";
        if (type == "OFDLCK") return "OFD lock";
        if (type == "LEASE") return "lease";
        if (type == "DELEG") return "delegation";
        return std::string(type) + " lock";
    }

    // A line of /proc/locks or after "lock:" in fdinfo: "1: POSIX  ADVISORY  WRITE 1234 ...".
    static std::vector<std::string> lock_fields(std::string_view line) {
        std::vector<std::string> f;
        size_t i = 0;
        while (i < line.size()) {
            while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
            size_t j = i;
            while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
            if (j > i) f.emplace_back(line.substr(i, j - i));
            i = j;
        }
        return f;
    }

    // Whether the process maps the inode "maj:min:ino" (as /proc/locks names it).
    bool maps_inode(const std::string& name) {
        std::string maps = read_optional(fmt::format("/proc/{}/maps", pid_));
        size_t pos = 0;
        while (pos < maps.size()) {
            size_t end = maps.find('\n', pos);
            if (end == std::string::npos) end = maps.size();
            auto f = lock_fields(std::string_view(maps).substr(pos, end - pos));  // range perms offset dev inode path
            pos = end + 1;
            if (f.size() >= 5 && f[3] + ":" + f[4] == name) return true;
        }
        return false;
    }

    // Locks held through a descriptor are saved (files/file_locks.h), except leases and
    // delegations; /proc/locks adds locks still held through a mapping whose descriptor was
    // closed, which restore could not take again.
    void locks() {
        std::vector<std::string> found;
        std::set<std::string> seen_ids;  // "major:minor:inode type" held through an fd
        // Only descriptors on an inode some lock is on can show one (10,000 fds cost 10,000
        // reads otherwise).
        const std::set<std::string> locked = files::locked_inodes();
        for (int fd : locked.empty() ? std::vector<int>{} : list_numbers(fmt::format("/proc/{}/fdinfo", pid_))) {
            struct stat st;
            if (::stat(fmt::format("/proc/{}/fd/{}", pid_, fd).c_str(), &st) != 0 ||
                !locked.count(files::lock_inode_name(st.st_dev, st.st_ino)))
                continue;
            std::string info = read_optional(fmt::format("/proc/{}/fdinfo/{}", pid_, fd));
            size_t pos = 0;
            while ((pos = info.find("\nlock:", pos)) != std::string::npos) {
                pos += 6;
                size_t end = info.find('\n', pos);
                auto f = lock_fields(std::string_view(info).substr(pos, end == std::string::npos ? end : end - pos));
                pos = end == std::string::npos ? info.size() : end;
                if (f.size() < 6 || f[1] == "->") continue;  // a waiter, not a holder
                seen_ids.insert(f[5] + " " + f[1]);
                if (f[1] != "POSIX" && f[1] != "FLOCK" && f[1] != "OFDLCK")
                    found.push_back(fmt::format("{} on fd {}: not supported yet", lock_kind(f[1]), fd));
                else if (f[2] != "ADVISORY")
                    found.push_back(fmt::format("mandatory {} on fd {}: not supported", lock_kind(f[1]), fd));
            }
        }
        std::string all = read_optional("/proc/locks");
        size_t pos = 0;
        while (pos < all.size()) {
            size_t end = all.find('\n', pos);
            if (end == std::string::npos) end = all.size();
            auto f = lock_fields(std::string_view(all).substr(pos, end - pos));
            pos = end + 1;
            if (f.size() < 6 || f[1] == "->") continue;
            if (seen_ids.count(f[5] + " " + f[1])) continue;
            // OFD locks show no pid: one on an inode this process maps and holds no fd of may
            // be held through the mapping, by no telling whom. Refused.
            if (f[1] == "OFDLCK" && f[4] == "-1") {
                if (maps_inode(f[5]))
                    found.push_back(fmt::format("{} on inode {}, which it maps, through no descriptor: not supported yet",
                                                lock_kind(f[1]), f[5]));
                continue;
            }
            if (std::atoi(f[4].c_str()) != pid_) continue;
            // An flock belongs to a description, which a mapping may hold after its fd was
            // closed: saved with that mapping (files/file_locks.h). A POSIX lock cannot be.
            if (f[1] == "FLOCK" && maps_inode(f[5])) continue;
            found.push_back(fmt::format("{} on inode {} through no descriptor or mapping: not supported yet",
                                        lock_kind(f[1]), f[5]));
        }
        if (!found.empty()) problems_.push_back(fmt::format("holds file locks ckpt cannot save ({})", join(found, ", ")));
    }

    // Restore runs as ckpt does and only sets uids and gids, so the capability sets come out
    // as the kernel derives them from ckpt's own on setresuid()/setfsuid(). A target that
    // dropped capabilities would get them back: refused.
    void capabilities() {
        static constexpr std::string_view kSets[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"};
        std::string self = read_file("/proc/self/status");
        auto cap = [](std::string_view text, std::string_view key) {
            return std::strtoull(std::string(status_value(text, key)).c_str(), nullptr, 16);
        };
        // CAP_FS_MASK: what setfsuid() to a non-zero fsuid takes out of the effective set.
        constexpr uint64_t kFsMask = 0x1fULL | (1ULL << 9) | (1ULL << 27) | (1ULL << 32);
        std::vector<std::string> found;
        for (pid_t tid : tids_) {
            auto st = read_optional(fmt::format("/proc/{}/task/{}/status", pid_, tid));
            if (st.empty()) continue;
            const proc::Status status = proc::parse_status(st);
            const uint32_t* uids = status.uid;  // real, effective, saved, fs
            bool some_root = uids[0] == 0 || uids[1] == 0 || uids[2] == 0;
            uint64_t want[5] = {cap(self, "CapInh"), some_root ? cap(self, "CapPrm") : 0,
                                uids[1] == 0 ? cap(self, "CapEff") : 0, cap(self, "CapBnd"),
                                some_root ? cap(self, "CapAmb") : 0};
            if (uids[1] == 0 && uids[3] != 0) want[2] &= ~kFsMask;
            for (size_t i = 0; i < 5; ++i) {
                uint64_t have = cap(st, kSets[i]);
                if (have != want[i]) {
                    found.push_back(fmt::format("thread {}: {} {:016x}, restore would give {:016x}", tid, kSets[i],
                                                have, want[i]));
                    break;
                }
            }
        }
        if (!found.empty())
            problems_.push_back(fmt::format(
                "has capability sets restore would not give it back ({}): capabilities are not supported yet",
                join(found, "; ")));
    }

    // Restore puts back the cgroups of the whole process (cgroups/cgroups.h); a thread of its
    // own (cgroup v2 threaded mode, a v1 `tasks` write) would come back in the process's.
    void cgroup_membership() {
        std::string obstacle = cgroups::restore_obstacle(pid_);
        if (!obstacle.empty())
            problems_.push_back(obstacle + ": restore could not put it back there; not supported yet");
        std::vector<std::string> found;
        for (pid_t tid : tids_) {
            if (tid == pid_) continue;
            std::string diff = cgroups::thread_difference(pid_, tid);
            if (!diff.empty()) found.push_back(diff);
        }
        if (!found.empty())
            problems_.push_back(fmt::format(
                "has threads in other cgroups than the process ({}): per-thread cgroups are not supported yet",
                join(found, ", ")));
    }

    // Restore recreates the process in ckpt's own namespaces, so any other one would be
    // silently replaced. cgroup membership is saved (see cgroup_membership()).
    void namespaces() {
        static constexpr std::string_view kNames[] = {"net", "uts", "ipc", "pid", "pid_for_children", "mnt",
                                                      "time", "time_for_children", "user", "cgroup"};
        std::vector<std::string> found;
        for (auto name : kNames) {
            std::string mine;
            try {
                mine = read_link(fmt::format("/proc/self/ns/{}", name));
            } catch (const Error&) {
                continue;  // not in this kernel
            }
            for (pid_t tid : tids_) {
                std::string theirs;
                std::string path = fmt::format("/proc/{}/task/{}/ns/{}", pid_, tid, name);
                char buf[256];
                ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
                if (n > 0) {
                    theirs.assign(buf, static_cast<size_t>(n));
                } else if (errno == ENOENT && name.ends_with("_for_children")) {
                    // unshare(CLONE_NEWPID) made a namespace that has no process yet
                    theirs = "a new namespace without processes";
                } else {
                    fail_errno("cannot read {}", path);
                }
                if (theirs == mine) continue;
                found.push_back(tid == pid_ ? fmt::format("{} is {}, ckpt's is {}", name, theirs, mine)
                                            : fmt::format("{} of thread {} is {}, ckpt's is {}", name, tid, theirs,
                                                          mine));
                break;
            }
        }
        if (!found.empty())
            problems_.push_back(fmt::format("is in other namespaces than ckpt ({}): namespaces are not supported yet",
                                            join(found, ", ")));
    }

    // Restore reopens the executable and changes into cwd by path, and runs in ckpt's root:
    // a process whose executable or cwd was deleted, or that chrooted, cannot come back.
    void paths() {
        std::string exe = read_link(fmt::format("/proc/{}/exe", pid_));
        std::string cwd = read_link(fmt::format("/proc/{}/cwd", pid_));
        std::string root = read_link(fmt::format("/proc/{}/root", pid_));
        constexpr std::string_view kDeleted = " (deleted)";
        if (exe.ends_with(kDeleted))
            problems_.push_back(fmt::format("runs an executable that was deleted ({}): not supported yet", exe));
        if (cwd.ends_with(kDeleted))
            problems_.push_back(fmt::format("has a working directory that was deleted ({}): not supported yet", cwd));
        if (root != "/")
            problems_.push_back(fmt::format("has a changed root directory ({}, chroot): not supported yet", root));
        struct stat st;
        if (::stat(fmt::format("/proc/{}/exe", pid_).c_str(), &st) == 0) reachable("its executable", exe, st);
        if (::stat(fmt::format("/proc/{}/cwd", pid_).c_str(), &st) == 0) reachable("its working directory", cwd, st);
    }

    void fds() {
        for (int fd : list_numbers(fmt::format("/proc/{}/fd", pid_))) {
            std::string link = fmt::format("/proc/{}/fd/{}", pid_, fd);
            std::string target;
            struct stat st;
            struct statfs sfs;
            try {
                target = read_link(link);
            } catch (const Error&) {
                continue;  // closed meanwhile: cannot happen while frozen, unless by a child
            }
            if (::stat(link.c_str(), &st) != 0 || ::statfs(link.c_str(), &sfs) != 0)
                fail_errno("process {} fd {}: cannot stat {}", pid_, fd, target);
            const FdKindInfo* k = classify_fd(target, st, static_cast<int64_t>(sfs.f_type),
                                              S_ISSOCK(st.st_mode) ? socket_protocol(link) : std::string());
            if (!k)
                problems_.push_back(fmt::format("has fd {} ({}) of a kind ckpt does not know: refused", fd, target));
            else if (!k->saved_as)
                problems_.push_back(fmt::format("has fd {} ({}) of kind {}: {}", fd, target, k->name, k->why));
            else if (k->saved_as == FdKind::Fifo && target.ends_with(" (deleted)"))
                problems_.push_back(fmt::format("has fd {} ({}), a FIFO that was deleted: not supported yet", fd, target));
            else if (k->saved_as == FdKind::Regular || k->saved_as == FdKind::Directory || k->saved_as == FdKind::Fifo)
                reachable(fmt::format("fd {}", fd), target, st);
        }
    }

    // Restore reopens files, the executable and the working directory by path: if the path
    // leads elsewhere now (a directory mounted over, a name taken by another file while this
    // one still has links) the restore would open the wrong file or fail, after a default
    // dump has killed the process. Unlinked files are saved by content and exempt.
    void reachable(const std::string& what, const std::string& path, const struct stat& open) {
        if (path.ends_with(" (deleted)") || !path.starts_with("/")) return;
        struct stat now;
        if (::stat(path.c_str(), &now) != 0 || now.st_dev != open.st_dev || now.st_ino != open.st_ino)
            problems_.push_back(fmt::format("has {} open on {}, which that path no longer leads to (mounted "
                                            "over, or moved): restore could not reopen it", what, path));
    }

    void vmas() {
        std::string maps = read_file(fmt::format("/proc/{}/maps", pid_));
        auto entries = proc::parse_maps(maps);
        auto flags = proc::parse_smaps_vmflags(frozen_smaps(pid_));
        for (const auto& m : entries) {
            if (is_kernel_mapping(m.path)) continue;
            auto it = flags.find(m.start);
            if (it == flags.end()) continue;
            for (const auto& code : it->second) {
                const VmFlagInfo* f = classify_vm_flag(code);
                std::string where = fmt::format("has mapping {:x}-{:x} {}", m.start, m.end,
                                                m.path.empty() ? "(anonymous)" : m.path);
                if (!f)
                    problems_.push_back(fmt::format("{} with VMA flag '{}' that ckpt does not know: refused", where,
                                                    code));
                else if (f->use == VmFlagUse::Refused)
                    problems_.push_back(fmt::format("{} with VMA flag '{}' ({}): not supported yet", where, code,
                                                    f->meaning));
            }
        }
    }

    pid_t pid_;
    std::set<pid_t> tids_;
    std::vector<std::string> problems_;
};

}  // namespace

std::span<const FdKindInfo> fd_kinds() { return kFdKinds; }

std::string socket_protocol(const std::string& proc_fd_path) {
    char buf[64] = {};
    ssize_t n = ::getxattr(proc_fd_path.c_str(), "system.sockprotoname", buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, ::strnlen(buf, static_cast<size_t>(n))) : std::string();
}

const FdKindInfo* classify_fd(std::string_view link, const struct stat& st, int64_t fs_magic, std::string_view sock_proto) {
    if (link.starts_with("anon_inode:")) return anon_kind(link);
    if (fs_magic == kPidfsMagic) return by_name("pidfd");
    if (fs_magic == kNsfsMagic) return by_name("namespace descriptor");
    if (fs_magic == kMqueueMagic) return by_name("POSIX message queue");
    if (fs_magic == kSecretmemMagic) return by_name("memfd_secret");
    if (fs_magic == kDmaBufMagic) return by_name("DMA buffer");
    switch (st.st_mode & S_IFMT) {
        case S_IFREG:
            if (link.starts_with("/memfd:")) return by_name(fs_magic == kHugetlbfsMagic ? "hugetlb memfd" : "memfd");
            return by_name(st.st_nlink == 0 ? "unlinked file" : "regular file");
        case S_IFDIR: return by_name("directory");
        case S_IFCHR:
            if (link.ends_with(" (deleted)")) return by_name("deleted device node");
            if (major(st.st_rdev) == 5 && minor(st.st_rdev) == 2) return by_name("pseudo-terminal master");
            if (is_tty_major(major(st.st_rdev))) return by_name("terminal");
            if (is_stateless_mem_device(st.st_rdev)) return by_name("memory device");
            return by_name("character device");
        case S_IFBLK: return by_name("block device");
        case S_IFSOCK:
            if (sock_proto.starts_with("UNIX")) return by_name("unix socket");
            if (sock_proto == "TCP" || sock_proto == "TCPv6" || sock_proto == "UDP" || sock_proto == "UDPv6")
                return by_name("TCP or UDP socket");
            return by_name("socket");
        case S_IFIFO: return by_name(link.starts_with("pipe:[") ? "pipe" : "FIFO");
        case S_IFLNK: return by_name("O_PATH descriptor of a symbolic link");
        default: return nullptr;
    }
}

std::span<const VmFlagInfo> vm_flags() { return kVmFlags; }

const VmFlagInfo* classify_vm_flag(std::string_view code) {
    for (const auto& f : kVmFlags)
        if (f.code == code) return &f;
    return nullptr;
}

namespace {

// The ids the session/group check looks at, one per process of the tree (zombies too).
struct TreeIds {
    pid_t pid, ppid, pgid, sid;
    uint32_t ctty;  // tty_nr
};

// What restore can rebuild of sessions and process groups: each process is created by its
// parent, which has already taken its own session and group. A process can then start a
// session (setsid), start a group (setpgid(0, 0)), keep its parent's, or join a group of
// its session whose leader was created before it. A session or group whose leader has
// exited (a daemon's double fork) would need helper processes: refused.
// Controlling terminals: a session leader takes one back only if it is a pty pair of the
// tree (`tree_ptys`, by index); any other process inherits its parent's, or has given it up.
void check_ids(const std::vector<TreeIds>& ids, const std::set<int>& tree_ptys, std::vector<std::string>& problems) {
    auto find = [&](pid_t pid) -> const TreeIds* {
        for (const auto& e : ids)
            if (e.pid == pid) return &e;
        return nullptr;
    };
    for (size_t i = 1; i < ids.size(); ++i) {
        const TreeIds& p = ids[i];
        // The root's is checked at restore: --shell-job gives it ckpt's terminal.
        if (p.sid == p.pid && p.ctty != 0 && !tree_ptys.count(files::pty_slave_index(p.ctty)))
            problems.push_back(fmt::format("process {} leads a session whose controlling terminal is tty {}:{}, "
                                           "which is no pty pair of the tree: giving it back is not supported",
                                           p.pid, ::major(p.ctty), ::minor(p.ctty)));
        const TreeIds* parent = find(p.ppid);
        if (!parent) continue;  // not reached: every process but the root has its parent in the tree
        if (p.sid != p.pid && p.ctty != 0 && p.ctty != parent->ctty)
            problems.push_back(fmt::format("process {} has controlling terminal {}:{}, which its parent {} has not: "
                                           "not supported", p.pid, ::major(p.ctty), ::minor(p.ctty), parent->pid));
        // A session whose leader has exited (a daemon's double fork) is started again by a
        // helper with the leader's pid that creates the members it had handed to their
        // parent (a child subreaper): they must all have that one parent.
        bool session_lost = p.sid != ids[0].sid && !find(p.sid);
        if (p.sid != p.pid && p.sid != parent->sid) {
            bool one_parent = std::all_of(ids.begin(), ids.end(), [&](const TreeIds& q) {
                const TreeIds* qp = find(q.ppid);
                return q.sid != p.sid || (qp && qp->sid == p.sid) || q.ppid == p.ppid;
            });
            if (!session_lost)
                problems.push_back(fmt::format("process {} is in session {} but its parent {} in session {}, and "
                                               "the session's leader is still in the tree: not supported yet",
                                               p.pid, p.sid, parent->pid, parent->sid));
            else if (!one_parent)
                problems.push_back(fmt::format("process {} is in session {}, whose leader has exited, with members "
                                               "handed to different parents: not supported yet", p.pid, p.sid));
        }
        if (p.pgid == p.pid || p.pgid == parent->pgid || (session_lost && p.pgid == p.sid)) continue;
        bool ok = false;
        for (size_t j = 0; j < i; ++j)
            ok = ok || (ids[j].pid == p.pgid && ids[j].pgid == p.pgid && ids[j].sid == p.sid);
        // A group whose leader has exited is made again by a helper with the leader's pid,
        // made by the members' parent in its session: they must all have that one parent.
        bool leader_exited = p.pgid != ids[0].pgid && !find(p.pgid);
        bool one_parent = std::all_of(ids.begin(), ids.end(), [&](const TreeIds& q) {
            return q.pgid != p.pgid || (q.ppid == p.ppid && q.sid == parent->sid);
        });
        if (leader_exited && !one_parent)
            problems.push_back(fmt::format("process {} is in process group {}, whose leader has exited, with "
                                           "members of other parents or sessions: not supported yet", p.pid, p.pgid));
        else if (!ok && !leader_exited)
            problems.push_back(fmt::format("process {} is in process group {}, whose leader is not a process of "
                                           "the tree created before it: not supported yet", p.pid, p.pgid));
    }
}

// Resources the kernel can share between processes beyond what fork() shares: a child made
// with clone(CLONE_FILES / CLONE_FS / CLONE_SIGHAND) and no CLONE_THREAD.
void check_clone_sharing(const FrozenTree& tree, std::vector<std::string>& problems) {
    const auto& procs = tree.processes();
    static constexpr struct {
        int type;
        const char* what;
    } kKinds[] = {{KCMP_FILES, "descriptor table (CLONE_FILES)"},
                  {KCMP_FS, "root, cwd and umask (CLONE_FS)"},
                  {KCMP_SIGHAND, "signal handlers (CLONE_SIGHAND)"},
                  {KCMP_VM, "memory (CLONE_VM)"}};
    for (size_t i = 0; i < procs.size(); ++i)
        for (size_t j = i + 1; j < procs.size(); ++j)
            for (const auto& k : kKinds)
                if (::syscall(SYS_kcmp, procs[i]->pid(), procs[j]->pid(), k.type, 0, 0) == 0)
                    problems.push_back(fmt::format("processes {} and {} share one {}: not supported yet",
                                                   procs[i]->pid(), procs[j]->pid(), k.what));
}

}  // namespace

// Tracees of any thread of the tree, found among every task of the system.
void check_tracees(const FrozenTree& tree, std::vector<std::string>& problems) {
    std::map<pid_t, pid_t> tids;  // thread -> its process
    for (const auto& p : tree.processes())
        for (const auto& t : p->threads()) tids[t.tid] = p->pid();
    std::map<pid_t, std::vector<std::string>> found;  // by tracing process
    for (int p : list_numbers("/proc")) {
        for (int t : list_numbers(fmt::format("/proc/{}/task", p))) {
            auto st = read_optional(fmt::format("/proc/{}/task/{}/status", p, t));
            int tracer = std::atoi(std::string(status_value(st, "TracerPid")).c_str());
            auto it = tids.find(tracer);
            if (tracer != 0 && it != tids.end())
                found[it->second].push_back(t == p ? fmt::format("process {}", p)
                                                   : fmt::format("thread {} of process {}", t, p));
        }
    }
    for (const auto& [pid, tracees] : found)
        problems.push_back(fmt::format("process {} traces {} with ptrace: ptrace relations are not supported yet",
                                       pid, join(tracees, ", ")));
}

void audit(const FrozenTree& tree) {
    std::vector<std::string> problems;
    for (const auto& p : tree.processes()) {
        std::string why = Audit(*p).run();
        if (!why.empty()) problems.push_back(std::move(why));
    }
    std::vector<TreeIds> ids;
    for (pid_t pid : tree.pids()) {
        auto st = proc::parse_stat(read_file(fmt::format("/proc/{}/stat", pid)));
        ids.push_back({pid, st.ppid, st.pgrp, st.session, st.tty_nr});
    }
    check_ids(ids, files::pty_masters_held(tree.pids()), problems);
    check_tracees(tree, problems);
    check_clone_sharing(tree, problems);
    if (!problems.empty()) fail("{}", join(problems, "; "));
}

}  // namespace ckpt::tracer
