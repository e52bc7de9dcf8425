// Which descriptors of a tree refer to one open file description (fork() shares them, and
// with them the offset and status flags): every Fd record gets the file_id of its
// description, equal across processes exactly when kcmp(KCMP_FILE) says they are the same.
#pragma once

#include <vector>

#include "image/format.h"

namespace ckpt::tracer {

// `fds` holds the records of every process of the tree, each process's dup_of already set.
void assign_file_ids(std::vector<image::Fd>& fds);

}  // namespace ckpt::tracer
