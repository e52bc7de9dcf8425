// Existing instruction sequences in the target that ckpt borrows to run system calls in it
// without writing code into it (the parasite is loaded by the first such call).
#pragma once

#include <sys/types.h>

#include "common/remote_ptr.h"

namespace ckpt::tracer {

struct Gadgets {
    // `syscall` followed only by register-clearing xors and `ret` (the vDSO's fallback
    // paths end like this): after the call the thread returns to the address at rsp, which
    // ckpt points at a way home (see sigframe.h). Null if the target has none.
    RemoteAddr syscall_ret;
    // `mov $15, %eax; syscall` (rt_sigreturn; every libc's signal restorer). Null if none.
    RemoteAddr sigreturn;
    // Any `syscall` instruction: the fallback when the two above are missing.
    RemoteAddr syscall_any;

    bool safe() const { return !syscall_ret.null() && !sigreturn.null(); }
};

// Scans the vDSO and the target's executable file mappings. Throws if there is not even a
// plain `syscall` instruction.
Gadgets find_gadgets(pid_t pid);

}  // namespace ckpt::tracer
