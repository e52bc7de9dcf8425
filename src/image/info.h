// `ckpt info`: what an image holds, for people (summary) and for tools (--json, every
// record and every field, generated from the schema in format.h).
#pragma once

#include <cstdio>
#include <string>

namespace ckpt::image {

struct InfoOptions {
    bool json = false;
    bool backtrace = false;
    bool verify = false;  // check every page checksum too (reads all of data.img)
};

void print_info(const std::string& dir, const InfoOptions& opts, std::FILE* out);

}  // namespace ckpt::image
