#include "image/reader.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <tuple>

#include "common/error.h"
#include "common/fs.h"
#include "image/codec.h"
#include "image/image_dir.h"

namespace ckpt::image {

namespace {

template <typename Rec>
void decode_into(std::vector<Rec>& out, const std::string& payload) {
    out.push_back(decode<Rec>(payload));
}

void check_preamble(const Preamble& pre, const char (&magic)[8], const std::string& path) {
    if (std::memcmp(pre.magic, magic, sizeof magic) != 0)
        fail("{} is not a ckpt image file (bad magic)", path);
    if (pre.version != kFormatVersion)
        fail("{} has image format version {}, this ckpt reads version {}", path, pre.version,
             kFormatVersion);
}

// Says why DIR is not a readable image directory, in the user's terms.
void check_image_dir(const std::string& dir) {
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0) {
        if (errno == ENOENT) fail("cannot open image directory {}: no such directory", dir);
        fail_errno("cannot open image directory {}", dir);
    }
    if (!S_ISDIR(st.st_mode)) fail("cannot open image directory {}: not a directory", dir);
    std::string meta_path = dir + "/" + kMetaFile;
    if (::access(meta_path.c_str(), R_OK) == 0) return;
    if (errno != ENOENT) fail_errno("cannot read {}", meta_path);
    std::string partial = dir + "/" + kMetaPartial;
    std::string why;
    if (::access(partial.c_str(), F_OK) == 0) {
        // a dump holds the lock file for its whole life (image_dir.h)
        UniqueFd lk(::open((dir + "/" + kLockFile).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
        if (lk && ::flock(lk.get(), LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK)
            why = "; partial files of an unfinished dump are there: a dump is writing it now";
        else
            why = "; partial files of an unfinished dump are there: it was interrupted, the next "
                  "dump into the directory removes them";
    }
    fail("{} holds no complete image ({} is missing{})", dir, kMetaFile, why);
}

// The image id a data file carries after its preamble.
uint64_t data_image_id(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) fail_errno("cannot open {}", path);
    char head[sizeof(Preamble) + 8];
    pread_exact(fd.get(), head, sizeof head, 0, path);
    Preamble pre;
    std::memcpy(&pre, head, sizeof pre);
    check_preamble(pre, kDataMagic, path);
    uint64_t id;
    std::memcpy(&id, head + sizeof pre, sizeof id);
    return id;
}

// The content of a file saved in data.img: extents ascending, inside the file, and their
// bytes inside data.img. `what` names the fd or mapping.
void check_content(uint64_t size, uint64_t data_offset, const std::vector<FileExtent>& extents,
                   uint64_t data_size, const std::string& dir, const std::string& what) {
    uint64_t stored = 0, end = 0;
    for (const auto& e : extents) {
        if (e.offset < end || e.length > size || e.offset > size - e.length || e.length > data_size - stored)
            fail("{} is corrupt: extents of the unlinked file of {} overlap or overflow", dir, what);
        end = e.offset + e.length;
        stored += e.length;
    }
    if (data_offset < kDataHeaderSize || data_offset > data_size || stored > data_size - data_offset)
        fail("{} is corrupt: content of {} points outside data.img", dir, what);
}

// Every event descriptor has the one state record of its kind, and every epoll target
// names an epoll and a description its registering process holds.
void check_event_records(const Image& img, const std::string& dir) {
    std::map<uint32_t, FdKind> kind_of;                 // file_id -> kind
    std::set<std::pair<int32_t, uint32_t>> held;        // (pid, file_id)
    for (const auto& f : img.fds) {
        kind_of.emplace(f.file_id, f.kind);
        held.insert({f.pid, f.file_id});
    }
    std::map<uint32_t, int> states;
    auto count = [&](uint32_t id, FdKind want, const char* rec) {
        auto k = kind_of.find(id);
        if (k == kind_of.end() || k->second != want)
            fail("{} is corrupt: a {} record names file {}, which is no descriptor of that kind", dir, rec, id);
        if (++states[id] > 1) fail("{} is corrupt: two {} records for file {}", dir, rec, id);
    };
    for (const auto& r : img.eventfds) count(r.file_id, FdKind::EventFd, "EventFd");
    for (const auto& r : img.signalfds) count(r.file_id, FdKind::SignalFd, "SignalFd");
    for (const auto& r : img.timerfds) count(r.file_id, FdKind::TimerFd, "TimerFd");
    for (const auto& f : img.fds)
        if ((f.kind == FdKind::EventFd || f.kind == FdKind::SignalFd || f.kind == FdKind::TimerFd) &&
            !states.count(f.file_id))
            fail("{} is corrupt: fd {} of process {} ({}) has no record of its state", dir, f.fd, f.pid, f.path);
    for (const auto& t : img.epoll_targets) {
        auto k = kind_of.find(t.file_id);
        if (k == kind_of.end() || k->second != FdKind::Epoll || !held.count({t.pid, t.file_id}) ||
            !held.count({t.pid, t.target_file_id}) || t.tfd < 0)
            fail("{} is corrupt: epoll target fd {} of file {} names an epoll or target process {} does not hold",
                 dir, t.tfd, t.file_id, t.pid);
    }
    std::map<uint32_t, const UnixSocket*> socket_of;
    std::set<uint64_t> socket_inos;
    for (const auto& r : img.unix_sockets) {
        auto k = kind_of.find(r.file_id);
        if (k == kind_of.end() || k->second != FdKind::UnixSocket || !socket_of.emplace(r.file_id, &r).second)
            fail("{} is corrupt: a UnixSocket record names file {}, which is no unix socket (or has two records)", dir,
                 r.file_id);
        socket_inos.insert(r.ino);
    }
    for (const auto& r : img.unix_sockets)
        if (r.peer_ino && !socket_inos.count(r.peer_ino))
            fail("{} is corrupt: unix socket:[{}] has its peer socket:[{}] missing", dir, r.ino, r.peer_ino);
    for (const auto& f : img.fds)
        if (f.kind == FdKind::UnixSocket && !socket_of.count(f.file_id))
            fail("{} is corrupt: fd {} of process {} is a unix socket without a record", dir, f.fd, f.pid);
    std::set<uint32_t> inet_ids;
    for (const auto& r : img.inet_sockets) {
        auto k = kind_of.find(r.file_id);
        if (k == kind_of.end() || k->second != FdKind::InetSocket || !inet_ids.insert(r.file_id).second ||
            r.local.size() > 128 || r.peer.size() > 128)
            fail("{} is corrupt: an InetSocket record names file {}, which is no TCP/UDP socket (or has two)", dir, r.file_id);
    }
    for (const auto& f : img.fds)
        if (f.kind == FdKind::InetSocket && !inet_ids.count(f.file_id))
            fail("{} is corrupt: fd {} of process {} is a TCP/UDP socket without a record", dir, f.fd, f.pid);
    std::set<uint32_t> pty_ids, pty_indices;
    for (const auto& r : img.ptys) {
        auto k = kind_of.find(r.file_id);
        if (k == kind_of.end() || k->second != FdKind::PtyMaster || !pty_ids.insert(r.file_id).second ||
            !pty_indices.insert(r.index).second || r.termios.size() != 44 || r.winsize.size() != 8)
            fail("{} is corrupt: a Pty record names file {} (pty {}), which is no pty master (or has two)", dir,
                 r.file_id, r.index);
    }
    for (const auto& f : img.fds) {
        if (f.kind == FdKind::PtyMaster && !pty_ids.count(f.file_id))
            fail("{} is corrupt: fd {} of process {} is a pty master without a record", dir, f.fd, f.pid);
        if (f.kind == FdKind::PtySlave &&
            std::none_of(img.ptys.begin(), img.ptys.end(),
                         [&](const Pty& p) { return f.path == fmt::format("/dev/pts/{}", p.index); }))
            fail("{} is corrupt: fd {} of process {} is {}, a pty slave whose pair the image does not have", dir,
                 f.fd, f.pid, f.path);
    }
    std::set<std::pair<uint32_t, int32_t>> wds;
    for (const auto& w : img.inotify_watches) {
        auto k = kind_of.find(w.file_id);
        if (k == kind_of.end() || k->second != FdKind::Inotify || w.wd <= 0 || !wds.insert({w.file_id, w.wd}).second)
            fail("{} is corrupt: inotify watch {} names file {}, which is no inotify (or has it twice)", dir, w.wd,
                 w.file_id);
    }
    std::set<std::tuple<int32_t, int32_t, uint32_t>> fd_of;  // (pid, fd, file_id)
    for (const auto& f : img.fds) fd_of.insert({f.pid, f.fd, f.file_id});
    std::set<std::pair<int32_t, uint64_t>> vma_at;
    for (const auto& v : img.vmas) vma_at.insert({v.pid, v.start});
    for (const auto& l : img.file_locks) {
        bool through_fd = l.vma_start == 0 && fd_of.count({l.pid, l.fd, l.file_id});
        bool through_mapping = l.vma_start != 0 && l.fd == -1 && l.kind != FileLockKind::Posix && vma_at.count({l.pid, l.vma_start});
        if ((!through_fd && !through_mapping) || static_cast<uint32_t>(l.kind) > 2 || l.write > 1 || l.end < l.start)
            fail("{} is corrupt: a file lock names fd {} (or a mapping at {:#x}) of process {}, which the image does not have",
                 dir, l.fd, l.vma_start, l.pid);
    }
}

}  // namespace

uint64_t meta_image_id(const std::string& dir) {
    std::string path = dir + "/" + kMetaFile;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) fail_errno("cannot open {}", path);
    Preamble pre;
    RecordHeader h;
    pread_exact(fd.get(), &pre, sizeof pre, 0, path);
    check_preamble(pre, kMetaMagic, path);
    pread_exact(fd.get(), &h, sizeof h, sizeof pre, path);
    if (h.type != static_cast<uint32_t>(RecordType::Header) || h.payload_size > 65536)
        fail("{} is corrupt: first record is not a Header", path);
    std::string payload(h.payload_size, '\0');
    pread_exact(fd.get(), payload.data(), payload.size(), sizeof pre + sizeof h, path);
    if (payload_checksum(RecordType::Header, payload.data(), payload.size()) != h.checksum)
        fail("{} is corrupt: checksum mismatch in its Header record", path);
    return decode<Header>(payload).image_id;
}

std::string data_file_for(const std::string& dir, uint64_t image_id) {
    std::string data = dir + "/" + kDataFile;
    std::string old = dir + "/" + kDataOld;
    if (::access(old.c_str(), F_OK) != 0) return data;
    try {
        if (data_image_id(data) == image_id) return data;
    } catch (const Error&) {
    }
    try {
        if (data_image_id(old) == image_id) return old;
    } catch (const Error&) {
    }
    return data;
}

Image read_image(const std::string& dir) {
    check_image_dir(dir);
    std::string meta_path = dir + "/" + kMetaFile;
    std::string meta = read_file(meta_path);

    if (meta.size() < sizeof(Preamble)) fail("{} is truncated (no preamble)", meta_path);
    Preamble pre;
    std::memcpy(&pre, meta.data(), sizeof pre);
    check_preamble(pre, kMetaMagic, meta_path);

    Image img;
    size_t pos = sizeof pre;
    uint64_t index = 0;
    bool have_end = false;
    while (pos < meta.size()) {
        if (have_end) fail("{}: data after the End record (offset {})", meta_path, pos);
        if (meta.size() - pos < sizeof(RecordHeader))
            fail("{} is truncated (partial record header at offset {})", meta_path, pos);
        RecordHeader h;
        std::memcpy(&h, meta.data() + pos, sizeof h);
        pos += sizeof h;
        auto type = static_cast<RecordType>(h.type);
        if (h.payload_size > kMaxPayload || h.payload_size > meta.size() - pos)
            fail("{} is truncated or corrupt (record {} claims {} bytes at offset {})",
                 meta_path, index, h.payload_size, pos);
        std::string payload = meta.substr(pos, h.payload_size);
        if (payload_checksum(type, payload.data(), payload.size()) != h.checksum)
            fail("{} is corrupt: checksum mismatch in record {} ({}) at offset {}", meta_path,
                 index, record_name(type), pos);
        pos += h.payload_size;
        if (index == 0 && type != RecordType::Header)
            fail("{} is corrupt: first record is not a Header", meta_path);
        switch (type) {
            case RecordType::Header:
                if (index != 0) fail("{} is corrupt: second Header record", meta_path);
                img.header = decode<Header>(payload);
                break;
            case RecordType::Process: decode_into(img.processes, payload); break;
            case RecordType::Thread: decode_into(img.threads, payload); break;
            case RecordType::Vma: decode_into(img.vmas, payload); break;
            case RecordType::PageRun: decode_into(img.page_runs, payload); break;
            case RecordType::Fd: decode_into(img.fds, payload); break;
            case RecordType::End:
                img.end = decode<End>(payload);
                if (img.end.nr_records != index)
                    fail("{} is corrupt: End counts {} records, found {}", meta_path,
                         img.end.nr_records, index);
                have_end = true;
                break;
            default: {
                bool known = false;
                for_each_object_records(img, [&](const char*, auto& vec) {
                    using Rec = typename std::remove_reference_t<decltype(vec)>::value_type;
                    if (type == Rec::kType) {
                        decode_into(vec, payload);
                        known = true;
                    }
                });
                if (!known)
                    fail("{} is corrupt: unknown record type {} at index {}", meta_path, h.type, index);
            }
        }
        ++index;
    }
    if (!have_end) fail("{} is truncated (no End record)", meta_path);
    if (img.processes.empty()) fail("{} holds no process", meta_path);
    if (img.header.page_size != kPageSize)
        fail("{}: page size {} is not supported", meta_path, img.header.page_size);

    // data.img: same image id, exactly the announced size, runs inside it.
    std::string data_path = data_file_for(dir, img.header.image_id);
    UniqueFd data(::open(data_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!data) fail_errno("cannot open {}", data_path);
    struct stat st;
    char head[sizeof(Preamble) + 8];
    pread_exact(data.get(), head, sizeof head, 0, data_path);
    std::memcpy(&pre, head, sizeof pre);
    check_preamble(pre, kDataMagic, data_path);
    uint64_t id;
    std::memcpy(&id, head + sizeof pre, sizeof id);
    if (id != img.header.image_id)
        fail("{} belongs to another image (id {:016x}, meta.img expects {:016x})", data_path,
             id, img.header.image_id);
    if (::fstat(data.get(), &st) != 0) fail_errno("cannot stat {}", data_path);
    if (static_cast<uint64_t>(st.st_size) != img.end.data_size)
        fail("{} is {} bytes, the image expects {} (truncated or corrupt)", data_path,
             st.st_size, img.end.data_size);
    for (const auto& run : img.page_runs) {
        // written so that nothing can overflow: data_size >= kDataHeaderSize here
        if (run.data_offset < kDataHeaderSize || run.data_offset > img.end.data_size ||
            run.nr_pages > (img.end.data_size - run.data_offset) / kPageSize)
            fail("{} is corrupt: page run at {:#x} points outside data.img", dir, run.addr);
    }
    for (const auto& fd : img.fds)
        if (fd.kind == FdKind::Unlinked && fd.dup_of < 0)
            check_content(fd.size, fd.data_offset, fd.extents, img.end.data_size, dir,
                          fmt::format("fd {}", fd.fd));
    for (const auto& fd : img.fds)
        if ((fd.kind == FdKind::Pipe || fd.kind == FdKind::Fifo) && fd.size > 0 &&
            (fd.data_offset < kDataHeaderSize || fd.data_offset > img.end.data_size ||
             fd.size > img.end.data_size - fd.data_offset || fd.size > fd.pipe_size))
            fail("{} is corrupt: the bytes of the pipe behind fd {} (pid {}) point outside data.img", dir, fd.fd,
                 fd.pid);
    for (const auto& fd : img.fds)
        if (fd.external > 1 || (fd.external && ((fd.kind != FdKind::Pipe && fd.kind != FdKind::Fifo) || fd.size > 0)))
            fail("{} is corrupt: fd {} (pid {}) is marked external but is no pipe without stored bytes", dir, fd.fd,
                 fd.pid);
    for (const auto& v : img.vmas)
        if (v.unlinked || (v.kind == VmaKind::Anon && (v.flags & MAP_SHARED) && v.content_pid == 0))
            check_content(v.file.size, v.data_offset, v.extents, img.end.data_size, dir,
                          fmt::format("the mapping at {:#x}", v.start));
    check_event_records(img, dir);
    std::set<std::pair<uint64_t, uint64_t>> memfd_ids;
    for (const auto& m : img.memfds) {
        check_content(m.size, m.data_offset, m.extents, img.end.data_size, dir, fmt::format("memfd {}", m.name));
        memfd_ids.insert({m.dev, m.ino});
    }
    for (const auto& f : img.fds)
        if (f.kind == FdKind::Memfd && !memfd_ids.count({f.dev, f.ino}))
            fail("{} is corrupt: fd {} of process {} is a memfd the image has no object for", dir, f.fd, f.pid);
    std::set<uint64_t> shm_ids;
    for (const auto& s : img.sysv_shms) {
        check_content(s.size, s.data_offset, s.extents, img.end.data_size, dir,
                      fmt::format("System V shared memory segment {}", s.id));
        shm_ids.insert(static_cast<uint64_t>(static_cast<uint32_t>(s.id)));
    }
    for (const auto& v : img.vmas)
        if (v.kind == VmaKind::SysvShm && !shm_ids.count(v.ino))
            fail("{} is corrupt: the mapping at {:#x} of process {} is a System V segment the image does not have", dir,
                 v.start, v.pid);
    for (const auto& v : img.vmas)
        if (v.kind == VmaKind::Memfd && !memfd_ids.count({v.file.dev, v.file.ino}))
            fail("{} is corrupt: the mapping at {:#x} of process {} is a memfd the image has no object for", dir, v.start,
                 v.pid);
    return img;
}

UniqueFd open_data(const std::string& dir) {
    std::string data_path = dir + "/" + kDataFile;
    if (::access((dir + "/" + kDataOld).c_str(), F_OK) == 0)
        data_path = data_file_for(dir, meta_image_id(dir));
    UniqueFd data(::open(data_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!data) fail_errno("cannot open {}", data_path);
    return data;
}

void verify_data(const std::string& dir, const Image& img) {
    if (img.end.data_size <= kDataHeaderSize) return;
    UniqueFd data = open_data(dir);
    void* p = ::mmap(nullptr, img.end.data_size, PROT_READ, MAP_PRIVATE, data.get(), 0);
    if (p == MAP_FAILED) fail_errno("cannot map the data of {}", dir);
    ::madvise(p, img.end.data_size, MADV_SEQUENTIAL);
    auto* base = static_cast<const char*>(p);
    std::string bad;
    for (size_t i = 0; i < img.page_runs.size(); ++i) {
        const auto& run = img.page_runs[i];
        if (XXH3_64bits(base + run.data_offset, run.nr_pages * kPageSize) != run.checksum) {
            bad = fmt::format("page run {} of {}: {} pages at {:#x} (pid {}), data offset {:#x}",
                              i + 1, img.page_runs.size(), run.nr_pages, run.addr, run.pid,
                              run.data_offset);
            break;
        }
    }
    if (bad.empty()) {
        for (const auto& fd : img.fds) {
            if (fd.kind == FdKind::Unlinked && fd.dup_of < 0 &&
                XXH3_64bits(base + fd.data_offset, stored_bytes(fd.extents)) != fd.checksum) {
                bad = fmt::format("content of unlinked file behind fd {} (pid {})", fd.fd,
                                  fd.pid);
                break;
            }
        }
        for (const auto& fd : img.fds) {
            if (bad.empty() && (fd.kind == FdKind::Pipe || fd.kind == FdKind::Fifo) && fd.size > 0 &&
                XXH3_64bits(base + fd.data_offset, fd.size) != fd.checksum)
                bad = fmt::format("bytes buffered in the pipe behind fd {} (pid {})", fd.fd, fd.pid);
        }
        for (const auto& m : img.memfds)
            if (bad.empty() && XXH3_64bits(base + m.data_offset, stored_bytes(m.extents)) != m.checksum)
                bad = fmt::format("content of memfd {}", m.name);
        for (const auto& m : img.sysv_shms)
            if (bad.empty() && XXH3_64bits(base + m.data_offset, stored_bytes(m.extents)) != m.checksum)
                bad = fmt::format("content of System V shared memory segment {}", m.id);
        for (const auto& v : img.vmas) {
            bool shared_memory = v.kind == VmaKind::Anon && (v.flags & MAP_SHARED) && v.content_pid == 0;
            if (bad.empty() && (v.unlinked || shared_memory) &&
                XXH3_64bits(base + v.data_offset, stored_bytes(v.extents)) != v.checksum)
                bad = fmt::format("content of the {} mapped at {:#x} (pid {})",
                                  shared_memory ? "shared memory" : "deleted file", v.start, v.pid);
        }
    }
    ::munmap(p, img.end.data_size);
    if (!bad.empty()) fail("{}/{} is corrupt: checksum mismatch in {}", dir, kDataFile, bad);
}

}  // namespace ckpt::image
