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

}  // namespace ckpt::tracer
