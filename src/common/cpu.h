// CPU facts ckpt records and checks.
#pragma once

#include <cstdint>

namespace ckpt {

// XCR0: the register state components the OS enables (what an xsave area holds).
inline uint64_t read_xcr0() {
    uint32_t lo, hi;
    asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (static_cast<uint64_t>(hi) << 32) | lo;
}

}  // namespace ckpt
