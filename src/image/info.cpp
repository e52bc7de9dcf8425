#include "image/info.h"

#include <sys/sysmacros.h>

#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/user.h>
#include <sys/wait.h>

#include <cstring>
#include <map>
#include <fmt/ranges.h>
#include <ctime>
#include <string_view>

#include "image/codec.h"
#include "image/info_fields.h"
#include "image/reader.h"

namespace ckpt::image {

namespace {

// Text fields (paths, names, argv) go out as JSON strings when they are valid UTF-8
// (control characters escaped), as hex otherwise: JSON cannot carry arbitrary bytes.
bool valid_utf8(const std::string& s) {
    size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        size_t n = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xe ? 2 : (c >> 3) == 0x1e ? 3 : 9;
        if (n == 9 || (n == 1 && c < 0xc2) || i + n >= s.size()) return false;
        uint32_t cp = n == 0 ? c : c & (0x3f >> n);
        for (size_t k = 1; k <= n; ++k) {
            auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc >> 6) != 0x2) return false;
            cp = (cp << 6) | (cc & 0x3f);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        i += n + 1;
    }
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

template <typename Rec>
void json_record(std::string& out, const Rec& rec);

// Renders any record as JSON by walking its visit() list: nothing to keep in sync by hand.
// How each value looks is decided by its field's style (info_fields.h).
template <typename Rec>
class JsonWriter {
  public:
    explicit JsonWriter(std::string& out) : out_(out) {}

    template <typename T>
    void operator()(const char* name, const T& v) {
        if (!first_) out_ += ", ";
        first_ = false;
        json_string(out_, name);
        out_ += ": ";
        value(fields::style_of(static_cast<const Rec*>(nullptr), name), v);
    }

  private:
    template <Scalar T>
    void value(fields::Style style, const T& v) {
        using fields::Style;
        if constexpr (std::is_same_v<T, char>) {
            json_string(out_, std::string(1, v));
        } else if constexpr (std::is_enum_v<T>) {
            json_string(out_, fields::name_of(v));
        } else if (style == Style::Addr || style == Style::Hex || style == Style::SigMask ||
                   (sizeof(T) == 8 && style == Style::SaFlags)) {
            json_string(out_, fmt::format("{:#x}", static_cast<std::make_unsigned_t<T>>(v)));
        } else if constexpr (sizeof(T) >= 8) {
            json_string(out_, fmt::format("{}", v));  // beyond 2^53: a string, not rounded
        } else {
            out_ += fmt::format("{}", v);
        }
    }
    void value(fields::Style style, const std::string& s) {
        if (style != fields::Style::Bytes && valid_utf8(s)) {
            json_string(out_, s);
        } else {
            std::string hex;
            for (unsigned char c : s) hex += fmt::format("{:02x}", c);
            json_string(out_, hex);
        }
    }
    template <typename T>
    void value(fields::Style style, const std::vector<T>& vec) {
        out_ += '[';
        for (size_t i = 0; i < vec.size(); ++i) {
            if (i) out_ += ", ";
            value(style, vec[i]);
        }
        out_ += ']';
    }
    template <typename T>
        requires(!Scalar<T>)
    void value(fields::Style, const T& rec) {
        json_record(out_, rec);
    }

