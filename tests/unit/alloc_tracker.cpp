// Replaces the global operator new/delete of the test binary to observe how much memory a
// decoder asks for (see AllocLimit in test_support.h). Only plain and array new are
// replaced; they allocate with malloc like the default ones, and the replaced deletes free.
#include <atomic>
#include <cstdlib>
#include <new>

#include "test_support.h"

namespace {

std::atomic<bool> g_tracking{false};
std::atomic<size_t> g_limit{0};
std::atomic<size_t> g_largest{0};
std::atomic<bool> g_refused{false};

void* allocate(std::size_t n) {
    if (g_tracking.load(std::memory_order_relaxed)) {
        size_t prev = g_largest.load(std::memory_order_relaxed);
        while (n > prev && !g_largest.compare_exchange_weak(prev, n)) {
        }
        if (n > g_limit.load(std::memory_order_relaxed)) {
            g_refused = true;
            throw std::bad_alloc();
        }
    }
    if (n == 0) n = 1;
    void* p = std::malloc(n);
    if (!p) throw std::bad_alloc();
    return p;
}

}  // namespace

void* operator new(std::size_t n) { return allocate(n); }
void* operator new[](std::size_t n) { return allocate(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace ckpt::test {

AllocLimit::AllocLimit(size_t limit) {
    g_limit = limit;
    g_largest = 0;
    g_refused = false;
    g_tracking = true;
}

AllocLimit::~AllocLimit() { g_tracking = false; }

size_t AllocLimit::largest() const { return g_largest.load(); }
bool AllocLimit::refused() const { return g_refused.load(); }

}  // namespace ckpt::test
