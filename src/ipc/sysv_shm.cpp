#include "ipc/sysv_shm.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <unistd.h>

#include <set>
#include <sstream>
#include <string>

#include "common/error.h"
#include "common/fd.h"
#include "common/fs.h"
#include "common/log.h"
#include "restore/restorer_args.h"
#include "tracer/files_dump.h"

namespace ckpt::ipc {

namespace {

constexpr const char* kNextId = "/proc/sys/kernel/shm_next_id";
constexpr uint32_t kShmDest = 01000, kShmLocked = 02000;  // in /proc/sysvipc/shm perms

struct SegmentInfo {
    int key = 0;
    unsigned perms = 0;
    uint64_t size = 0;
    long nattch = 0;
    unsigned uid = 0, gid = 0;
};

std::map<int, SegmentInfo> read_segments() {
    std::map<int, SegmentInfo> out;
    std::istringstream in(read_file("/proc/sysvipc/shm"));
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
        // key shmid perms size cpid lpid nattch uid gid cuid cgid atime dtime ctime rss swap
        std::istringstream l(line);
        SegmentInfo s;
        int id;
        long cpid, lpid;
        std::string perms;
        if (!(l >> s.key >> id >> perms >> s.size >> cpid >> lpid >> s.nattch >> s.uid >> s.gid)) continue;
        s.perms = static_cast<unsigned>(std::stoul(perms, nullptr, 8));
        out[id] = s;
    }
    return out;
}

// Sets the id the next shmget() takes. The kernel forgets it once a segment took it, and
// the sysctl cannot be written back to "any" (-1): if the shmget failed, a scratch segment
// takes the id instead, so that no later shmget of anyone gets it by surprise.
class NextId {
  public:
    explicit NextId(int id) {
        UniqueFd fd(::open(kNextId, O_WRONLY | O_CLOEXEC));
        std::string v = std::to_string(id);
        if (!fd || ::write(fd.get(), v.data(), v.size()) != static_cast<ssize_t>(v.size()))
            fail_errno("cannot set {} to {} (System V shared memory ids are kept through it)", kNextId, v);
    }
    ~NextId() {
        try {
            if (std::stoi(read_file(kNextId)) < 0) return;
        } catch (const std::exception&) {
        }
        int scratch = ::shmget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
        if (scratch >= 0) ::shmctl(scratch, IPC_RMID, nullptr);
        else log::error("{} is still set: the next System V shared memory segment made gets that id", kNextId);
    }
};

}  // namespace

std::vector<image::SysvShm> dump_sysv_shm(const std::vector<std::pair<pid_t, std::vector<image::Vma>*>>& tree_vmas,
                                          image::ImageWriter& out) {
    std::map<int, long> attaches;  // VMAs of the tree per segment (the kernel counts VMAs in nattch)
    for (const auto& [pid, vmas] : tree_vmas)
        for (const auto& v : *vmas)
            if (v.kind == image::VmaKind::SysvShm) ++attaches[static_cast<int>(v.ino)];
    if (attaches.empty()) return {};
    auto segments = read_segments();
    std::vector<image::SysvShm> saved;
    std::set<int> done;
    for (const auto& [pid, vmas] : tree_vmas) {
        for (const auto& v : *vmas) {
            if (v.kind != image::VmaKind::SysvShm) continue;
            const int id = static_cast<int>(v.ino);
            if (!done.insert(id).second) continue;
            auto it = segments.find(id);
            if (it == segments.end())
                fail("process {}: System V shared memory segment {} mapped at {:#x} is not in /proc/sysvipc/shm", pid, id,
                     v.start);
            const SegmentInfo& info = it->second;
            if (info.nattch != attaches[id])
                fail("process {}: System V shared memory segment {} (key {:#x}) is also attached outside the dumped "
                     "tree ({} attaches, {} in the tree): not supported yet",
                     pid, id, static_cast<uint32_t>(info.key), info.nattch, attaches[id]);
            std::string link = fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, v.start, v.end);
            UniqueFd f(::open(link.c_str(), O_RDONLY | O_CLOEXEC));
            if (!f) fail_errno("process {}: cannot open System V shared memory segment {}", pid, id);
            image::SysvShm s;
            s.id = id;
            s.key = info.key;
            s.size = info.size;
            s.mode = info.perms & 0777;
            s.destroyed = (info.perms & kShmDest) != 0;
            s.locked = (info.perms & kShmLocked) != 0;
            s.uid = info.uid;
            s.gid = info.gid;
            tracer::SavedContent c = tracer::save_content(
                f.get(), info.size, fmt::format("System V shared memory segment {} (process {})", id, pid), out, true);
            if (c.size != info.size) fail("System V shared memory segment {} changed size while being saved", id);
            s.data_offset = c.data_offset;
            s.checksum = c.checksum;
            s.extents = std::move(c.extents);
            saved.push_back(std::move(s));
        }
    }
    return saved;
}

void remove_dumped_segments(const std::vector<image::SysvShm>& segments) {
    for (const auto& s : segments)
        if (::shmctl(s.id, IPC_RMID, nullptr) != 0 && errno != EINVAL && errno != EIDRM)
            log::error("could not remove System V shared memory segment {}: {}", s.id, errno_text(errno));
}

