// How `ckpt info` shows each field of the image: the one place that decides it, for the text
// summary and for --json alike. style_of() says what a field holds (an address, a signal
// mask, open flags...); the render functions turn a value of that style into text.
//
// JSON rules (docs/image-format.md): 64-bit integers are strings, so that jq and JavaScript
// do not round them: hex ("0x7ffd...") for addresses, masks, ids and checksums, decimal
// otherwise; integers of 32 bits or less are numbers; enums are their names; byte blobs
// (registers, siginfo, cpu sets) are hex strings.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "image/format.h"

namespace ckpt::image::fields {

enum class Style {
    Plain,
    Addr,       // a target address
    Hex,        // an id, checksum, feature mask, file offset shown in hex
    Bytes,      // a binary blob (in a std::string)
    SigMask,    // bit n-1 = signal n
    SaFlags,    // SA_*
    OpenFlags,  // O_*
    FdFlags,    // FD_CLOEXEC
    Prot,       // PROT_*
    MapFlags,   // MAP_*
    Advice,     // VmaAdvice bits
    Mode,       // st_mode
    Syscall,    // x86_64 syscall number
};

// What each field of each record is; Plain for anything not listed. The pointer only picks
// the record type.
Style style_of(const Header*, std::string_view field);
Style style_of(const SigAction*, std::string_view field);
Style style_of(const MmFields*, std::string_view field);
Style style_of(const Process*, std::string_view field);
Style style_of(const BacktraceFrame*, std::string_view field);
Style style_of(const Thread*, std::string_view field);
Style style_of(const Vma*, std::string_view field);
Style style_of(const PageRun*, std::string_view field);
Style style_of(const Fd*, std::string_view field);
Style style_of(const SignalFd*, std::string_view field);
Style style_of(const EpollTarget*, std::string_view field);
Style style_of(const InotifyWatch*, std::string_view field);
Style style_of(const Memfd*, std::string_view field);
Style style_of(const SysvShm*, std::string_view field);
Style style_of(const UnixSocket*, std::string_view field);
Style style_of(const InetSocket*, std::string_view field);
Style style_of(const Pty*, std::string_view field);
Style style_of(const SockOpt*, std::string_view field);
template <typename Rec>
Style style_of(const Rec*, std::string_view) {
    return Style::Plain;
}

// Text of an integer field of the given style ("0x7ffd...", "SIGINT,SIGTERM", "O_RDWR|O_APPEND",
// "nanosleep", ...).
std::string text(Style style, uint64_t value);
std::string text_signed(Style style, int64_t value);

// The name of an enum value, for text and JSON.
const char* name_of(VmaKind k);
const char* name_of(FdKind k);
const char* name_of(FileLockKind k);
const char* name_of(SyscallRestart r);

std::string signal_name(int sig);          // "SIGINT", "SIGRTMIN+2"; kernel numbering
std::string syscall_name(int64_t nr);      // "nanosleep", or the number if unknown
const char* thread_state_name(char state);  // "sleeping" for 'S', ...
std::string size_text(uint64_t bytes);      // "1.5 MiB"
std::string sockaddr_text(const std::string& sa);  // "127.0.0.1:80", "[::1]:80" from sockaddr bytes; "unbound"

}  // namespace ckpt::image::fields
