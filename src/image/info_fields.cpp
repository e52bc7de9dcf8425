#include "image/info_fields.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <fmt/format.h>
#include <signal.h>
#include <string.h>

#include <bit>
#include <initializer_list>
#include <utility>

namespace ckpt::image::fields {

namespace {

using Names = std::initializer_list<std::pair<std::string_view, Style>>;

Style lookup(Names names, std::string_view field) {
    for (const auto& [n, s] : names)
        if (n == field) return s;
    return Style::Plain;
}

struct Bit {
    uint64_t bit;
    const char* name;
};

// "A|B|0x40": known bits by name, the rest in hex; `none` for 0.
std::string bits_text(uint64_t v, std::initializer_list<Bit> bits, const char* none) {
    if (v == 0) return none;
    std::string out;
    for (const auto& b : bits) {
        if ((v & b.bit) == b.bit) {
            out += fmt::format("{}{}", out.empty() ? "" : "|", b.name);
            v &= ~b.bit;
        }
    }
    if (v) out += fmt::format("{}{:#x}", out.empty() ? "" : "|", v);
    return out;
}

std::string signal_set(uint64_t mask) {
    if (mask == 0) return "none";
    // a mostly-full mask (everything blocked) reads better by what is missing
    bool inverted = std::popcount(mask) > 32;
    uint64_t show = inverted ? ~mask : mask;
    std::string out = inverted ? "all but " : "";
    bool first = true;
    for (int sig = 1; sig <= 64; ++sig) {
        if (!(show & (1ULL << (sig - 1)))) continue;
        out += (first ? "" : ",") + signal_name(sig);
        first = false;
    }
    if (first) out = "all";
    return out;
}

std::string open_flags(uint64_t f) {
    // numeric: glibc defines O_LARGEFILE as 0 on x86_64, the kernel reports 0100000
    static constexpr const char* kAcc[] = {"O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE"};
    std::string rest = bits_text(f & ~3ULL,
                                 {{04010000, "O_SYNC"},  // __O_SYNC | O_DSYNC
                                  {0100, "O_CREAT"},
                                  {0200, "O_EXCL"},
                                  {0400, "O_NOCTTY"},
                                  {01000, "O_TRUNC"},
                                  {02000, "O_APPEND"},
                                  {04000, "O_NONBLOCK"},
                                  {010000, "O_DSYNC"},
                                  {020000, "O_ASYNC"},
                                  {040000, "O_DIRECT"},
                                  {0100000, "O_LARGEFILE"},
                                  {0200000, "O_DIRECTORY"},
                                  {0400000, "O_NOFOLLOW"},
                                  {01000000, "O_NOATIME"},
                                  {02000000, "O_CLOEXEC"},
                                  {010000000, "O_PATH"},
                                  {020000000, "O_TMPFILE"}},
                                 "");
    return std::string(kAcc[f & 3]) + (rest.empty() ? "" : "|" + rest);
}

std::string sa_flags(uint64_t f) {
    return bits_text(f,
                     {{0x00000001, "SA_NOCLDSTOP"},
                      {0x00000002, "SA_NOCLDWAIT"},
                      {0x00000004, "SA_SIGINFO"},
                      {0x00000400, "SA_UNSUPPORTED"},
                      {0x00000800, "SA_EXPOSE_TAGBITS"},
                      {0x04000000, "SA_RESTORER"},
                      {0x08000000, "SA_ONSTACK"},
                      {0x10000000, "SA_RESTART"},
                      {0x40000000, "SA_NODEFER"},
                      {0x80000000, "SA_RESETHAND"}},
                     "none");
}

std::string prot_text(uint64_t p) {
    if (p & ~7ULL) return fmt::format("{:#x}", p);
    return fmt::format("{}{}{}", p & 1 ? 'r' : '-', p & 2 ? 'w' : '-', p & 4 ? 'x' : '-');
}

std::string map_flags(uint64_t f) {
    return bits_text(f,
                     {{0x01, "MAP_SHARED"},
                      {0x02, "MAP_PRIVATE"},
                      {0x20, "MAP_ANONYMOUS"},
                      {0x0100, "MAP_GROWSDOWN"},
                      {0x4000, "MAP_NORESERVE"},
                      {0x2000, "MAP_LOCKED"}},
                     "0");
}

std::string advice_text(uint64_t a) {
    return bits_text(a,
                     {{kAdviceHugepage, "hugepage"},
                      {kAdviceNoHugepage, "nohugepage"},
                      {kAdviceDontDump, "dontdump"},
                      {kAdviceDontFork, "dontfork"},
                      {kAdviceWipeOnFork, "wipeonfork"},
                      {kAdviceLocked, "locked"}},
                     "none");
}

struct SyscallName {
    int nr;
    const char* name;
};
constexpr SyscallName kSyscalls[] = {
#include "syscall_names.inc"
};

}  // namespace

Style style_of(const Header*, std::string_view f) {
    return lookup({{"image_id", Style::Hex}, {"xfeatures", Style::Hex}}, f);
}
Style style_of(const SigAction*, std::string_view f) {
    return lookup({{"handler", Style::Addr},
                   {"flags", Style::SaFlags},
                   {"restorer", Style::Addr},
                   {"mask", Style::SigMask}},
                  f);
}
Style style_of(const MmFields*, std::string_view) { return Style::Addr; }
Style style_of(const Process*, std::string_view f) {
    return lookup({{"auxv", Style::Hex},
                   {"shared_pending", Style::Bytes},
                   {"vdso_hash", Style::Hex},
                   {"personality", Style::Hex}},
                  f);
}
Style style_of(const BacktraceFrame*, std::string_view f) {
    return lookup({{"pc", Style::Addr}, {"sp", Style::Addr}}, f);
}
Style style_of(const Thread*, std::string_view f) {
    return lookup({{"regs", Style::Bytes},
                   {"xsave", Style::Bytes},
                   {"sigmask", Style::SigMask},
                   {"altstack_sp", Style::Addr},
                   {"clear_child_tid", Style::Addr},
                   {"robust_list", Style::Addr},
                   {"rseq_addr", Style::Addr},
                   {"rseq_sig", Style::Hex},
                   {"affinity", Style::Bytes},
                   {"syscall_nr", Style::Syscall},
                   {"pending", Style::Bytes}},
                  f);
}
Style style_of(const Vma*, std::string_view f) {
    return lookup({{"start", Style::Addr},
                   {"end", Style::Addr},
                   {"prot", Style::Prot},
                   {"flags", Style::MapFlags},
                   {"advice", Style::Advice},
                   {"pgoff", Style::Hex}},
                  f);
}
Style style_of(const PageRun*, std::string_view f) {
    return lookup({{"addr", Style::Addr}, {"data_offset", Style::Hex}, {"checksum", Style::Hex}}, f);
}
Style style_of(const Fd*, std::string_view f) {
    return lookup({{"open_flags", Style::OpenFlags},
                   {"fd_flags", Style::FdFlags},
                   {"mode", Style::Mode},
                   {"data_offset", Style::Hex},
                   {"checksum", Style::Hex}},
                  f);
}

Style style_of(const SignalFd*, std::string_view f) {
    return lookup({{"mask", Style::SigMask}}, f);
}
Style style_of(const Pty*, std::string_view f) {
    return lookup({{"termios", Style::Bytes}, {"winsize", Style::Bytes}, {"output", Style::Bytes}}, f);
}
Style style_of(const InetSocket*, std::string_view f) {
    return lookup({{"local", Style::Bytes}, {"peer", Style::Bytes}}, f);
}
Style style_of(const SockOpt*, std::string_view f) {
    return lookup({{"value", Style::Bytes}}, f);
}
Style style_of(const UnixSocket*, std::string_view f) {
    return lookup({{"path_mode", Style::Mode}, {"queue", Style::Bytes}}, f);
}
Style style_of(const SysvShm*, std::string_view f) {
    return lookup({{"key", Style::Hex}, {"mode", Style::Mode}, {"data_offset", Style::Hex}, {"checksum", Style::Hex}}, f);
}
Style style_of(const Memfd*, std::string_view f) {
    return lookup({{"mode", Style::Mode}, {"seals", Style::Hex}, {"data_offset", Style::Hex}, {"checksum", Style::Hex}}, f);
}
Style style_of(const InotifyWatch*, std::string_view f) {
    return lookup({{"mask", Style::Hex}}, f);
}
Style style_of(const EpollTarget*, std::string_view f) {
    return lookup({{"events", Style::Hex}, {"data", Style::Hex}}, f);
}

std::string text(Style style, uint64_t v) {
    switch (style) {
        case Style::Addr:
        case Style::Hex: return fmt::format("{:#x}", v);
        case Style::SigMask: return signal_set(v);
        case Style::SaFlags: return sa_flags(v);
        case Style::OpenFlags: return open_flags(v);
        case Style::FdFlags: return bits_text(v, {{1, "FD_CLOEXEC"}}, "none");
        case Style::Prot: return prot_text(v);
        case Style::MapFlags: return map_flags(v);
        case Style::Advice: return advice_text(v);
        case Style::Mode: return fmt::format("{:o}", v);
        case Style::Syscall: return syscall_name(static_cast<int64_t>(v));
        case Style::Plain:
        case Style::Bytes: break;
    }
    return fmt::format("{}", v);
}

std::string text_signed(Style style, int64_t v) {
    if (v < 0 && (style == Style::Plain || style == Style::Syscall)) return fmt::format("{}", v);
    return text(style, static_cast<uint64_t>(v));
}

const char* name_of(VmaKind k) {
    switch (k) {
        case VmaKind::Anon: return "anon";
        case VmaKind::File: return "file";
        case VmaKind::Heap: return "heap";
        case VmaKind::Stack: return "stack";
        case VmaKind::Vdso: return "vdso";
        case VmaKind::Vvar: return "vvar";
        case VmaKind::VvarVclock: return "vvar_vclock";
        case VmaKind::Vsyscall: return "vsyscall";
        case VmaKind::Memfd: return "memfd";
        case VmaKind::SysvShm: return "sysv_shm";
    }
    return "unknown";
}

const char* name_of(FileLockKind k) {
    switch (k) {
        case FileLockKind::Posix: return "posix";
        case FileLockKind::Flock: return "flock";
        case FileLockKind::Ofd: return "ofd";
    }
    return "?";
}

const char* name_of(FdKind k) {
    switch (k) {
        case FdKind::Regular: return "file";
        case FdKind::Unlinked: return "unlinked";
        case FdKind::CharDev: return "chardev";
        case FdKind::Tty: return "tty";
        case FdKind::Directory: return "dir";
        case FdKind::Pipe: return "pipe";
        case FdKind::Fifo: return "fifo";
        case FdKind::EventFd: return "eventfd";
        case FdKind::Epoll: return "epoll";
        case FdKind::SignalFd: return "signalfd";
        case FdKind::TimerFd: return "timerfd";
        case FdKind::Inotify: return "inotify";
        case FdKind::Memfd: return "memfd";
        case FdKind::UnixSocket: return "unix";
        case FdKind::InetSocket: return "inet";
        case FdKind::PtyMaster: return "ptmx";
        case FdKind::PtySlave: return "pts";
    }
    return "unknown";
}

const char* name_of(SyscallRestart r) {
    switch (r) {
        case SyscallRestart::None: return "none";
        case SyscallRestart::Restart: return "restart";
        case SyscallRestart::RestartBlock: return "restart_block";
    }
    return "unknown";
}

std::string signal_name(int sig) {
    // glibc's names (as `kill -l` shows them): SIGRTMIN is 34, 32 and 33 are glibc-internal
    if (sig >= 1 && sig < 32) {
        const char* n = sigabbrev_np(sig);
        if (n) return std::string("SIG") + n;
    }
    if (sig == 34) return "SIGRTMIN";
    if (sig == 64) return "SIGRTMAX";
    if (sig > 34 && sig <= 49) return fmt::format("SIGRTMIN+{}", sig - 34);
    if (sig >= 50 && sig < 64) return fmt::format("SIGRTMAX-{}", 64 - sig);
    return fmt::format("SIG{}", sig);
}

std::string syscall_name(int64_t nr) {
    for (const auto& s : kSyscalls)
        if (s.nr == nr) return s.name;
    return fmt::format("syscall {}", nr);
}

const char* thread_state_name(char state) {
    switch (state) {
        case 'R': return "running";
        case 'S': return "sleeping";
        case 'D': return "disk sleep";
        case 'T': return "stopped";
        case 't': return "tracing stop";
        case 'Z': return "zombie";
        case 'X': return "dead";
        case 'I': return "idle";
        case 'P': return "parked";
    }
    return "unknown";
}

std::string size_text(uint64_t bytes) {
    if (bytes >= (1ull << 30)) return fmt::format("{:.1f} GiB", bytes / double(1ull << 30));
    if (bytes >= (1ull << 20)) return fmt::format("{:.1f} MiB", bytes / double(1ull << 20));
    if (bytes >= (1ull << 10)) return fmt::format("{:.1f} KiB", bytes / double(1ull << 10));
    return fmt::format("{} B", bytes);
}

// "127.0.0.1:8080", "[::1]:80" from a struct sockaddr_in/_in6 kept as bytes.
std::string sockaddr_text(const std::string& sa) {
    char host[INET6_ADDRSTRLEN] = "?";
    sa_family_t family = 0;
    if (sa.size() >= sizeof family) std::memcpy(&family, sa.data(), sizeof family);
    if (family == AF_INET6 && sa.size() >= sizeof(sockaddr_in6)) {
        sockaddr_in6 a;
        std::memcpy(&a, sa.data(), sizeof a);
        ::inet_ntop(AF_INET6, &a.sin6_addr, host, sizeof host);
        return fmt::format("[{}]:{}", host, ntohs(a.sin6_port));
    }
    if (family == AF_INET && sa.size() >= sizeof(sockaddr_in)) {
        sockaddr_in a;
        std::memcpy(&a, sa.data(), sizeof a);
        ::inet_ntop(AF_INET, &a.sin_addr, host, sizeof host);
        return fmt::format("{}:{}", host, ntohs(a.sin_port));
    }
    return "unbound";
}

}  // namespace ckpt::image::fields
