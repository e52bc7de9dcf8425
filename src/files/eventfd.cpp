// eventfd: a 64-bit counter and the EFD_SEMAPHORE mode.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/error.h"
#include "files/event_fds.h"
#include "tracer/proc_parse.h"

namespace ckpt::files {

image::EventFd dump_eventfd(std::string_view fdinfo, uint32_t file_id) {
    image::EventFd r;
    r.file_id = file_id;
    r.count = proc::fdinfo_number(fdinfo, "eventfd-count", 16, "eventfd-count");
    // Kernels before 6.6 do not show the mode; a semaphore there would come back counting.
    if (!proc::fdinfo_has(fdinfo, "eventfd-semaphore"))
        fail("this kernel does not show whether an eventfd is a semaphore (eventfd-semaphore in fdinfo)");
    r.semaphore = static_cast<uint32_t>(proc::fdinfo_number(fdinfo, "eventfd-semaphore", 10, "eventfd-semaphore"));
    return r;
}

int open_eventfd(const image::EventFd& rec, uint32_t open_flags) {
    int flags = EFD_CLOEXEC | (rec.semaphore ? EFD_SEMAPHORE : 0) | ((open_flags & O_NONBLOCK) ? EFD_NONBLOCK : 0);
    // The initial value eventfd() takes is only 32 bits wide: the counter is written instead
    // (it cannot block: a new counter is 0 and any saved one is below the maximum).
    int fd = ::eventfd(0, flags);
    if (fd < 0) fail_errno("cannot create an eventfd");
    if (rec.count > 0 && ::write(fd, &rec.count, sizeof rec.count) != sizeof rec.count) {
        int e = errno;
        ::close(fd);
        errno = e;
        fail_errno("cannot set an eventfd's counter to {}", rec.count);
    }
    return fd;
}

}  // namespace ckpt::files
