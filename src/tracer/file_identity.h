// What identifies a file's content: stat fields and, for ELF files, the GNU build-id.
// Recorded at dump for open and mapped files, compared at restore (restore/file_check.h).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "image/format.h"

namespace ckpt::tracer {

// Opens a file for reading its identity without touching its atime when allowed.
// Returns -1 with errno set on failure.
int open_for_identity(const std::string& path);

// fstat of `fd` plus the build-id when the file is an ELF object. `what` names the file in
// errors.
image::FileStat identify_file(int fd, const std::string& what);

// The GNU build-id note (NT_GNU_BUILD_ID) of an ELF64 file, from its PT_NOTE segments;
// empty if the file is not ELF64 or has none. Never fails on a malformed file: a file that
// cannot be parsed simply has no build-id, and its size and mtime still identify it.
std::string elf_build_id(int fd);

// Fills Vma::file of every file mapping, reading each file once through
// /proc/PID/map_files (the mapped inode itself, even if its path now names another file).
void identify_mapped_files(pid_t pid, std::vector<image::Vma>& vmas);

}  // namespace ckpt::tracer
