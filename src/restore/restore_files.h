// The fd table of the process being restored, rebuilt by ckpt's child before it hands over
// to the restorer stub (full libc is still available there).
#pragma once

#include <string>
#include <vector>

#include "image/image.h"

namespace ckpt::restore {

struct FilesOptions {
    std::string image_dir;
    bool shell_job = false;
    int shell_tty = -1;  // ckpt's terminal, for --shell-job
    int data_fd = -1;    // data.img, for the content of unlinked files
};

// Opens every descriptor of process `pid` at its number with its flags and offset.
// Descriptors ckpt still needs must already sit above every number the image uses.
void restore_fd_table(const image::Image& img, int pid, const FilesOptions& opts);

// The highest fd number the image uses (-1 if none).
int max_image_fd(const image::Image& img, int pid);

}  // namespace ckpt::restore
