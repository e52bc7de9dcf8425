// Parsers for the /proc files the dump reads. They take text, not paths, so unit tests
// run them on recorded samples.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace ckpt::proc {

struct MapsEntry {
    uint64_t start = 0, end = 0;
    bool read = false, write = false, exec = false, shared = false;
    uint64_t offset = 0;
    uint32_t dev_major = 0, dev_minor = 0;
    uint64_t inode = 0;
    std::string path;  // may be empty, "[heap]", "/dev/zero (deleted)", "/x (deleted)"
};

std::vector<MapsEntry> parse_maps(std::string_view text);

// VmFlags of each VMA in smaps, keyed by VMA start.
std::map<uint64_t, std::vector<std::string>> parse_smaps_vmflags(std::string_view text);
// Rss + Swap of each VMA in smaps, in KiB, keyed by VMA start: zero means no page of it is
// in memory or swap, so it holds nothing to save.
std::map<uint64_t, uint64_t> parse_smaps_resident_kb(std::string_view text);

struct Stat {  // the fields of /proc/PID/stat the dump uses
    int pid = 0;
    std::string comm;
    char state = '?';
    int ppid = 0, pgrp = 0, session = 0;
    uint32_t tty_nr = 0;  // the controlling terminal (kernel dev_t encoding), 0 if none
    int64_t priority = 0, nice = 0;
    uint64_t start_code = 0, end_code = 0, start_stack = 0;
    uint64_t start_data = 0, end_data = 0, start_brk = 0;
    uint64_t arg_start = 0, arg_end = 0, env_start = 0, env_end = 0;
    uint64_t policy = 0, rt_priority = 0;
    int exit_signal = 0;  // sent to the parent at exit (SIGCHLD for fork())
    int exit_code = 0;    // a zombie's wait status
};

Stat parse_stat(std::string_view text);

struct Status {
    uint32_t umask = 0;
    uint32_t uid[4] = {}, gid[4] = {};  // real, effective, saved, fs
    std::vector<uint32_t> groups;
    std::string name;
    char state = '?';
    int tracer_pid = 0;
    int threads = 0;
    uint64_t sig_pnd = 0, shd_pnd = 0, sig_blk = 0;
};

Status parse_status(std::string_view text);

struct FdInfo {
    uint64_t pos = 0;
    uint32_t flags = 0;  // octal in the file
    int mnt_id = -1;
    uint64_t ino = 0;
};

FdInfo parse_fdinfo(std::string_view text);

// One timer of /proc/PID/timers.
struct ProcTimer {
    int id = 0;
    int signo = 0;
    uint64_t sigval = 0;
    int notify = 0;  // SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD, plus SIGEV_THREAD_ID (4) when "tid"
    int target = 0;  // the pid or tid it signals
    int clockid = 0;
};
std::vector<ProcTimer> parse_timers(std::string_view text);

// The number on the line "KEY: N" of fdinfo text (spaces after the colon skipped), read in
// `base`; fails naming `what` if the line is missing or malformed.
uint64_t fdinfo_number(std::string_view text, std::string_view key, int base, const char* what);
// Whether fdinfo text has a line "KEY: ...".
bool fdinfo_has(std::string_view text, std::string_view key);
// Every line of fdinfo text starting with `prefix` (epoll's "tfd:" lines).
std::vector<std::string_view> fdinfo_lines(std::string_view text, std::string_view prefix);

}  // namespace ckpt::proc
