#include "tracer/shared_files.h"

#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <string_view>

#include "common/error.h"

namespace ckpt::tracer {

int compare_descriptions(pid_t p1, int fd1, pid_t p2, int fd2) {
    long r = ::syscall(SYS_kcmp, p1, p2, KCMP_FILE, fd1, fd2);
    switch (r) {
        case 0: return 0;
        case 1: return -1;
        case 2: return 1;
        default:
            if (r < 0) fail_errno("cannot compare fd {} of process {} with fd {} of process {}", fd1, p1, fd2, p2);
            fail("the kernel does not order open files (kcmp gave {}): cannot group descriptors", r);
    }
}

namespace {

// Sorts `items` (indexes) by description and calls same(a, b) for each item b equal to the
// item a that starts its run.
template <typename Key, typename Same>
void group_equal(std::vector<size_t>& items, Key key, Same same) {
    std::sort(items.begin(), items.end(), [&](size_t a, size_t b) {
        auto [pa, fa] = key(a);
        auto [pb, fb] = key(b);
        int c = compare_descriptions(pa, fa, pb, fb);
        return c != 0 ? c < 0 : a < b;  // equal ones in their original order
    });
    for (size_t i = 0; i < items.size();) {
        size_t j = i + 1;
        auto [pi, fi] = key(items[i]);
        while (j < items.size()) {
            auto [pj, fj] = key(items[j]);
            if (compare_descriptions(pi, fi, pj, fj) != 0) break;
            same(items[i], items[j]);
            ++j;
        }
        i = j;
    }
}

}  // namespace

std::vector<int> find_dups(pid_t pid, const std::vector<FdInode>& fds) {
    std::vector<int> dup_of(fds.size(), -1);
    std::map<std::string_view, std::vector<size_t>> by_state;
    for (size_t i = 0; i < fds.size(); ++i) by_state[fds[i].state].push_back(i);
    for (auto& [state, items] : by_state) {
        if (items.size() < 2) continue;
        // `fds` is in fd order, so the first of each run has the lowest number.
        group_equal(items, [&](size_t i) { return std::pair{pid, fds[i].fd}; },
                    [&](size_t first, size_t other) { dup_of[other] = fds[first].fd; });
    }
    return dup_of;
}

void assign_file_ids(std::vector<image::Fd>& fds) {
    // rep[i]: the first record (in image order) of the description of record i
    std::vector<size_t> rep(fds.size());
    std::map<std::pair<uint64_t, uint64_t>, std::vector<size_t>> by_inode;  // descriptions, not dups
    std::map<std::pair<pid_t, int>, size_t> index_of;
    for (size_t i = 0; i < fds.size(); ++i) {
        rep[i] = i;
        index_of[{fds[i].pid, fds[i].fd}] = i;
        if (fds[i].dup_of < 0) by_inode[{fds[i].dev, fds[i].ino}].push_back(i);
    }
    for (auto& [inode, items] : by_inode) {
        // Within one process the descriptions are distinct already (dups are linked): only an
        // inode held by several processes needs comparing.
        bool several = std::any_of(items.begin(), items.end(), [&](size_t i) { return fds[i].pid != fds[items[0]].pid; });
        if (several)
            group_equal(items, [&](size_t i) { return std::pair{fds[i].pid, fds[i].fd}; },
                        [&](size_t first, size_t other) { rep[other] = first; });
    }
    for (size_t i = 0; i < fds.size(); ++i) {
        if (fds[i].dup_of < 0) continue;
        auto it = index_of.find({fds[i].pid, fds[i].dup_of});
        if (it == index_of.end()) fail("process {} fd {}: its original fd {} was not recorded", fds[i].pid, fds[i].fd, fds[i].dup_of);
        rep[i] = rep[it->second];
    }
    uint32_t next = 1;
    for (size_t i = 0; i < fds.size(); ++i) fds[i].file_id = rep[i] == i ? next++ : fds[rep[i]].file_id;
}

}  // namespace ckpt::tracer
