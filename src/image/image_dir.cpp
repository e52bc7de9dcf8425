#include "image/image_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "common/error.h"
#include "common/log.h"
#include "image/format.h"
#include "image/reader.h"

namespace ckpt::image {

namespace {

bool exists_at(int dir_fd, const char* name) {
    struct stat st;
    return ::fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

// The pid the holder wrote into the lock file, or empty if it has not yet.
std::string holder_pid(int fd) {
    char buf[32] = {};
    ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    std::string s(buf, n > 0 ? static_cast<size_t>(n) : 0);
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

}  // namespace

ImageDirLock::ImageDirLock(std::string dir, Existing existing) : dir_(std::move(dir)) {
    struct stat st;
    if (::stat(dir_.c_str(), &st) == 0) {
        if (!S_ISDIR(st.st_mode)) fail("cannot write an image into {}: not a directory", dir_);
    } else if (errno == ENOENT) {
        if (::mkdir(dir_.c_str(), 0700) == 0)
            created_ = true;
        else if (errno != EEXIST)
            fail_errno("cannot create image directory {}", dir_);
    } else {
        fail_errno("cannot use image directory {}", dir_);
    }
    try {
        dir_fd_ = UniqueFd(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!dir_fd_) fail_errno("cannot open image directory {}", dir_);
        lock();
        clean_stale();
        had_image_ = exists_at(fd(), kMetaFile) || exists_at(fd(), kDataFile);
        if (had_image_ && existing == Existing::Refuse)
            fail("{} already holds an image ({}); use --overwrite to replace it", dir_,
                 exists_at(fd(), kMetaFile) ? kMetaFile : kDataFile);
    } catch (...) {
        release();  // the destructor does not run for a constructor that throws
        throw;
    }
}

ImageDirLock::~ImageDirLock() { release(); }

void ImageDirLock::lock() {
    // The lock file is removed when a dump ends, so a dump may lock a file that the previous
    // holder has just unlinked: then it did not get the lock of DIR, and tries again.
    for (int attempt = 0;; ++attempt) {
        UniqueFd lk(::openat(fd(), kLockFile, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
        if (!lk) fail_errno("cannot create the lock file {}", file(kLockFile));
        if (::flock(lk.get(), LOCK_EX | LOCK_NB) != 0) {
            if (errno != EWOULDBLOCK) fail_errno("cannot lock {}", file(kLockFile));
            std::string pid = holder_pid(lk.get());
            if (pid.empty()) {  // the holder has just created the file: give it a moment
                ::usleep(20000);
                pid = holder_pid(lk.get());
            }
            fail("{} is being written by another dump{}", dir_,
                 pid.empty() ? "" : fmt::format(" (pid {})", pid));
        }
        struct stat locked, now;
        if (::fstat(lk.get(), &locked) != 0) fail_errno("cannot stat {}", file(kLockFile));
        if (::fstatat(fd(), kLockFile, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
            now.st_ino == locked.st_ino && now.st_dev == locked.st_dev) {
            std::string pid = fmt::format("{}\n", ::getpid());
            if (::ftruncate(lk.get(), 0) != 0 ||
                ::pwrite(lk.get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
                fail_errno("cannot write {}", file(kLockFile));
            lock_fd_ = std::move(lk);
            return;
        }
        if (attempt > 100) fail("cannot lock {}: the lock file keeps changing", dir_);
    }
}

void ImageDirLock::clean_stale() {
    // We hold the lock, so whatever partial files are here belong to a dump that died.
    std::string removed;
    for (const char* name : {kMetaPartial, kDataPartial}) {
        if (::unlinkat(fd(), name, 0) == 0)
            removed += fmt::format("{}{}", removed.empty() ? "" : ", ", name);
        else if (errno != ENOENT)
            fail_errno("cannot remove the partial file {} of an interrupted dump", file(name));
    }
    if (!removed.empty())
        log::info("removed the partial files of an interrupted dump from {}: {}", dir_, removed);

    if (!exists_at(fd(), kDataOld)) return;
    // An overwrite died between renaming data.img and meta.img: meta.img still describes
    // the old image, whose data is .data.img.old. Put it back.
    bool repaired = false;
    try {
        if (data_file_for(dir_, meta_image_id(dir_)) == file(kDataOld)) {
            if (::renameat(fd(), kDataOld, fd(), kDataFile) != 0)
                fail_errno("cannot rename {} to {}", file(kDataOld), kDataFile);
            repaired = true;
            log::info("{}: put back the data of the previous image (an overwriting dump was "
                      "interrupted)", dir_);
        }
    } catch (const Error& e) {
        log::debug("{}: {} not used: {}", dir_, kDataOld, e.what());
    }
    if (!repaired && ::unlinkat(fd(), kDataOld, 0) != 0 && errno != ENOENT)
        fail_errno("cannot remove {}", file(kDataOld));
}

void ImageDirLock::release() noexcept {
    if (lock_fd_) {
        // unlinked while still held: a dump that opened this inode just now sees it gone and
        // retries (see lock())
        ::unlinkat(fd(), kLockFile, 0);
        lock_fd_.reset();
    }
    dir_fd_.reset();
    if (created_ && !committed_ && ::rmdir(dir_.c_str()) != 0)
        log::debug("could not remove the image directory {} this dump created: {}", dir_,
                   errno_text(errno));
    created_ = false;
}

}  // namespace ckpt::image
