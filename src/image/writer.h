// Writes an image directory in one pass: records go to meta.img as they are produced, page
// data is appended to data.img (by splice or write). Both are written under temporary names
// and renamed only by commit(), once synced, data first and meta last, so an interrupted
// dump never leaves a directory that looks like a complete image, and an interrupted
// overwrite keeps the previous one. Files are created with mode 0600. The directory is
// locked against other dumps for the writer's whole life (image_dir.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/fd.h"
#include "image/codec.h"
#include "image/image_dir.h"

namespace ckpt::image {

class ImageWriter {
  public:
    explicit ImageWriter(std::string dir, Existing existing = Existing::Refuse);
    // Unless committed: removes the temporary files, and the directory if it created it.
    ~ImageWriter();
    ImageWriter(const ImageWriter&) = delete;
    ImageWriter& operator=(const ImageWriter&) = delete;

    uint64_t image_id() const { return image_id_; }

    template <typename Rec>
    void add(const Rec& rec) {
        add_raw(Rec::kType, encode(rec));
    }

    // Page data: the current end of data.img, an fd to splice into at an explicit offset
    // (data_offset()), and a way to account for bytes that were spliced. append_data writes
    // at data_offset() too (pwrite): the fd's file offset is not used.
    uint64_t data_offset() const { return data_offset_; }
    int data_fd() const { return data_.get(); }
    void data_appended(uint64_t n);
    // Hand appended page data to writeback at once (a dump that must sync before it kills
    // its frozen target); otherwise it stays in the page cache until commit().
    void set_early_writeback(bool on) { early_writeback_ = on; }
    uint64_t append_data(const void* buf, size_t len);

    // Fills in the XXH3 of each run from what was written to data.img, reading it back
    // through the page cache (after the target is released, so it costs no frozen time).
    void checksum_runs(std::vector<PageRun>& runs) const;

    // Makes the image complete and durable: fsyncs both files, renames them into place
    // (meta.img last), fsyncs the directory. Only then may a dump kill its target.
    void commit();

  private:
    void add_raw(RecordType type, const std::string& payload);
    void flush_meta();

    ImageDirLock dir_;  // first: released last, after the temporaries are gone
    std::string meta_tmp_, data_tmp_;
    UniqueFd meta_, data_;
    std::string meta_buf_;
    bool early_writeback_ = false;
    uint64_t image_id_ = 0;
    uint64_t data_offset_ = 0;
    uint64_t nr_records_ = 0;
    bool committed_ = false;
};

}  // namespace ckpt::image
