#include "files/outside_fds.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdlib>

#include "common/error.h"

namespace ckpt::files {

void for_each_fd_outside(const std::set<pid_t>& tree,
                         const std::function<void(pid_t, std::string_view fd, std::string_view link, const std::string& path)>& each) {
    DIR* proc = ::opendir("/proc");
    if (!proc) fail_errno("cannot list /proc");
    struct CloseProc {
        DIR* d;
        ~CloseProc() { ::closedir(d); }
    } close_proc{proc};
    while (dirent* e = ::readdir(proc)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        pid_t pid = std::atoi(e->d_name);
        if (tree.count(pid) || pid == ::getpid()) continue;
        std::string dir = fmt::format("/proc/{}/fd", pid);
        DIR* d = ::opendir(dir.c_str());
        if (!d) continue;  // gone, or a kernel thread
        while (dirent* f = ::readdir(d)) {
            if (f->d_name[0] == '.') continue;
            char buf[4096];
            std::string path = fmt::format("{}/{}", dir, f->d_name);
            ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
            if (n <= 0) continue;
            each(pid, f->d_name, std::string_view(buf, static_cast<size_t>(n)), path);
        }
        ::closedir(d);
    }
}

}  // namespace ckpt::files
