// Raw Linux x86_64 system calls for freestanding code (parasite, restorer stub).
// No libc: errors come back as -errno in the return value, as the kernel gives them.
#pragma once

#include <stdint.h>

namespace ckpt::fs {

inline long syscall6(long nr, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0,
                     long a6 = 0) {
    long ret;
    register long r10 asm("r10") = a4;
    register long r8 asm("r8") = a5;
    register long r9 asm("r9") = a6;
    asm volatile("syscall"
                 : "=a"(ret)
                 : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                 : "rcx", "r11", "memory");
    return ret;
}

// Arguments are integers or pointers; both travel as a register-sized long.
template <typename T>
inline long to_arg(T v) {
    return static_cast<long>(v);
}
template <typename T>
inline long to_arg(T* p) {
    return reinterpret_cast<long>(p);
}

template <typename... Args>
inline long sys(long nr, Args... args) {
    return syscall6(nr, to_arg(args)...);
}

inline bool is_err(long ret) { return ret < 0 && ret > -4096; }

// The bits of libc the compiler may still emit calls to, even with -fno-builtin.
extern "C" inline void* memcpy(void* dst, const void* src, unsigned long n) {
    auto* d = static_cast<unsigned char*>(dst);
    auto* s = static_cast<const unsigned char*>(src);
    while (n--) *d++ = *s++;
    return dst;
}
extern "C" inline void* memset(void* dst, int c, unsigned long n) {
    auto* d = static_cast<unsigned char*>(dst);
    while (n--) *d++ = static_cast<unsigned char>(c);
    return dst;
}

}  // namespace ckpt::fs
