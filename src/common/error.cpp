#include "common/error.h"

#include <cstring>

namespace ckpt {

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace ckpt
