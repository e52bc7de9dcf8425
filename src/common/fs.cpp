#include "common/fs.h"

#include <fcntl.h>
#include <unistd.h>

#include <climits>

#include "common/error.h"
#include "common/fd.h"

namespace ckpt {

std::string read_file(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) fail_errno("cannot open {}", path);
    std::string out;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_errno("cannot read {}", path);
        }
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

std::string read_link(const std::string& path) {
    char buf[PATH_MAX + 1];
    ssize_t n = ::readlink(path.c_str(), buf, PATH_MAX);
    if (n < 0) fail_errno("cannot read link {}", path);
    return std::string(buf, static_cast<size_t>(n));
}

void write_all(int fd, const void* buf, size_t len, std::string_view what) {
    auto* p = static_cast<const char*>(buf);
    while (len > 0) {
        ssize_t n = ::write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_errno("cannot write {}", what);
        }
        p += n;
        len -= static_cast<size_t>(n);
    }
}

void pread_exact(int fd, void* buf, size_t len, uint64_t off, std::string_view what) {
    auto* p = static_cast<char*>(buf);
    while (len > 0) {
        ssize_t n = ::pread(fd, p, len, static_cast<off_t>(off));
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_errno("cannot read {}", what);
        }
        if (n == 0) fail("{} is truncated (wanted {} more bytes at offset {})", what, len, off);
        p += n;
        len -= static_cast<size_t>(n);
        off += static_cast<uint64_t>(n);
    }
}

}  // namespace ckpt
