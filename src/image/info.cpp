#include "image/info.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/user.h>

#include <cstring>
#include <string_view>

#include "image/codec.h"
#include "image/reader.h"

namespace ckpt::image {

namespace {

bool printable(const std::string& s) {
    for (unsigned char c : s)
        if (c < 0x20 || c >= 0x7f) return false;
    return true;
}

void json_string(std::string& out, std::string_view s) {
    out += '"';
    for (char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\t': out += "\\t"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20)
                    out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
                else
                    out += c;
        }
    }
    out += '"';
}

// Renders any record as JSON by walking its visit() list: nothing to keep in sync by hand.
class JsonWriter {
  public:
    explicit JsonWriter(std::string& out) : out_(out) {}

    template <typename T>
    void operator()(const char* name, const T& v) {
        if (!first_) out_ += ", ";
        first_ = false;
        json_string(out_, name);
        out_ += ": ";
        value(v);
    }

    template <Scalar T>
    void value(const T& v) {
        if constexpr (std::is_same_v<T, char>)
            json_string(out_, std::string(1, v));
        else if constexpr (std::is_enum_v<T>)
            out_ += fmt::format("{}", static_cast<std::underlying_type_t<T>>(v));
        else
            out_ += fmt::format("{}", v);
    }
    void value(const std::string& s) {
        if (printable(s)) {
            json_string(out_, s);
        } else {
            std::string hex;
            for (unsigned char c : s) hex += fmt::format("{:02x}", c);
            json_string(out_, hex);
        }
    }
    template <typename T>
    void value(const std::vector<T>& vec) {
        out_ += '[';
        for (size_t i = 0; i < vec.size(); ++i) {
            if (i) out_ += ", ";
            value(vec[i]);
        }
        out_ += ']';
    }
    template <typename T>
        requires(!Scalar<T>)
    void value(const T& rec) {
        out_ += '{';
        JsonWriter inner(out_);
        const_cast<T&>(rec).visit(inner);
        out_ += '}';
    }

