// Descriptors of `ckpt restore` itself that stand in for what the dumped tree was connected
// to outside itself: the far end of `prog | tee log`, a supervisor's pipe. The image
// records such a pipe as external (files/pipe.h); at restore the user names a descriptor for
// it, in CRIU's form `--inherit-fd fd[N]:pipe:[INO]`, or `--inherit-stdio` gives every
// external pipe the tree held as stdin, stdout or stderr ckpt restore's own of that number.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "image/image.h"

namespace ckpt::restore {

// By external pipe name (`pipe:[INO]`): the fd of this process to use. Fails with one clear
// message for a malformed spec, a closed fd, or a name the image does not hold.
std::map<std::string, int> inherited_fds(const image::Image& img, const std::vector<std::string>& specs,
                                         bool stdio);

}  // namespace ckpt::restore