    std::string& out_;
    bool first_ = true;
};

template <typename Rec>
void json_record(std::string& out, const Rec& rec) {
    out += '{';
    JsonWriter<Rec> w(out);
    const_cast<Rec&>(rec).visit(w);
    out += '}';
}

template <typename Rec>
void json_array(std::string& out, const char* name, const std::vector<Rec>& recs) {
    out += fmt::format(",\n  \"{}\": [", name);
    for (size_t i = 0; i < recs.size(); ++i) {
        out += i ? ",\n    " : "\n    ";
        json_record(out, recs[i]);
    }
    out += recs.empty() ? "]" : "\n  ]";
}

// A field of a record as text, in its style (info_fields.h).
template <typename Rec, typename T>
std::string field(const char* name, T v) {
    auto style = fields::style_of(static_cast<const Rec*>(nullptr), name);
    if constexpr (std::is_signed_v<T>)
        return fields::text_signed(style, v);
    else
        return fields::text(style, v);
}

std::string time_text(uint64_t unix_ns) {
    time_t secs = static_cast<time_t>(unix_ns / 1000000000);
    struct tm tm;
    if (!::gmtime_r(&secs, &tm)) return "?";
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
    return buf;
}

void print_threads(const Image& img, const Process& p, const InfoOptions& opts, std::FILE* out) {
    size_t n = 0;
    for (const auto& t : img.threads) n += t.pid == p.pid;
    if (n == 0) return;
    fmt::print(out, "  threads ({}):\n", n);
    for (const auto& t : img.threads) {
        if (t.pid != p.pid) continue;
        user_regs_struct r{};
        if (t.regs.size() == sizeof r) std::memcpy(&r, t.regs.data(), sizeof r);
        std::string sys;
        if (t.syscall_nr >= 0)
            sys = fmt::format(", in {}{}", field<Thread>("syscall_nr", t.syscall_nr),
                              t.restart != SyscallRestart::None ? " (restarts)" : "");
        std::string mask = t.sigmask ? "  blocked " + field<Thread>("sigmask", t.sigmask) : "";
        fmt::print(out, "    tid {} '{}' state {} ({}){}  pc {} sp {}{}\n", t.tid, t.name, t.state,
                   fields::thread_state_name(t.state), sys, fields::text(fields::Style::Addr, r.rip),
                   fields::text(fields::Style::Addr, r.rsp), mask);
        if (opts.backtrace) {
            for (size_t i = 0; i < t.backtrace.size(); ++i) {
                const auto& f = t.backtrace[i];
                fmt::print(out, "      #{:<2} {:#018x} {} ({})\n", i, f.pc,
                           f.symbol.empty() ? "??" : f.symbol, f.object.empty() ? "?" : f.object);
            }
            if (t.backtrace.empty()) fmt::print(out, "      (no frames)\n");
        }
    }
}

void print_memory(const Image& img, const Process& p, std::FILE* out) {
    size_t n = 0;
    uint64_t size = 0, stored = 0;
    for (const auto& v : img.vmas) {
        if (v.pid != p.pid) continue;
        ++n;
        size += v.end - v.start;
        stored += v.stored_pages * kPageSize;
    }
    if (n == 0) return;
    fmt::print(out, "  memory ({} mappings, {}, {} stored):\n", n, fields::size_text(size),
               fields::size_text(stored));
    fmt::print(out, "    {:<25} {:<4} {:<11} {:>10} {:>10}  {}\n", "address", "perm", "kind", "size",
               "stored", "path");
    for (const auto& v : img.vmas) {
        if (v.pid != p.pid) continue;
        std::string line = fmt::format(
            "    {:012x}-{:012x} {}{} {:<11} {:>10} {:>10}  {}", v.start, v.end, field<Vma>("prot", v.prot),
            v.flags & MAP_SHARED ? 's' : 'p', fields::name_of(v.kind), fields::size_text(v.end - v.start),
            fields::size_text(v.stored_pages * kPageSize),
            v.path + (v.inherit ? " (shared with the parent since fork)" : "") +
                (v.content_pid ? fmt::format(" (content with pid {})", v.content_pid) : ""));
        while (line.back() == ' ') line.pop_back();
        fmt::print(out, "{}\n", line);
    }
}

// The state of an event descriptor's description, in a few words ("" for other kinds).
std::string event_note(const Image& img, const Fd& f) {
    auto ns_text = [](int64_t sec, int64_t nsec) { return fmt::format("{:.3f} s", static_cast<double>(sec) + static_cast<double>(nsec) / 1e9); };
    switch (f.kind) {
        case FdKind::EventFd:
            for (const auto& e : img.eventfds)
                if (e.file_id == f.file_id)
                    return fmt::format(" (count {}{})", e.count, e.semaphore ? ", semaphore" : "");
            break;
        case FdKind::SignalFd:
            for (const auto& e : img.signalfds)
                if (e.file_id == f.file_id) return fmt::format(" (signals {})", field<SignalFd>("mask", e.mask));
            break;
        case FdKind::TimerFd:
            for (const auto& t : img.timerfds)
                if (t.file_id == f.file_id)
                    return fmt::format(" (clock {}{}, {} left, every {}, {} unread)", t.clockid,
                                       t.settime_flags & 1 ? " absolute" : "", ns_text(t.value_sec, t.value_nsec),
                                       ns_text(t.interval_sec, t.interval_nsec), t.ticks);
            break;
        case FdKind::Memfd:
            for (const auto& m : img.memfds)
                if (m.dev == f.dev && m.ino == f.ino)
                    return fmt::format(" ({}, {} stored{})", fields::size_text(m.size), fields::size_text(stored_bytes(m.extents)),
                                       m.seals ? fmt::format(", seals {:#x}", m.seals) : "");
            break;
        case FdKind::UnixSocket:
            for (const auto& r : img.unix_sockets)
                if (r.file_id == f.file_id) {
                    static const char* kTypes[] = {"?", "stream", "dgram", "raw", "rdm", "seqpacket"};
                    size_t queued = 0;
                    for (const auto& m : r.queue) queued += m.size();
                    std::string state = r.state == 10 ? fmt::format("listening, backlog {}", r.backlog)
                                        : r.state == 1 ? (r.peer_ino ? fmt::format("connected to socket:[{}]", r.peer_ino)
                                                                     : std::string("peer closed"))
                                                       : std::string("unconnected");
                    std::string name = r.name.empty() ? "" : r.name[0] == '\0' ? ", @" + r.name.substr(1) : ", " + r.name;
                    return fmt::format(" ({}, {}{}{}{})", r.type < 6 ? kTypes[r.type] : "?", state, name,
                                       queued ? fmt::format(", {} bytes queued in {} message{}", queued, r.queue.size(),
                                                            r.queue.size() == 1 ? "" : "s")
                                              : "",
                                       r.shutdown ? fmt::format(", shutdown {}", r.shutdown) : "");
                }
            break;
        case FdKind::InetSocket:
            for (const auto& r : img.inet_sockets)
                if (r.file_id == f.file_id)
                    return fmt::format(" ({}{} {}, {}{})", r.protocol == 6 ? "TCP" : "UDP", r.family == 10 ? "v6" : "",
                                       fields::sockaddr_text(r.local),
                                       r.state == 10 ? fmt::format("listening, backlog {}", r.backlog)
                                       : r.state == 1 ? std::string("connected") : std::string("not connected"),
                                       r.options.empty() ? "" : fmt::format(", {} options", r.options.size()));
            break;
        case FdKind::PtyMaster:
            for (const auto& r : img.ptys)
                if (r.file_id == f.file_id)
                    return fmt::format(" (pty /dev/pts/{}{}{}{}{})", r.index, r.packet ? ", packet mode" : "",
                                       r.sid ? fmt::format(", terminal of session {}, foreground group {}", r.sid, r.fg_pgrp) : "",
                                       r.output.empty() ? "" : fmt::format(", {} bytes unread", r.output.size()),
                                       r.slave_closed ? ", slave closed" : "");
            break;
        case FdKind::Inotify: {
            std::vector<std::string> watches;
            size_t n = 0;
            for (const auto& w : img.inotify_watches)
                if (w.file_id == f.file_id && ++n <= 8) watches.push_back(fmt::format("{} {} mask {:#x}", w.wd, w.path, w.mask));
            return fmt::format(" ({} watch{}{}{}{})", n, n == 1 ? "" : "es", watches.empty() ? "" : ": ",
                               fmt::join(watches, "; "), n > watches.size() ? "; ..." : "");
        }
        case FdKind::Epoll: {
            std::vector<std::string> targets;
            size_t n = 0;
            for (const auto& t : img.epoll_targets) {
                if (t.file_id != f.file_id) continue;
                if (++n > 8) continue;  // --json has them all
                std::string where;
                for (const auto& o : img.fds)
                    if (o.pid == t.pid && o.file_id == t.target_file_id) {
                        where = o.fd == t.tfd ? "" : fmt::format(" (now fd {} of {})", o.fd, o.pid);
                        break;
                    }
                targets.push_back(fmt::format("fd {}{} events {:#x} data {:#x}", t.tfd, where, t.events, t.data));
            }
            return fmt::format(" ({} target{}{}{}{})", n, n == 1 ? "" : "s", targets.empty() ? "" : ": ",
                               fmt::join(targets, "; "), n > targets.size() ? "; ..." : "");
        }
        default: break;
    }
    return "";
}

void print_files(const Image& img, const Process& p, std::FILE* out) {
    size_t n = 0;
    for (const auto& f : img.fds) n += f.pid == p.pid;
    if (n == 0) return;
    fmt::print(out, "  files ({}):\n", n);
    fmt::print(out, "    {:>4} {:<9} {:<29} {:>10}  {}\n", "fd", "kind", "flags", "pos", "path");
    for (const auto& f : img.fds) {
        if (f.pid != p.pid) continue;
        std::string flags = field<Fd>("open_flags", f.open_flags);
        if (f.fd_flags) flags += "|" + field<Fd>("fd_flags", f.fd_flags);
        std::string notes;
        if (f.dup_of >= 0) notes += fmt::format(" (dup of {})", f.dup_of);
        else notes += event_note(img, f);
        for (const auto& l : img.file_locks)
            if (l.pid == p.pid && l.fd == f.fd)
                notes += fmt::format(" ({} {} lock{})", fields::name_of(l.kind), l.write ? "write" : "read",
                                     l.kind == FileLockKind::Flock ? std::string()
                                     : l.end == ~0ull ? fmt::format(" {}..EOF", l.start)
                                                      : fmt::format(" {}..{}", l.start, l.end));
        if (f.kind == FdKind::Pipe || f.kind == FdKind::Fifo)
            notes += fmt::format(" (size {}{}{})", fields::size_text(f.pipe_size),
                                 f.size ? fmt::format(", {} bytes buffered", f.size) : "",
                                 !f.external ? ""
                                 : f.kind == FdKind::Fifo ? ", external: also held outside the tree"
                                                          : ", external: restore needs --inherit-fd fd[N]:" + f.path + " or --inherit-stdio");
        std::vector<std::string> others;  // the same open file description elsewhere in the tree
        for (const auto& o : img.fds)
            if (o.pid != p.pid && o.file_id == f.file_id) others.push_back(fmt::format("{} fd {}", o.pid, o.fd));
        if (!others.empty()) notes += fmt::format(" (shared with {})", fmt::join(others, ", "));
        fmt::print(out, "    {:>4} {:<9} {:<29} {:>10}  {}{}\n", f.fd, fields::name_of(f.kind), flags,
                   f.kind == FdKind::Pipe || f.kind == FdKind::Fifo ? std::string("-") : std::to_string(f.pos), f.path, notes);
    }
}

// Like pstree: every process under its parent, with its threads and stored memory.
void print_tree(const Image& img, std::FILE* out) {
    fmt::print(out, "process tree ({} processes):\n", img.processes.size());
    std::map<int32_t, int> depth;
    for (const auto& p : img.processes) {
        int d = depth.count(p.ppid) ? depth[p.ppid] + 1 : 0;
        depth[p.pid] = d;
        std::string what;
        if (p.zombie) {
            what = WIFSIGNALED(p.exit_status) ? fmt::format("zombie, killed by {}", fields::signal_name(WTERMSIG(p.exit_status)))
                                              : fmt::format("zombie, exit status {}", WEXITSTATUS(p.exit_status));
        } else {
            uint64_t stored = 0;
            for (const auto& v : img.vmas)
                if (v.pid == p.pid) stored += v.stored_pages * kPageSize;
            what = fmt::format("{} thread{}, {} stored", p.nr_threads, p.nr_threads == 1 ? "" : "s",
                               fields::size_text(stored));
        }
        fmt::print(out, "  {}{} {}  ({}; pgid {} sid {})\n", std::string(static_cast<size_t>(2 * d), ' '), p.pid,
                   p.comm, what, p.pgid, p.sid);
    }
}

void print_handlers(const Process& p, std::FILE* out) {
    size_t n = 0;
    for (const auto& sa : p.sigactions) n += sa.handler != 0;  // not SIG_DFL
    if (n == 0) return;
    fmt::print(out, "  signal handlers ({}, the others default):\n", n);
    for (size_t i = 0; i < p.sigactions.size(); ++i) {
        const auto& sa = p.sigactions[i];
        if (sa.handler == 0) continue;
        fmt::print(out, "    {:<12} {:<14} flags {}  mask {}\n", fields::signal_name(static_cast<int>(i + 1)),
                   sa.handler == 1 ? std::string("SIG_IGN") : field<SigAction>("handler", sa.handler),
                   field<SigAction>("flags", sa.flags), field<SigAction>("mask", sa.mask));
    }
}

void print_posix_timers(const Process& p, std::FILE* out) {
    if (p.posix_timers.empty()) return;
    fmt::print(out, "  POSIX timers ({}):\n", p.posix_timers.size());
    for (const auto& t : p.posix_timers) {
        std::string how = (t.notify & ~4) == 1 ? std::string("no signal")
                          : fmt::format("{}{}", fields::signal_name(t.signo),
                                        (t.notify & 4) ? fmt::format(" to thread {}", t.target_tid) : "");
        fmt::print(out, "    id {:<4} clock {:<3} {:<28} value {:#x}  {:.3f} s left, every {:.3f} s\n", t.id, t.clockid,
                   how, t.sigval, static_cast<double>(t.value_sec) + static_cast<double>(t.value_nsec) / 1e9,
                   static_cast<double>(t.interval_sec) + static_cast<double>(t.interval_nsec) / 1e9);
    }
}

// Only the hierarchies where the process is below the root: on a machine with many v1
// hierarchies the rest is noise (--json has every line).
void print_cgroups(const Process& p, std::FILE* out) {
    if (p.cgroups.empty()) return;
    std::string line;
    size_t at_root = 0;
    for (const auto& c : p.cgroups) {
        if (c.path == "/") {
            ++at_root;
            continue;
        }
        line += fmt::format("{}{} {}", line.empty() ? "" : ", ", c.hierarchy == 0 ? "v2" : c.controllers, c.path);
    }
    if (at_root == p.cgroups.size())
        line = "all at the root";
    else if (at_root)
        line += fmt::format("; {} more at the root", at_root);
    fmt::print(out, "  cgroups: {}\n", line);
}

void print_text(const Image& img, const InfoOptions& opts, std::FILE* out) {
    const auto& h = img.header;
    fmt::print(out, "image: format {}, by ckpt {}, kernel {}, created {}, data {}\n", kFormatVersion,
               h.ckpt_version, h.kernel_release, time_text(h.created_unix_ns),
               fields::size_text(img.end.data_size));
    if (img.processes.size() > 1) print_tree(img, out);
    for (const auto& p : img.processes) {
        if (p.zombie) continue;  // in the tree above
        std::string cmd;
        for (const auto& a : p.argv) cmd += (cmd.empty() ? "" : " ") + a;
        fmt::print(out, "process {} ({}): {}\n", p.pid, p.comm, cmd);
        fmt::print(out, "  exe {}  cwd {}  umask {:03o}  uid {}  gid {}\n", p.exe_path, p.cwd,
                   p.umask, p.creds.euid, p.creds.egid);
        fmt::print(out, "  ppid {} pgid {} sid {}{}  brk {}\n", p.ppid, p.pgid, p.sid,
                   p.ctty ? fmt::format(" (controlling tty {}:{})", ::major(p.ctty), ::minor(p.ctty)) : "",
                   field<MmFields>("brk", p.mm.brk));
        print_cgroups(p, out);
        print_threads(img, p, opts, out);
        print_memory(img, p, out);
        print_files(img, p, out);
        print_handlers(p, out);
        print_posix_timers(p, out);
    }
}

}  // namespace

void print_info(const std::string& dir, const InfoOptions& opts, std::FILE* out) {
    Image img = read_image(dir);
    if (opts.verify) verify_data(dir, img);  // before any output: damage is one error line
    if (!opts.json) {
        print_text(img, opts, out);
        return;
    }
    std::string s = "{\n  \"format_version\": " + std::to_string(kFormatVersion) + ",\n  \"header\": ";
    json_record(s, img.header);
    json_array(s, "processes", img.processes);
    json_array(s, "threads", img.threads);
    json_array(s, "vmas", img.vmas);
    json_array(s, "page_runs", img.page_runs);
    json_array(s, "fds", img.fds);
    for_each_object_records(img, [&](const char* name, const auto& records) { json_array(s, name, records); });
    s += ",\n  \"end\": ";
    json_record(s, img.end);
    s += "\n}\n";
    std::fputs(s.c_str(), out);
}

}  // namespace ckpt::image
