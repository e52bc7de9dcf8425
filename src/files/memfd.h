// memfds (memfd_create): anonymous memory with a name, size and seals, held through
// descriptors and mapped, maybe by several processes of the tree. Both halves.
//
// Dump: one Memfd record per memory object (device and inode), whichever Fd or Vma of the
// tree meets it first: the content is read through /proc/PID/fd or /proc/PID/map_files
// (holes and zero pages left out), the seals with F_GET_SEALS.
// Restore: each object is made once for the tree (memfd_create with its name, the content
// written back, mode and seals set); every descriptor is a new open file description on it
// (with its flags and offset) and every mapping maps it, so fds and mappings of all
// processes share the memory again. restore/shared_pool.h holds the objects.
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "common/fd.h"
#include "image/format.h"
#include "image/image.h"
#include "image/writer.h"

namespace ckpt::files {

// Fills in the identity of every memfd Vma of `tree_vmas` (pid, VMAs of that process) and
// returns the memfd objects that `fds` and those VMAs refer to, their content saved in `out`.
std::vector<image::Memfd> dump_memfds(const std::vector<image::Fd>& fds,
                                      const std::vector<std::pair<pid_t, std::vector<image::Vma>*>>& tree_vmas,
                                      image::ImageWriter& out);

// Every memfd object of the image, made again, by (dev, ino) at dump time.
std::map<std::pair<uint64_t, uint64_t>, UniqueFd> make_memfds(const image::Image& img, int data_fd);

// A new descriptor on the memfd object `object` with `flags` (O_RDWR, O_RDONLY, ...).
int open_memfd(int object, int flags);

}  // namespace ckpt::files
