// Small, checked file helpers for the hosted side.
#pragma once

#include <string>
#include <string_view>

namespace ckpt {

// Whole file as text (works for /proc files whose size is reported as 0).
std::string read_file(const std::string& path);
// Target of a symlink such as /proc/PID/cwd.
std::string read_link(const std::string& path);
// Writes the whole buffer, retrying on short writes.
void write_all(int fd, const void* buf, size_t len, std::string_view what);
// Reads exactly len bytes at offset; fails on a short read (truncated file).
void pread_exact(int fd, void* buf, size_t len, uint64_t off, std::string_view what);

}  // namespace ckpt
