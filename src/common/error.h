// Errors carried as exceptions with context. Every message names what failed (which pid,
// which file, which record) so the single line a user sees is enough to act on.
#pragma once

#include <fmt/format.h>

#include <cerrno>
#include <stdexcept>
#include <string>

namespace ckpt {

std::string errno_text(int err);

class Error : public std::runtime_error {
  public:
    explicit Error(const std::string& what) : std::runtime_error(what) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
    throw Error(fmt::format(f, std::forward<Args>(args)...));
}

// Appends strerror(errno) (captured before formatting can change it).
template <typename... Args>
[[noreturn]] void fail_errno(fmt::format_string<Args...> f, Args&&... args) {
    int saved = errno;
    throw Error(fmt::format("{}: {}", fmt::format(f, std::forward<Args>(args)...),
                            errno_text(saved)));
}

}  // namespace ckpt
