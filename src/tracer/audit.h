// The state audit: before anything is written or injected, the frozen target is inspected
// from outside (/proc) for state that ckpt cannot save and restore exactly. Such a dump is
// refused, never completed with the state silently dropped. docs/audit.md lists every kind
// of process state and what ckpt does with it; the tables here are the code side of it.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "image/format.h"
#include "tracer/frozen_tree.h"

namespace ckpt::tracer {

// One kind of file descriptor. `saved_as` says how dump_files records it; without it the
// kind is refused and `why` says why.
struct FdKindInfo {
    std::string_view name;  // named in messages: "eventfd", "socket", ...
    std::string_view form;  // what /proc/PID/fd/N shows for it (for docs and readers)
    std::optional<image::FdKind> saved_as;
    std::string_view why;   // refused kinds only
};

// Every descriptor kind ckpt knows. A descriptor matching none of them is refused as unknown.
std::span<const FdKindInfo> fd_kinds();

// The entry of fd_kinds() a descriptor belongs to, from its /proc/PID/fd link, a stat()
// of the link (the file behind it), the f_type of a statfs() of the link and, for a socket,
// its protocol (socket_protocol); nullptr if ckpt does not know the kind.
const FdKindInfo* classify_fd(std::string_view link, const struct stat& st, int64_t fs_magic,
                              std::string_view sock_proto = {});

// The protocol name of the socket behind /proc/PID/fd/N ("UNIX-STREAM", "TCP", ...), "" if
// the kernel does not say.
std::string socket_protocol(const std::string& proc_fd_path);

// What becomes of a VMA that carries one of the two-letter VmFlags of /proc/PID/smaps.
enum class VmFlagUse {
    Mapped,   // recreated by mapping with the saved prot, flags and kind
    Saved,    // saved in the image (image::VmaAdvice, MAP_GROWSDOWN) and reapplied
    Pending,  // to be saved with the other VMA attributes (issue 6); lost until then
    Ignored,  // kernel bookkeeping a restored process may start afresh with
    Refused,  // ckpt cannot recreate it: the dump is refused
};

struct VmFlagInfo {
    std::string_view code;  // as in smaps: "rd", "um", ...
    VmFlagUse use;
    std::string_view meaning;
};

std::span<const VmFlagInfo> vm_flags();
const VmFlagInfo* classify_vm_flag(std::string_view code);  // nullptr: unknown to ckpt

// Refuses (ckpt::Error, one line naming each process and every kind found) a frozen tree
// one of whose processes holds state ckpt cannot save and restore exactly: POSIX timers, file locks,
// namespaces other than ckpt's own, tracees, descriptors of refused or
// unknown kinds, VMAs with refused or unknown flags.
// Also refused: sessions and process groups restore cannot rebuild, and processes sharing
// more than fork() shares (clone flags without CLONE_THREAD).
void audit(const FrozenTree& tree);

}  // namespace ckpt::tracer