SysvShmSegments::SysvShmSegments(const image::Image& img, int data_fd) : img_(img) {
    try {
        for (const auto& s : img.sysv_shms) {
            shmid_ds ds{};
            if (::shmctl(s.id, IPC_STAT, &ds) == 0)
                fail("System V shared memory id {} is in use (key {:#x}): cannot make segment {} again", s.id,
                     static_cast<uint32_t>(ds.shm_perm.__key), s.id);
            if (s.key != IPC_PRIVATE && !s.destroyed) {
                int other = ::shmget(s.key, 0, 0);
                if (other >= 0)
                    fail("System V shared memory key {:#x} is in use (segment {}): cannot make segment {} again",
                         static_cast<uint32_t>(s.key), other, s.id);
            }
            int id;
            {
                NextId next(s.id);
                id = ::shmget(s.destroyed ? IPC_PRIVATE : s.key, s.size, IPC_CREAT | IPC_EXCL | 0600);
            }
            if (id < 0) fail_errno("cannot make System V shared memory segment {} ({} bytes)", s.id, s.size);
            made_.push_back(id);
            if (id != s.id) fail("System V shared memory segment {} came back as {} (its id was taken meanwhile)", s.id, id);
            void* p = ::shmat(id, nullptr, 0);
            if (p == reinterpret_cast<void*>(-1)) fail_errno("cannot attach System V shared memory segment {}", id);
            try {
                uint64_t src = s.data_offset;
                for (const auto& e : s.extents) {
                    pread_exact(data_fd, static_cast<char*>(p) + e.offset, e.length, src, "data.img");
                    src += e.length;
                }
            } catch (...) {
                ::shmdt(p);
                throw;
            }
            ::shmdt(p);
            if (::shmctl(id, IPC_STAT, &ds) != 0) fail_errno("cannot read System V shared memory segment {}", id);
            ds.shm_perm.uid = s.uid;
            ds.shm_perm.gid = s.gid;
            ds.shm_perm.mode = static_cast<unsigned short>(s.mode);
            if (::shmctl(id, IPC_SET, &ds) != 0)
                fail_errno("cannot give System V shared memory segment {} its owner {}:{} and mode {:o}", id, s.uid, s.gid,
                           s.mode);
            if (s.locked && ::shmctl(id, SHM_LOCK, nullptr) != 0)
                fail_errno("cannot lock System V shared memory segment {} in memory", id);
        }
    } catch (...) {
        for (int id : made_) ::shmctl(id, IPC_RMID, nullptr);
        made_.clear();
        throw;
    }
}

SysvShmSegments::~SysvShmSegments() {
    if (committed_) return;
    for (int id : made_) ::shmctl(id, IPC_RMID, nullptr);
}

void SysvShmSegments::commit() {
    committed_ = true;
    for (const auto& s : img_.sysv_shms)
        if (s.destroyed && ::shmctl(s.id, IPC_RMID, nullptr) != 0)
            log::error("could not remove System V shared memory segment {} again: {}", s.id, errno_text(errno));
}

std::map<uint64_t, uint64_t> attach_sysv_shm(const image::Image& img, pid_t pid,
                                             const std::vector<std::pair<uint64_t, uint64_t>>& used) {
    // One attach per (segment, address it was attached at); its VMAs are the pieces left of it.
    std::map<std::pair<int, uint64_t>, std::vector<const image::Vma*>> attaches;
    for (const auto& v : img.vmas)
        if (v.pid == pid && v.kind == image::VmaKind::SysvShm)
            attaches[{static_cast<int>(v.ino), v.start - v.pgoff}].push_back(&v);
    std::map<uint64_t, uint64_t> where;
    for (const auto& [key, pieces] : attaches) {
        const int id = key.first;
        const image::SysvShm* seg = nullptr;
        for (const auto& s : img.sysv_shms)
            if (s.id == id) seg = &s;
        if (!seg) fail("the image has no System V shared memory segment {} for the mapping at {:#x}", id, pieces[0]->start);
        // Attached read-only, the pieces lack "mw" (VM_MAYWRITE); the stub sets each one's protection.
        bool writable = false;
        for (const auto* v : pieces) writable |= (" " + v->vmflags + " ").find(" mw ") != std::string::npos;
        const uint64_t len = (seg->size + image::kPageSize - 1) & ~(image::kPageSize - 1);
        uint64_t at = restore::map_in_gap(used, len, 0, PROT_NONE);
        void* p = ::shmat(id, reinterpret_cast<void*>(at), SHM_REMAP | (writable ? 0 : SHM_RDONLY));
        if (p != reinterpret_cast<void*>(at)) {
            ::munmap(reinterpret_cast<void*>(at), len);
            fail_errno("cannot attach System V shared memory segment {}", id);
        }
        for (const auto* v : pieces) {
            if (v->pgoff + (v->end - v->start) > len)
                fail("image is corrupt: the mapping at {:#x} lies beyond System V shared memory segment {}", v->start, id);
            where[v->start] = at + v->pgoff;
        }
    }
    return where;
}

}  // namespace ckpt::ipc
