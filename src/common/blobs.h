// The freestanding blobs embedded in ckpt (see cmake/Blob.cmake).
#pragma once

#include <cstddef>
#include <span>

extern "C" const unsigned char ckpt_blob_parasite_start[], ckpt_blob_parasite_end[];
extern "C" const unsigned char ckpt_blob_restorer_start[], ckpt_blob_restorer_end[];

namespace ckpt {

inline std::span<const unsigned char> parasite_blob() {
    return {ckpt_blob_parasite_start, static_cast<size_t>(ckpt_blob_parasite_end - ckpt_blob_parasite_start)};
}
inline std::span<const unsigned char> restorer_blob() {
    return {ckpt_blob_restorer_start, static_cast<size_t>(ckpt_blob_restorer_end - ckpt_blob_restorer_start)};
}

}  // namespace ckpt
