// Which descriptors of a tree refer to one open file description (fork() shares them, and
// with them the offset and status flags): every Fd record gets the file_id of its
// description, equal across processes exactly when kcmp(KCMP_FILE) says they are the same.
//
// kcmp also orders descriptions (by their obfuscated kernel addresses, a consistent total
// order), so descriptors on one inode are sorted and equal neighbours grouped: n log n
// comparisons, not n^2 (10,000 eventfds share one anonymous inode).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "image/format.h"

namespace ckpt::tracer {

// -1, 0 or 1 as the open file description of fd1 in p1 sorts before, equals or sorts after
// that of fd2 in p2. Fails (ckpt::Error) if either is gone.
int compare_descriptions(pid_t p1, int fd1, pid_t p2, int fd2);

// Groups `fds` (one process) into descriptions: for every fd that shares its description
// with a lower-numbered one, the lowest such number; -1 otherwise. Only fds with equal
// `state` are compared: the inode and what fdinfo shows of the description (the same for
// every fd of one description, fd flags left out), which tells most descriptions apart
// without a system call.
struct FdInode {
    int fd;
    std::string state;
};
std::vector<int> find_dups(pid_t pid, const std::vector<FdInode>& fds);

// `fds` holds the records of every process of the tree, each process's dup_of already set.
void assign_file_ids(std::vector<image::Fd>& fds);

}  // namespace ckpt::tracer
