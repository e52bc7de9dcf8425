#include "tracer/file_identity.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <utility>

#include "common/error.h"
#include "common/fd.h"

namespace ckpt::tracer {

namespace {

int64_t ns(const timespec& t) { return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec; }

bool pread_all(int fd, void* buf, size_t len, uint64_t off) {
    return ::pread(fd, buf, len, static_cast<off_t>(off)) == static_cast<ssize_t>(len);
}

// Walks the notes of one PT_NOTE segment's bytes.
std::string find_build_id(const std::string& notes, uint64_t align) {
    size_t pos = 0;
    auto up = [align](size_t v) { return (v + align - 1) & ~(align - 1); };
    while (pos + sizeof(Elf64_Nhdr) <= notes.size()) {
        Elf64_Nhdr nh;
        std::memcpy(&nh, notes.data() + pos, sizeof nh);
        size_t name_at = pos + sizeof nh;
        size_t desc_at = up(name_at + nh.n_namesz);
        size_t next = up(desc_at + nh.n_descsz);
        if (nh.n_namesz > notes.size() || nh.n_descsz > notes.size() || desc_at > notes.size() ||
            desc_at + nh.n_descsz > notes.size())
            return {};
        if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
            std::memcmp(notes.data() + name_at, "GNU", 4) == 0)
            return notes.substr(desc_at, nh.n_descsz);
        if (next <= pos) return {};
        pos = next;
    }
    return {};
}

}  // namespace

int open_for_identity(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOATIME);
    if (fd < 0 && errno == EPERM) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    return fd;
}

std::string elf_build_id(int fd) {
    Elf64_Ehdr eh;
    if (!pread_all(fd, &eh, sizeof eh, 0)) return {};
    if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > 4096)
        return {};
    std::vector<Elf64_Phdr> ph(eh.e_phnum);
    if (!pread_all(fd, ph.data(), ph.size() * sizeof(Elf64_Phdr), eh.e_phoff)) return {};
    for (const auto& p : ph) {
        if (p.p_type != PT_NOTE || p.p_filesz == 0 || p.p_filesz > (1u << 20)) continue;
        std::string notes(p.p_filesz, '\0');
        if (!pread_all(fd, notes.data(), notes.size(), p.p_offset)) continue;
        std::string id = find_build_id(notes, p.p_align == 8 ? 8 : 4);
        if (!id.empty()) return id;
    }
    return {};
}

image::FileStat identify_file(int fd, const std::string& what) {
    struct stat st;
    if (::fstat(fd, &st) != 0) fail_errno("cannot stat {}", what);
    image::FileStat f;
    f.dev = st.st_dev;
    f.ino = st.st_ino;
    f.mode = st.st_mode;
    f.uid = st.st_uid;
    f.gid = st.st_gid;
    f.size = static_cast<uint64_t>(st.st_size);
    f.atime_ns = ns(st.st_atim);
    f.mtime_ns = ns(st.st_mtim);
    f.ctime_ns = ns(st.st_ctim);
    if (S_ISREG(st.st_mode)) f.build_id = elf_build_id(fd);
    return f;
}

void identify_mapped_files(pid_t pid, std::vector<image::Vma>& vmas) {
    std::map<std::pair<uint64_t, uint64_t>, image::FileStat> seen;  // by (dev, ino) of maps
    for (auto& v : vmas) {
        if (v.kind != image::VmaKind::File) continue;
        auto key = std::make_pair(v.dev, v.ino);
        auto it = seen.find(key);
        if (it == seen.end()) {
            std::string link = fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, v.start, v.end);
            UniqueFd f(open_for_identity(link));
            if (!f) fail_errno("process {}: cannot open mapped file {} through {}", pid, v.path, link);
            it = seen.emplace(key, identify_file(f.get(), v.path)).first;
        }
        v.file = it->second;
    }
}

}  // namespace ckpt::tracer
