// The fd table of a frozen target: what each descriptor refers to and where it stands.
#pragma once

#include <sys/types.h>

#include <vector>

#include "files/event_fds.h"
#include "image/format.h"
#include "image/writer.h"

namespace ckpt::tracer {

// The content of a file (deleted, or a shared memory object) as saved in data.img.
struct SavedContent {
    uint64_t size = 0;  // smaller than the file's if it shrank while being read
    uint64_t data_offset = 0;
    uint64_t checksum = 0;  // XXH3-64 of the stored bytes
    std::vector<image::FileExtent> extents;
};

// Copies the data ranges of the file behind `f` into data.img. Holes are skipped
// (SEEK_DATA / SEEK_HOLE) and recorded as the gaps between extents, so a sparse file stays
// small in the image and comes back sparse; with `skip_zero_pages`, so are pages holding
// only zeros (for memory objects, where that is what a hole reads as). `what` names the
// file in errors.
SavedContent save_content(int f, uint64_t size, const std::string& what, image::ImageWriter& out,
                          bool skip_zero_pages = false);

// Reads /proc/PID/fd and fdinfo. The content of files unlinked while open is appended to
// data.img. Descriptor kinds not supported yet are refused with the fd and the reason. The
// fdinfo of event descriptors is kept in `texts` for files::dump_event_fds.
std::vector<image::Fd> dump_files(pid_t pid, image::ImageWriter& out, files::FdInfoTexts& texts);

// Saves the content of files deleted while mapped (once per inode; an inode that an fd of
// `fds` holds is not saved again) and marks their Vmas `unlinked`.
void save_unlinked_mappings(pid_t pid, std::vector<image::Vma>& vmas, const std::vector<image::Fd>& fds,
                            image::ImageWriter& out);

}  // namespace ckpt::tracer
