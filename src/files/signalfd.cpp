// signalfd: the set of signals it reads. The signals themselves stay pending in the process
// and its threads, which the image keeps with them.
#include <fcntl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/error.h"
#include "files/event_fds.h"
#include "tracer/proc_parse.h"

namespace ckpt::files {

image::SignalFd dump_signalfd(std::string_view fdinfo, uint32_t file_id) {
    image::SignalFd r;
    r.file_id = file_id;
    r.mask = proc::fdinfo_number(fdinfo, "sigmask", 16, "signalfd sigmask");  // the mask as given
    return r;
}

int open_signalfd(const image::SignalFd& rec, uint32_t open_flags) {
    int flags = SFD_CLOEXEC | ((open_flags & O_NONBLOCK) ? SFD_NONBLOCK : 0);
    uint64_t mask = rec.mask;  // the kernel's sigset: bit n-1 = signal n
    int fd = static_cast<int>(::syscall(SYS_signalfd4, -1, &mask, sizeof mask, flags));
    if (fd < 0) fail_errno("cannot create a signalfd for signals {:#x}", rec.mask);
    return fd;
}

}  // namespace ckpt::files
