#include "image/writer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstring>

#include "common/error.h"
#include "common/fs.h"
#include "common/log.h"

namespace ckpt::image {

namespace {

// Stale temporaries of a crashed dump were removed by ImageDirLock, under the lock.
UniqueFd create_private(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd) fail_errno("cannot create {}", path);
    return fd;
}

void sync(int fd, const std::string& what) {
    if (::fsync(fd) != 0) fail_errno("cannot sync {} to disk", what);
}

}  // namespace

ImageWriter::ImageWriter(std::string dir, Existing existing)
    : dir_(std::move(dir), existing) {
    meta_tmp_ = dir_.file(kMetaPartial);
    data_tmp_ = dir_.file(kDataPartial);
    try {
        meta_ = create_private(meta_tmp_);
        data_ = create_private(data_tmp_);
        if (::getrandom(&image_id_, sizeof image_id_, 0) != sizeof image_id_)
            fail_errno("getrandom");

        Preamble pre{};
        std::memcpy(pre.magic, kMetaMagic, sizeof pre.magic);
        pre.version = kFormatVersion;
        meta_buf_.append(reinterpret_cast<const char*>(&pre), sizeof pre);

        char head[kDataHeaderSize] = {};
        std::memcpy(pre.magic, kDataMagic, sizeof pre.magic);
        std::memcpy(head, &pre, sizeof pre);
        std::memcpy(head + sizeof pre, &image_id_, sizeof image_id_);
        write_all(data_.get(), head, sizeof head, data_tmp_);
        data_offset_ = kDataHeaderSize;
    } catch (...) {
        // the destructor does not run for a constructor that throws
        if (meta_) ::unlink(meta_tmp_.c_str());
        if (data_) ::unlink(data_tmp_.c_str());
        throw;
    }
}

ImageWriter::~ImageWriter() {
    if (!committed_) {
        ::unlink(meta_tmp_.c_str());
        ::unlink(data_tmp_.c_str());
    }
}

void ImageWriter::add_raw(RecordType type, const std::string& payload) {
    if (payload.size() > kMaxPayload)
        fail("{} record too large ({} bytes)", record_name(type), payload.size());
    RecordHeader h{static_cast<uint32_t>(type), static_cast<uint32_t>(payload.size()),
                   payload_checksum(type, payload.data(), payload.size())};
    meta_buf_.append(reinterpret_cast<const char*>(&h), sizeof h);
    meta_buf_.append(payload);
    ++nr_records_;
    if (meta_buf_.size() > (1u << 20)) flush_meta();
}

void ImageWriter::flush_meta() {
    write_all(meta_.get(), meta_buf_.data(), meta_buf_.size(), meta_tmp_);
    meta_buf_.clear();
}

uint64_t ImageWriter::append_data(const void* buf, size_t len) {
    // pwrite at data_offset_: pages spliced at an explicit offset (memory_dump.cpp) do not
    // move the fd's file offset, so write() would land on top of them.
    const uint64_t off = data_offset_;
    auto* p = static_cast<const char*>(buf);
    size_t done = 0;
    while (done < len) {
        ssize_t n = ::pwrite(data_.get(), p + done, len - done, static_cast<off_t>(off + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_errno("cannot write {}", data_tmp_);
        }
        done += static_cast<size_t>(n);
    }
    data_offset_ += len;
    return off;
}

void ImageWriter::checksum_runs(std::vector<PageRun>& runs) const {
    if (runs.empty()) return;
    void* p = ::mmap(nullptr, data_offset_, PROT_READ, MAP_SHARED, data_.get(), 0);
    if (p == MAP_FAILED) fail_errno("cannot map {} to checksum it", data_tmp_);
    ::madvise(p, data_offset_, MADV_SEQUENTIAL);
    auto* base = static_cast<const char*>(p);
    for (auto& run : runs) run.checksum = XXH3_64bits(base + run.data_offset, run.nr_pages * kPageSize);
    ::munmap(p, data_offset_);
}

void ImageWriter::data_appended(uint64_t n) {
    // Start writing these pages to disk now, in the background: commit() must sync the
    // whole image before a default dump kills its target, and would otherwise wait for all
    // of it at once while the target is frozen. (With --leave-running the target goes on
    // before the sync, and the page cache is the faster place to pour pages into.)
    if (early_writeback_ && n > 0) ::sync_file_range(data_.get(), static_cast<off64_t>(data_offset_),
                                 static_cast<off64_t>(n), SYNC_FILE_RANGE_WRITE);
    data_offset_ += n;
}

void ImageWriter::commit() {
    End end{nr_records_, data_offset_};
    add(end);
    flush_meta();
    // Durable before visible: after a crash, a meta.img in place must describe data that is
    // on disk. The default dump kills its target right after this returns.
    sync(data_.get(), data_tmp_);
    sync(meta_.get(), meta_tmp_);
    // Data first, meta last: meta.img existing means the image is complete. Between the two
    // renames meta.img still describes the previous image (if any), whose data.img is being
    // replaced: keep it as .data.img.old until the new meta.img is in place; readers fall
    // back to it when data.img does not belong to meta.img (reader.cpp, data_file_for).
    const int dfd = dir_.fd();
    bool kept_old = false;
    if (dir_.holds_image() && ::access(dir_.file(kMetaFile).c_str(), F_OK) == 0) {
        if (::linkat(dfd, kDataFile, dfd, kDataOld, 0) == 0)
            kept_old = true;
        else if (errno != ENOENT)
            fail_errno("cannot keep {} while replacing it", dir_.file(kDataFile));
    }
    if (::renameat(dfd, kDataPartial, dfd, kDataFile) != 0)
        fail_errno("cannot rename {} to {}", data_tmp_, kDataFile);
    if (::renameat(dfd, kMetaPartial, dfd, kMetaFile) != 0)
        fail_errno("cannot rename {} to {}", meta_tmp_, kMetaFile);
    committed_ = true;
    dir_.committed();
    sync(dfd, dir_.path());
    if (kept_old && ::unlinkat(dfd, kDataOld, 0) != 0)  // harmless: the next dump removes it
        log::error("cannot remove {}: {}", dir_.file(kDataOld), errno_text(errno));
}

}  // namespace ckpt::image