  private:
    std::string& out_;
    bool first_ = true;
};

template <typename Rec>
void json_array(std::string& out, const char* name, const std::vector<Rec>& recs) {
    out += fmt::format(",\n  \"{}\": [", name);
    for (size_t i = 0; i < recs.size(); ++i) {
        out += i ? ",\n    " : "\n    ";
        JsonWriter(out).value(recs[i]);
    }
    out += recs.empty() ? "]" : "\n  ]";
}

std::string size_text(uint64_t bytes) {
    if (bytes >= (1ull << 30)) return fmt::format("{:.1f} GiB", bytes / double(1ull << 30));
    if (bytes >= (1ull << 20)) return fmt::format("{:.1f} MiB", bytes / double(1ull << 20));
    if (bytes >= (1ull << 10)) return fmt::format("{:.1f} KiB", bytes / double(1ull << 10));
    return fmt::format("{} B", bytes);
}

const char* kind_name(VmaKind k) {
    switch (k) {
        case VmaKind::Anon: return "anon";
        case VmaKind::File: return "file";
        case VmaKind::Heap: return "heap";
        case VmaKind::Stack: return "stack";
        case VmaKind::Vdso: return "vdso";
        case VmaKind::Vvar: return "vvar";
        case VmaKind::VvarVclock: return "vvar_vclock";
        case VmaKind::Vsyscall: return "vsyscall";
    }
    return "?";
}

const char* fd_kind_name(FdKind k) {
    switch (k) {
        case FdKind::Regular: return "file";
        case FdKind::Unlinked: return "unlinked";
        case FdKind::CharDev: return "chardev";
        case FdKind::Tty: return "tty";
        case FdKind::Directory: return "dir";
    }
    return "?";
}

void print_text(const Image& img, const InfoOptions& opts, std::FILE* out) {
    const auto& h = img.header;
    fmt::print(out, "image: format {}, by ckpt {}, kernel {}, data {}\n", kFormatVersion,
               h.ckpt_version, h.kernel_release, size_text(img.end.data_size));
    for (const auto& p : img.processes) {
        std::string cmd;
        for (const auto& a : p.argv) cmd += (cmd.empty() ? "" : " ") + a;
        fmt::print(out, "process {} ({}): {}\n", p.pid, p.comm, cmd);
        fmt::print(out, "  exe {}  cwd {}  umask {:03o}  uid {}  gid {}\n", p.exe_path, p.cwd,
                   p.umask, p.creds.euid, p.creds.egid);
        fmt::print(out, "  ppid {} pgid {} sid {}  brk {:#x}\n", p.ppid, p.pgid, p.sid, p.mm.brk);
        fmt::print(out, "  threads:\n");
        for (const auto& t : img.threads) {
            if (t.pid != p.pid) continue;
            user_regs_struct r{};
            if (t.regs.size() == sizeof r) std::memcpy(&r, t.regs.data(), sizeof r);
            std::string sys = t.syscall_nr >= 0 ? fmt::format(" in syscall {}{}", t.syscall_nr,
                                                               t.restart != SyscallRestart::None ? " (restarts)" : "")
                                                : "";
            fmt::print(out, "    tid {} '{}' state {}{}  pc {:#x} sp {:#x}\n", t.tid, t.name, t.state,
                       sys, r.rip, r.rsp);
            if (opts.backtrace) {
                for (size_t i = 0; i < t.backtrace.size(); ++i) {
                    const auto& f = t.backtrace[i];
                    fmt::print(out, "      #{:<2} {:#018x} {} ({})\n", i, f.pc,
                               f.symbol.empty() ? "??" : f.symbol, f.object.empty() ? "?" : f.object);
                }
                if (t.backtrace.empty()) fmt::print(out, "      (no frames)\n");
            }
        }
        fmt::print(out, "  memory:\n");
        for (const auto& v : img.vmas) {
            if (v.pid != p.pid) continue;
            fmt::print(out, "    {:012x}-{:012x} {}{}{}{} {:<11} {:>10} stored {:>10}  {}\n", v.start, v.end,
                       v.prot & PROT_READ ? 'r' : '-', v.prot & PROT_WRITE ? 'w' : '-',
                       v.prot & PROT_EXEC ? 'x' : '-', v.flags & MAP_SHARED ? 's' : 'p',
                       kind_name(v.kind), size_text(v.end - v.start), size_text(v.stored_pages * kPageSize),
                       v.path);
        }
        fmt::print(out, "  files:\n");
        for (const auto& f : img.fds) {
            if (f.pid != p.pid) continue;
            fmt::print(out, "    {:>4} {:<9} flags {:o} pos {}{}  {}\n", f.fd, fd_kind_name(f.kind),
                       f.open_flags, f.pos, f.dup_of >= 0 ? fmt::format(" (dup of {})", f.dup_of) : "",
                       f.path);
        }
        fmt::print(out, "  signal handlers:\n");
        for (size_t i = 0; i < p.sigactions.size(); ++i) {
            const auto& sa = p.sigactions[i];
            if (sa.handler == 0) continue;  // SIG_DFL
            const char* name = sigabbrev_np(static_cast<int>(i + 1));
            fmt::print(out, "    SIG{:<8} {} flags {:#x} mask {:#x}\n",
                       name ? name : fmt::format("{}", i + 1).c_str(),
                       sa.handler == 1 ? std::string("SIG_IGN") : fmt::format("{:#x}", sa.handler),
                       sa.flags, sa.mask);
        }
    }
}

}  // namespace

void print_info(const std::string& dir, const InfoOptions& opts, std::FILE* out) {
    Image img = read_image(dir);
    if (!opts.json) {
        print_text(img, opts, out);
        return;
    }
    std::string s = "{\n  \"format_version\": " + std::to_string(kFormatVersion) + ",\n  \"header\": ";
    JsonWriter(s).value(img.header);
    json_array(s, "processes", img.processes);
    json_array(s, "threads", img.threads);
    json_array(s, "vmas", img.vmas);
    json_array(s, "page_runs", img.page_runs);
    json_array(s, "fds", img.fds);
    s += ",\n  \"end\": ";
    JsonWriter(s).value(img.end);
    s += "\n}\n";
    std::fputs(s.c_str(), out);
}

}  // namespace ckpt::image
