#include "tracer/proc_parse.h"

#include <optional>

#include <charconv>

#include "common/error.h"

namespace ckpt::proc {

namespace {

std::vector<std::string_view> split_lines(std::string_view text) {
    std::vector<std::string_view> lines;
    while (!text.empty()) {
        size_t nl = text.find('\n');
        lines.push_back(text.substr(0, nl));
        if (nl == std::string_view::npos) break;
        text.remove_prefix(nl + 1);
    }
    return lines;
}

// Reads an unsigned number in `base` from the front of s and consumes it.
template <typename T>
T take_num(std::string_view& s, int base, const char* what) {
    T v{};
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
    if (ec != std::errc()) fail("cannot parse {} in '{}'", what, s.substr(0, 60));
    s.remove_prefix(static_cast<size_t>(p - s.data()));
    return v;
}

void skip_spaces(std::string_view& s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
}

void expect(std::string_view& s, char c, const char* what) {
    if (s.empty() || s.front() != c) fail("malformed {}: expected '{}' in '{}'", what, c, s);
    s.remove_prefix(1);
}

bool is_maps_line(std::string_view line) {
    // "start-end perms ..." – smaps field lines are "Name:   value".
    size_t dash = line.find('-');
    size_t space = line.find(' ');
    return dash != std::string_view::npos && space != std::string_view::npos && dash < space;
}

MapsEntry parse_maps_line(std::string_view s) {
    MapsEntry e;
    e.start = take_num<uint64_t>(s, 16, "maps start");
    expect(s, '-', "maps line");
    e.end = take_num<uint64_t>(s, 16, "maps end");
    expect(s, ' ', "maps line");
    if (s.size() < 4) fail("malformed maps line");
    e.read = s[0] == 'r';
    e.write = s[1] == 'w';
    e.exec = s[2] == 'x';
    e.shared = s[3] == 's';
    s.remove_prefix(4);
    skip_spaces(s);
    e.offset = take_num<uint64_t>(s, 16, "maps offset");
    skip_spaces(s);
    e.dev_major = take_num<uint32_t>(s, 16, "maps dev");
    expect(s, ':', "maps dev");
    e.dev_minor = take_num<uint32_t>(s, 16, "maps dev");
    skip_spaces(s);
    e.inode = take_num<uint64_t>(s, 10, "maps inode");
    skip_spaces(s);
    e.path = std::string(s);
    return e;
}

}  // namespace

std::vector<MapsEntry> parse_maps(std::string_view text) {
    std::vector<MapsEntry> out;
    for (auto line : split_lines(text)) {
        if (line.empty()) continue;
        out.push_back(parse_maps_line(line));
    }
    return out;
}

std::map<uint64_t, uint64_t> parse_smaps_resident_kb(std::string_view text) {
    std::map<uint64_t, uint64_t> out;
    uint64_t current = 0;
    bool have = false;
    for (auto line : split_lines(text)) {
        if (line.empty()) continue;
        if (is_maps_line(line)) {
            current = parse_maps_line(line).start;
            have = true;
            out[current] = 0;
        } else if (have && (line.starts_with("Rss:") || line.starts_with("Swap:"))) {
            std::string_view rest = line.substr(line.find(':') + 1);
            skip_spaces(rest);
            out[current] += std::strtoull(std::string(rest).c_str(), nullptr, 10);
        }
    }
    return out;
}

std::map<uint64_t, std::vector<std::string>> parse_smaps_vmflags(std::string_view text) {
    std::map<uint64_t, std::vector<std::string>> out;
    uint64_t current = 0;
    bool have = false;
    for (auto line : split_lines(text)) {
        if (line.empty()) continue;
        if (is_maps_line(line)) {
            current = parse_maps_line(line).start;
            have = true;
            out[current];
        } else if (line.starts_with("VmFlags:")) {
            if (!have) fail("malformed smaps: VmFlags before any mapping");
            std::string_view rest = line.substr(8);
            auto& flags = out[current];
            while (true) {
                skip_spaces(rest);
                if (rest.empty()) break;
                size_t sp = rest.find(' ');
                flags.emplace_back(rest.substr(0, sp));
                if (sp == std::string_view::npos) break;
                rest.remove_prefix(sp);
            }
        }
    }
    return out;
}

Stat parse_stat(std::string_view text) {
    // "pid (comm) state ..." – comm may contain spaces and parentheses: use the last ')'.
    Stat st;
    std::string_view s = text;
    st.pid = static_cast<int>(take_num<int64_t>(s, 10, "stat pid"));
    size_t open = text.find('(');
    size_t close = text.rfind(')');
    if (open == std::string_view::npos || close == std::string_view::npos || close < open)
        fail("malformed /proc stat: no comm");
    st.comm = std::string(text.substr(open + 1, close - open - 1));
    s = text.substr(close + 1);
    std::vector<std::string_view> f;  // f[0] is field 3 (state)
    while (true) {
        skip_spaces(s);
        if (s.empty() || s.front() == '\n') break;
        size_t sp = s.find_first_of(" \n");
        f.push_back(s.substr(0, sp));
        if (sp == std::string_view::npos) break;
        s.remove_prefix(sp);
    }
    if (f.size() < 50) fail("malformed /proc stat: {} fields", f.size() + 2);
    auto num = [&](int field) {  // 1-based field number as in proc(5)
        std::string_view v = f[static_cast<size_t>(field - 3)];
        bool neg = !v.empty() && v.front() == '-';
        if (neg) v.remove_prefix(1);
        auto n = take_num<uint64_t>(v, 10, "stat field");
        return neg ? static_cast<uint64_t>(-static_cast<int64_t>(n)) : n;
    };
    st.state = f[0].empty() ? '?' : f[0][0];
    st.ppid = static_cast<int>(num(4));
    st.pgrp = static_cast<int>(num(5));
    st.session = static_cast<int>(num(6));
    st.tty_nr = static_cast<uint32_t>(num(7));
    st.priority = static_cast<int64_t>(num(18));
    st.nice = static_cast<int64_t>(num(19));
    st.start_code = num(26);
    st.end_code = num(27);
    st.start_stack = num(28);
    st.exit_signal = static_cast<int>(num(38));
    st.rt_priority = num(40);
    st.policy = num(41);
    st.start_data = num(45);
    st.end_data = num(46);
    st.start_brk = num(47);
    st.arg_start = num(48);
    st.arg_end = num(49);
    st.env_start = num(50);
    st.env_end = num(51);
    if (f.size() >= 50) st.exit_code = static_cast<int>(num(52));
    return st;
}

Status parse_status(std::string_view text) {
    Status st;
    for (auto line : split_lines(text)) {
        size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        std::string_view key = line.substr(0, colon);
        std::string_view v = line.substr(colon + 1);
        skip_spaces(v);
        if (key == "Name") {
            st.name = std::string(v);
        } else if (key == "Umask") {
            st.umask = take_num<uint32_t>(v, 8, "Umask");
        } else if (key == "State") {
            st.state = v.empty() ? '?' : v.front();
        } else if (key == "TracerPid") {
            st.tracer_pid = take_num<int>(v, 10, "TracerPid");
        } else if (key == "Threads") {
            st.threads = take_num<int>(v, 10, "Threads");
        } else if (key == "Uid" || key == "Gid") {
            uint32_t* dst = key == "Uid" ? st.uid : st.gid;
            for (int i = 0; i < 4; ++i) {
                skip_spaces(v);
                dst[i] = take_num<uint32_t>(v, 10, "Uid/Gid");
            }
        } else if (key == "Groups") {
            while (true) {
                skip_spaces(v);
                if (v.empty()) break;
                st.groups.push_back(take_num<uint32_t>(v, 10, "Groups"));
            }
        } else if (key == "SigPnd") {
            st.sig_pnd = take_num<uint64_t>(v, 16, "SigPnd");
        } else if (key == "ShdPnd") {
            st.shd_pnd = take_num<uint64_t>(v, 16, "ShdPnd");
        } else if (key == "SigBlk") {
            st.sig_blk = take_num<uint64_t>(v, 16, "SigBlk");
        }
    }
    return st;
}

FdInfo parse_fdinfo(std::string_view text) {
    FdInfo fi;
    bool have_pos = false, have_flags = false;
    for (auto line : split_lines(text)) {
        size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        std::string_view key = line.substr(0, colon);
        std::string_view v = line.substr(colon + 1);
        skip_spaces(v);
        if (key == "pos") {
            fi.pos = take_num<uint64_t>(v, 10, "fdinfo pos");
            have_pos = true;
        } else if (key == "flags") {
            fi.flags = take_num<uint32_t>(v, 8, "fdinfo flags");
            have_flags = true;
        } else if (key == "mnt_id") {
            fi.mnt_id = take_num<int>(v, 10, "fdinfo mnt_id");
        } else if (key == "ino") {
            fi.ino = take_num<uint64_t>(v, 10, "fdinfo ino");
        }
    }
    if (!have_pos || !have_flags) fail("malformed fdinfo: no pos/flags");
    return fi;
}

namespace {

std::optional<std::string_view> fdinfo_value(std::string_view text, std::string_view key) {
    for (auto line : split_lines(text)) {
        if (line.size() <= key.size() || !line.starts_with(key) || line[key.size()] != ':') continue;
        std::string_view v = line.substr(key.size() + 1);
        skip_spaces(v);
        return v;
    }
    return std::nullopt;
}

}  // namespace

uint64_t fdinfo_number(std::string_view text, std::string_view key, int base, const char* what) {
    auto v = fdinfo_value(text, key);
    if (!v) fail("malformed fdinfo: no {} line", what);
    return take_num<uint64_t>(*v, base, what);
}

bool fdinfo_has(std::string_view text, std::string_view key) { return fdinfo_value(text, key).has_value(); }

std::vector<std::string_view> fdinfo_lines(std::string_view text, std::string_view prefix) {
    std::vector<std::string_view> out;
    for (auto line : split_lines(text))
        if (line.starts_with(prefix)) out.push_back(line);
    return out;
}

std::vector<ProcTimer> parse_timers(std::string_view text) {
    // ID: 0 / signal: 26/00007f8ced9af200 / notify: signal/pid.22334 / ClockID: 1
    std::vector<ProcTimer> out;
    for (auto line : split_lines(text)) {
        size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        std::string_view key = line.substr(0, colon), v = line.substr(colon + 1);
        skip_spaces(v);
        if (key == "ID") {
            out.emplace_back();
            out.back().id = take_num<int>(v, 10, "timer ID");
            continue;
        }
        if (out.empty()) fail("malformed /proc timers: '{}' before any ID", line);
        ProcTimer& t = out.back();
        if (key == "signal") {
            t.signo = take_num<int>(v, 10, "timer signal");
            expect(v, '/', "timer signal");
            t.sigval = take_num<uint64_t>(v, 16, "timer sigev_value");
        } else if (key == "notify") {
            size_t slash = v.find('/'), dot = v.find('.');
            if (slash == std::string_view::npos || dot == std::string_view::npos || dot < slash)
                fail("malformed /proc timers notify line '{}'", line);
            std::string_view how = v.substr(0, slash), whom = v.substr(slash + 1, dot - slash - 1);
            if (how == "signal") t.notify = 0;
            else if (how == "none") t.notify = 1;
            else if (how == "thread") t.notify = 2;
            else fail("unknown timer notification '{}'", how);
            if (whom == "tid") t.notify |= 4;
            v.remove_prefix(dot + 1);
            t.target = take_num<int>(v, 10, "timer notify target");
        } else if (key == "ClockID") {
            bool neg = !v.empty() && v.front() == '-';
            if (neg) v.remove_prefix(1);
            t.clockid = take_num<int>(v, 10, "timer ClockID") * (neg ? -1 : 1);
        }
    }
    return out;
}

}  // namespace ckpt::proc
