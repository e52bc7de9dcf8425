// What of a VMA's smaps VmFlags the image keeps, and which restore reproduces.
#pragma once

#include <string>
#include <vector>

#include "image/format.h"

namespace ckpt::tracer {

// Sets v's MAP_NORESERVE, VmaAdvice bits and raw vmflags from the VMA's VmFlags.
void apply_vmflags(image::Vma& v, const std::vector<std::string>& vmflags);

}  // namespace ckpt::tracer
