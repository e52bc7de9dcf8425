// Refuses to restore over files that changed since the dump (see docs/files.md).
#pragma once

#include "image/image.h"

namespace ckpt::restore {

// Compares every open regular file and every mapped file of the image with what is at its
// path now; throws naming the first file that differs and how, unless `allow_changed`
// (then each difference is only reported on stderr). Files saved by content (unlinked)
// are not compared. Runs before any process is created.
void check_files(const image::Image& img, bool allow_changed);

}  // namespace ckpt::restore
