// Reads and validates a whole image before anything is done with it: a restore must fail
// before it creates a process, not halfway through.
#pragma once

#include <string>

#include "common/fd.h"
#include "image/image.h"

namespace ckpt::image {

// Parses meta.img, checks every record's checksum, the record order, the End record and
// that data.img belongs to this image and has the announced size.
Image read_image(const std::string& dir);

// Opens data.img of a validated image for reading.
UniqueFd open_data(const std::string& dir);

// The image id in meta.img's Header record (only that record is read and checked).
uint64_t meta_image_id(const std::string& dir);

// The data file of the image with this id: DIR/data.img, or, while an overwriting dump is
// between its two renames, the previous image's data kept as DIR/.data.img.old.
std::string data_file_for(const std::string& dir, uint64_t image_id);

// Checks the XXH3 of every page run and unlinked-file content against data.img.
void verify_data(const std::string& dir, const Image& img);

}  // namespace ckpt::image
