// What the processes of a restored tree share, opened once by ckpt before it creates the
// tree: open file descriptions held by several processes (fork() shares them with their
// offset), every pipe and FIFO (both ends, anywhere in the tree), every deleted file (its
// descriptors and mappings), memfds (every descriptor and the object mappings map), and
// shared anonymous memory objects. Every process inherits the pool, takes what its image says it holds and closes
// the rest, so any sharing between any processes comes back without passing descriptors
// around. Pool descriptors sit above every fd number of the image.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/fd.h"
#include "image/image.h"
#include "restore/restore_files.h"

namespace ckpt::restore {

class SharedPool {
  public:
    SharedPool() = default;
    // `opts.data_fd` must be open; `floor` is above every fd number of the image.
    SharedPool(const image::Image& img, const FilesOptions& opts, int floor);

    // The pool's descriptor for a description, or -1 if it is not shared.
    int fd_for(uint32_t file_id) const;
    // The shared memory object a MAP_SHARED anonymous VMA maps, or -1.
    int memory_fd(const image::Vma& v) const;
    // The memfd object a VMA of kind Memfd maps, or -1.
    int memfd_fd(const image::Vma& v) const;
    // The recreated deleted file a VMA with `unlinked` maps (opened read-write), or -1.
    int deleted_mapping_fd(const image::Vma& v) const;
    std::vector<int> fds() const;
    void close_all();

  private:
    int lift(int fd) const;

    int floor_ = 0;
    std::map<uint32_t, UniqueFd> files_;
    std::map<std::pair<uint64_t, uint64_t>, UniqueFd> memory_;  // by (dev, ino) at dump
    std::map<std::string, UniqueFd> deleted_maps_;              // by dev:ino:path at dump
    std::map<std::pair<uint64_t, uint64_t>, UniqueFd> memfds_;  // by (dev, ino) at dump
};

// The lowest fd number above everything the image's processes use.
int pool_floor(const image::Image& img);

}  // namespace ckpt::restore
