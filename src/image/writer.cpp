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

namespace ckpt::image {

namespace {

UniqueFd create_private(const std::string& path) {
    ::unlink(path.c_str());  // a stale temporary from a crashed dump
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd) fail_errno("cannot create {}", path);
    return fd;
}

}  // namespace

ImageWriter::ImageWriter(std::string dir) : dir_(std::move(dir)) {
    if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST)
        fail_errno("cannot create image directory {}", dir_);
    meta_tmp_ = dir_ + "/." + kMetaFile + ".partial";
    data_tmp_ = dir_ + "/." + kDataFile + ".partial";
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

void ImageWriter::commit() {
    End end{nr_records_, data_offset_};
    add(end);
    flush_meta();
    // data first, meta last: meta.img existing means the image is complete.
    std::string meta_final = dir_ + "/" + kMetaFile;
    std::string data_final = dir_ + "/" + kDataFile;
    if (::unlink(meta_final.c_str()) != 0 && errno != ENOENT)
        fail_errno("cannot replace {}", meta_final);
    if (::rename(data_tmp_.c_str(), data_final.c_str()) != 0)
        fail_errno("cannot rename {} to {}", data_tmp_, data_final);
    if (::rename(meta_tmp_.c_str(), meta_final.c_str()) != 0)
        fail_errno("cannot rename {} to {}", meta_tmp_, meta_final);
    committed_ = true;
}

}  // namespace ckpt::image
