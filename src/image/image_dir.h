// The image directory while one dump writes into it. A user's image may be the only copy of
// a process that no longer exists, so a dump:
//   - holds an exclusive flock on DIR/.ckpt.lock for its whole life (the kernel drops it
//     when the process dies, even by SIGKILL); a second dump into DIR fails at once and
//     names the holder's pid, written into the lock file;
//   - refuses a directory that already holds an image unless told to replace it;
//   - removes the partial files of an earlier dump that died (nobody held the lock), and
//     repairs an overwrite that died between its two renames (see ImageWriter::commit);
//   - on failure removes the lock file, and DIR itself if this dump created it.
#pragma once

#include <string>

#include "common/fd.h"

namespace ckpt::image {

// Names inside an image directory besides meta.img and data.img. Hidden, so that a
// half-written image never looks like one.
inline constexpr const char* kLockFile = ".ckpt.lock";
inline constexpr const char* kMetaPartial = ".meta.img.partial";
inline constexpr const char* kDataPartial = ".data.img.partial";
// The replaced data.img during the two renames of an overwrite: meta.img still belongs to
// it until the second rename, so readers fall back to it when data.img does not match.
inline constexpr const char* kDataOld = ".data.img.old";

enum class Existing {
    Refuse,   // a directory holding an image is an error
    Replace,  // --overwrite: the old image is replaced when the new one is complete
};

class ImageDirLock {
  public:
    ImageDirLock(std::string dir, Existing existing);
    ~ImageDirLock();
    ImageDirLock(const ImageDirLock&) = delete;
    ImageDirLock& operator=(const ImageDirLock&) = delete;

    const std::string& path() const { return dir_; }
    int fd() const { return dir_fd_.get(); }  // O_DIRECTORY, for *at() calls and fsync
    std::string file(const char* name) const { return dir_ + "/" + name; }
    bool holds_image() const { return had_image_; }

    // The image is in place: keep DIR even if this dump created it.
    void committed() { committed_ = true; }

  private:
    void lock();
    void clean_stale();
    void release() noexcept;

    std::string dir_;
    UniqueFd dir_fd_, lock_fd_;
    bool created_ = false;
    bool had_image_ = false;
    bool committed_ = false;
};

}  // namespace ckpt::image
