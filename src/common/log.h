// Diagnostics on stderr. Errors that end a command are not logged here: they are thrown
// and printed once, as one line, by main.
#pragma once

#include <fmt/format.h>

#include <cstdio>

namespace ckpt::log {

inline int verbosity = 0;  // 0: quiet, 1: -v (info), 2: -vv (debug)

template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
    if (verbosity >= 1) fmt::print(stderr, "ckpt: {}\n", fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
    if (verbosity >= 2) fmt::print(stderr, "ckpt: {}\n", fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
    fmt::print(stderr, "ckpt: warning: {}\n", fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace ckpt::log
