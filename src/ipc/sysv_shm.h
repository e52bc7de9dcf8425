// System V shared memory (shmget/shmat), both halves.
//
// Dump: a segment is saved when processes of the tree have it attached (VMAs named
// "/SYSVkey (deleted)" whose inode number is the segment id): key, size, owner, mode, the
// removed-while-attached and locked flags from /proc/sysvipc/shm, and its content once
// (read through /proc/PID/map_files; holes and zero pages left out). A segment also
// attached outside the tree is refused. A dump that kills the tree removes its segments
// afterwards (they belong to it, and the restore takes their ids again). Segments that
// processes only know by id or key, without having them attached, are not saved.
//
// Restore: every segment is made again with its id (/proc/sys/kernel/shm_next_id) and key
// before the tree, and filled; each process attaches its segments itself (shmat, a real
// attach that shmdt and IPC_STAT see) at a free address, and the restorer stub moves the
// pieces of each attach to where they were (the premap path of restorer_abi.h). A failed
// restore removes the segments it made; a segment that was removed while attached is
// removed again once the tree is back.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "image/format.h"
#include "image/image.h"
#include "image/writer.h"

namespace ckpt::ipc {

std::vector<image::SysvShm> dump_sysv_shm(const std::vector<std::pair<pid_t, std::vector<image::Vma>*>>& tree_vmas,
                                          image::ImageWriter& out);

// After a dump that killed the tree: removes the saved segments (IPC_RMID).
void remove_dumped_segments(const std::vector<image::SysvShm>& segments);

// The segments of an image, made again; removed again unless commit() is called.
class SysvShmSegments {
  public:
    SysvShmSegments(const image::Image& img, int data_fd);
    ~SysvShmSegments();
    SysvShmSegments(const SysvShmSegments&) = delete;
    SysvShmSegments& operator=(const SysvShmSegments&) = delete;
    // The tree is back: segments removed at dump time are removed again (they live on
    // while attached), the others stay.
    void commit();

  private:
    const image::Image& img_;
    std::vector<int> made_;
    bool committed_ = false;
};

// For process `pid` of the image: attaches each of its segments at a free address (outside
// `used`) and returns, for every VMA of kind SysvShm, where its piece is now (by VMA start).
std::map<uint64_t, uint64_t> attach_sysv_shm(const image::Image& img, pid_t pid,
                                             const std::vector<std::pair<uint64_t, uint64_t>>& used);

}  // namespace ckpt::ipc
