// Existing instruction sequences in the target that ckpt borrows to run system calls in it
// without writing code into it (the parasite is loaded by the first such call).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/remote_ptr.h"
#include "tracer/proc_parse.h"

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

// Finds gadgets for process after process. Scanning a whole libc for them took a tenth of
// the dump of a tree of 100 processes that all map the same one: a gadget found once is
// remembered by the identity of the mapping it lies in (path, device, inode, file offset,
// size; the vDSO by its name and size), and in a later process mapping the same thing it
// is taken after its few bytes are read and tested in place, exactly as the scan tests
// them (a private mapping may have been written to). Only if one does not hold is the
// process scanned again.
class GadgetCache {
  public:
    // Throws if the process has not even a plain `syscall` instruction.
    Gadgets find(pid_t pid);

  private:
    enum class Kind { SyscallRet = 0, Sigreturn = 1, SyscallAny = 2 };
    struct Mapping {
        std::string path;
        uint32_t dev_major, dev_minor;
        uint64_t inode, offset, size;
        bool operator==(const Mapping&) const = default;
    };
    struct Known {
        Mapping mapping;
        uint64_t offset;  // of the gadget in the mapping
        Kind kind;
    };
    static Mapping identity(const proc::MapsEntry& m);
    static bool holds(pid_t pid, const proc::MapsEntry& m, uint64_t addr, Kind kind);

    std::vector<Known> known_;
};

// Scans the vDSO and the target's executable file mappings (no cache). Throws if there is
// not even a plain `syscall` instruction.
Gadgets find_gadgets(pid_t pid);

}  // namespace ckpt::tracer
