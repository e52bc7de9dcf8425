// The fd table of the process being restored, rebuilt by ckpt's child before it hands over
// to the restorer stub (full libc is still available there).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/fd.h"
#include "files/event_fds.h"
#include "image/image.h"

namespace ckpt::restore {

struct FilesOptions {
    std::string image_dir;
    bool shell_job = false;
    int shell_tty = -1;  // ckpt's terminal, for --shell-job
    int data_fd = -1;    // data.img, for the content of unlinked files
    // Descriptors of ckpt restore given for external pipes, by name (restore/inherit_fds.h).
    std::map<std::string, int> inherited;
    // The event descriptors' state (eventfd counters, timers, epoll targets).
    const files::EventFds* events = nullptr;
};

// Files deleted while open or mapped, recreated from their saved content once per inode:
// every fd and mapping on one of them (and only those) shares the new inode. Each is made
// under its original names for a moment, so that /proc shows the same "NAME (deleted)" for
// every fd and mapping, with its holes, owner, mode and times. Every descriptor it hands
// out or holds sits above the image's fd numbers.
class UnlinkedFiles {
  public:
    // pid kAllProcesses: the files of every process of the image (the shared pool's).
    static constexpr int kAllProcesses = 0;
    UnlinkedFiles(const image::Image& img, int pid, const FilesOptions& opts);

    // For an Fd record of kind Unlinked: an fd opened with its flags; the caller owns it.
    int open_fd(const image::Fd& rec);
    // For a Vma with `unlinked` set: a new O_RDWR fd to map; the caller owns it.
    int open_mapping(const image::Vma& v);
    // What it holds until restore_fd_table has placed everything.
    std::vector<int> held_fds() const;
    void close_all();

  private:
    static std::string mapping_key(const image::Vma& v);
    void recreate(uint64_t dev, uint64_t ino);
    // Creates the missing directories above `path` (outermost first); returns them.
    static std::vector<std::string> make_missing_dirs(const std::string& path);
    void fill(int fd, const std::string& path, uint64_t size, uint64_t data_offset,
              const std::vector<image::FileExtent>& extents, const image::FileStat& file);

    const image::Image& img_;
    int pid_;
    const FilesOptions& opts_;
    int floor_;
    std::map<uint32_t, UniqueFd> ready_;            // by file_id (open file description), not yet placed
    std::map<std::string, UniqueFd> mappings_;      // by mapping_key
};

class SharedPool;

// Opens the file of a Regular, Directory, CharDev or Tty record with its flags, at its
// offset, or makes the object of an event descriptor (a new open file description); the
// caller owns the fd.
int open_description(const image::Fd& rec, const FilesOptions& opts);

// Opens every descriptor of process `pid` at its number with its flags and offset (those
// whose description is in `pool`, deleted files among them, from there), then registers the
// epoll targets it is in charge of. Descriptors ckpt still needs must already sit above
// every number the image uses.
void restore_fd_table(const image::Image& img, int pid, const FilesOptions& opts, const SharedPool& pool);

// Writes content saved as extents (stored back to back at data_offset in data.img) at
// their offsets in fd; what lies between stays holes. `what` names the file in errors.
void write_extents(int fd, int data_fd, uint64_t data_offset, const std::vector<image::FileExtent>& extents,
                   const std::string& what);

// The flags to open a file again with for a descriptor opened with `open_flags` (without the
// ones that only mean something when a file is created: O_CREAT, O_EXCL, O_TRUNC, O_NOCTTY).
int reopen_flags(uint32_t open_flags);

// The highest fd number the image uses (-1 if none).
int max_image_fd(const image::Image& img, int pid);

}  // namespace ckpt::restore
