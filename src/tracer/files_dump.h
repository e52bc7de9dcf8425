// The fd table of a frozen target: what each descriptor refers to and where it stands.
#pragma once

#include <sys/types.h>

#include <vector>

#include "image/format.h"
#include "image/writer.h"

namespace ckpt::tracer {

// Reads /proc/PID/fd and fdinfo. The content of files unlinked while open is appended to
// data.img. Descriptor kinds not supported yet are refused with the fd and the reason.
std::vector<image::Fd> dump_files(pid_t pid, image::ImageWriter& out);

// Saves the content of files deleted while mapped (once per inode; an inode that an fd of
// `fds` holds is not saved again) and marks their Vmas `unlinked`.
void save_unlinked_mappings(pid_t pid, std::vector<image::Vma>& vmas, const std::vector<image::Fd>& fds,
                            image::ImageWriter& out);

}  // namespace ckpt::tracer
