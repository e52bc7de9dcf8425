#include "restore/pid_in_use.h"

#include <fmt/format.h>

#include "common/error.h"
#include "common/fs.h"
#include "tracer/proc_parse.h"

namespace ckpt::restore {

std::string pid_in_use(pid_t pid, const char* what) {
    proc::Stat st;
    try {
        st = proc::parse_stat(read_file(fmt::format("/proc/{}/stat", pid)));
    } catch (const Error&) {
        return fmt::format("{} {} is in use", what, pid);  // gone meanwhile, or not ours to see
    }
    if (st.state == 'Z')
        return fmt::format("{} {} is in use by a zombie (exited, not yet reaped by its parent {})",
                           what, pid, st.ppid);
    return fmt::format("{} {} is in use by '{}'", what, pid, st.comm);
}

}  // namespace ckpt::restore
