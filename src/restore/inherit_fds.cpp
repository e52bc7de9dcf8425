#include "restore/inherit_fds.h"

#include <fcntl.h>

#include <charconv>
#include <set>

#include "common/error.h"
#include "files/pipe.h"

namespace ckpt::restore {

namespace {

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) >= 0; }

}  // namespace

std::map<std::string, int> inherited_fds(const image::Image& img, const std::vector<std::string>& specs,
                                         bool stdio) {
    std::set<std::string> external;
    for (const auto& f : img.fds)
        if (f.external && f.kind == image::FdKind::Pipe) external.insert(files::external_pipe_name(f));
    std::map<std::string, int> out;
    for (const auto& spec : specs) {
        // fd[N]:NAME
        int fd = -1;
        size_t close = spec.find("]:");
        const char* num = spec.data() + 3;
        auto [end, ec] = std::from_chars(num, spec.data() + (close == std::string::npos ? spec.size() : close), fd);
        if (!spec.starts_with("fd[") || close == std::string::npos || ec != std::errc() ||
            end != spec.data() + close || fd < 0 || close + 2 >= spec.size())
            fail("--inherit-fd {}: expected fd[N]:pipe:[INODE]", spec);
        std::string name = spec.substr(close + 2);
        if (!external.count(name))
            fail("--inherit-fd {}: the image has no {} to outside the dumped tree{}", spec, name,
                 external.empty() ? "" : fmt::format(" (it has {})", fmt::join(external, ", ")));
        if (!is_open(fd)) fail("--inherit-fd {}: fd {} is not open in ckpt restore", spec, fd);
        if (!out.emplace(name, fd).second) fail("--inherit-fd {}: {} is given twice", spec, name);
    }
    if (stdio)
        for (const auto& f : img.fds) {
            if (!f.external || f.kind != image::FdKind::Pipe || f.fd > 2) continue;
            std::string name = files::external_pipe_name(f);
            if (out.count(name)) continue;
            if (!is_open(f.fd))
                fail("--inherit-stdio: process {} fd {} is {} to outside the dumped tree, but fd {} of ckpt restore "
                     "is closed", f.pid, f.fd, name, f.fd);
            out.emplace(name, f.fd);
        }
    return out;
}

}  // namespace ckpt::restore
