#include "tracer/shared_files.h"

#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <map>
#include <set>

#include "common/error.h"

namespace ckpt::tracer {

void assign_file_ids(std::vector<image::Fd>& fds) {
    uint32_t next = 1;
    // The descriptions met so far on each inode: kcmp only among those.
    std::map<std::pair<uint64_t, uint64_t>, std::vector<size_t>> by_inode;
    for (size_t i = 0; i < fds.size(); ++i) {
        image::Fd& f = fds[i];
        if (f.dup_of >= 0) {
            for (size_t j = 0; j < i; ++j)
                if (fds[j].pid == f.pid && fds[j].fd == f.dup_of) f.file_id = fds[j].file_id;
            if (f.file_id == 0) fail("process {} fd {}: its original fd {} was not recorded", f.pid, f.fd, f.dup_of);
            continue;
        }
        auto& seen = by_inode[{f.dev, f.ino}];
        for (size_t j : seen) {
            const image::Fd& e = fds[j];
            if (e.pid != f.pid && ::syscall(SYS_kcmp, e.pid, f.pid, KCMP_FILE, e.fd, f.fd) == 0) {
                f.file_id = e.file_id;
                break;
            }
        }
        if (f.file_id == 0) f.file_id = next++;
        seen.push_back(i);
    }
}

}  // namespace ckpt::tracer
