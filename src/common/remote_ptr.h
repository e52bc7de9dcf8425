// An address in another process's address space. It cannot be dereferenced here; it can
// only be passed to the calls that read or write the target (process_vm_*, ptrace, the
// parasite). Keeping it a distinct type stops a target address from being used as a local
// pointer by mistake, and the other way round.
#pragma once

#include <cstdint>
#include <compare>

namespace ckpt {

template <typename T>
class RemotePtr {
  public:
    constexpr RemotePtr() = default;
    constexpr explicit RemotePtr(uint64_t addr) : addr_(addr) {}
    constexpr uint64_t addr() const { return addr_; }
    constexpr bool null() const { return addr_ == 0; }
    template <typename U>
    constexpr RemotePtr<U> cast() const { return RemotePtr<U>(addr_); }
    constexpr RemotePtr operator+(uint64_t n) const { return RemotePtr(addr_ + n * sizeof(T)); }
    constexpr auto operator<=>(const RemotePtr&) const = default;

  private:
    uint64_t addr_ = 0;
};

template <>
class RemotePtr<void> {
  public:
    constexpr RemotePtr() = default;
    constexpr explicit RemotePtr(uint64_t addr) : addr_(addr) {}
    constexpr uint64_t addr() const { return addr_; }
    constexpr bool null() const { return addr_ == 0; }
    template <typename U>
    constexpr RemotePtr<U> cast() const { return RemotePtr<U>(addr_); }
    constexpr RemotePtr byte_offset(uint64_t n) const { return RemotePtr(addr_ + n); }
    constexpr auto operator<=>(const RemotePtr&) const = default;

  private:
    uint64_t addr_ = 0;
};

using RemoteAddr = RemotePtr<void>;

}  // namespace ckpt
