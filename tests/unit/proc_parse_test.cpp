// /proc parsers (tracer/proc_parse.h) on samples recorded on a real machine
// (samples/record_samples.sh; the expected values below come from what the recording
// program printed from system calls, samples/recorded.log, or from reading the sample by
// eye), on hand-written samples of edge cases (*_synthetic.txt), on this process's own /proc
// files, and on malformed input.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/fs.h"
#include "test_support.h"
#include "tracer/proc_parse.h"

#ifndef CKPT_SAMPLES_DIR
#error "CKPT_SAMPLES_DIR must be defined (tests/unit/CMakeLists.txt)"
#endif

namespace ckpt::test {
namespace {

using proc::MapsEntry;

std::string sample(const std::string& name) { return read_bytes(std::string(CKPT_SAMPLES_DIR) + "/" + name); }

// The kernel's O_LARGEFILE (glibc defines it as 0 on x86_64)
constexpr uint32_t kKernelLargefile = 0100000;

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string::npos) nl = text.size();
        out.push_back(text.substr(pos, nl - pos));
        pos = nl + 1;
    }
    return out;
}

// An independent reading of one maps line (sscanf), to cross-check parse_maps on every line.
MapsEntry scan_maps_line(const std::string& line) {
    MapsEntry e;
    char perms[8] = {};
    unsigned long long start, end, off, ino;
    unsigned maj, min;
    int n = -1;
    int got = std::sscanf(line.c_str(), "%llx-%llx %4s %llx %x:%x %llu %n", &start, &end, perms, &off, &maj,
                          &min, &ino, &n);
    if (got != 7 || n < 0) {
        ADD_FAILURE() << "sscanf cannot read maps line: " << line;
        return e;
    }
    e.start = start;
    e.end = end;
    e.read = perms[0] == 'r';
    e.write = perms[1] == 'w';
    e.exec = perms[2] == 'x';
    e.shared = perms[3] == 's';
    e.offset = off;
    e.dev_major = maj;
    e.dev_minor = min;
    e.inode = ino;
    e.path = line.substr(static_cast<size_t>(n));
    return e;
}

std::string describe(const MapsEntry& e) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "%" PRIx64 "-%" PRIx64 " %c%c%c%c off %" PRIx64 " dev %x:%x ino %" PRIu64 " ",
                  e.start, e.end, e.read ? 'r' : '-', e.write ? 'w' : '-', e.exec ? 'x' : '-', e.shared ? 's' : 'p',
                  e.offset, e.dev_major, e.dev_minor, e.inode);
    return buf + ("'" + e.path + "'");
}

void expect_same_entries(const std::vector<MapsEntry>& got, const std::vector<MapsEntry>& want) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(describe(got[i]), describe(want[i])) << "entry " << i;
}

const MapsEntry* find_path(const std::vector<MapsEntry>& maps, const std::string& path) {
    for (const auto& m : maps)
        if (m.path == path) return &m;
    return nullptr;
}

const MapsEntry* find_start(const std::vector<MapsEntry>& maps, uint64_t start) {
    for (const auto& m : maps)
        if (m.start == start) return &m;
    return nullptr;
}

// ---- maps ---------------------------------------------------------------------------------

TEST(ProcMaps, RecordedSampleEveryLine) {
    std::string text = sample("maps.txt");
    auto maps = proc::parse_maps(text);
    std::vector<MapsEntry> want;
    for (const auto& l : lines_of(text)) want.push_back(scan_maps_line(l));
    ASSERT_EQ(maps.size(), 33u);
    expect_same_entries(maps, want);
}

TEST(ProcMaps, RecordedSampleSpecialMappings) {
    auto maps = proc::parse_maps(sample("maps.txt"));

    const MapsEntry* zero = find_start(maps, 0x20000000);
    ASSERT_NE(zero, nullptr);
    EXPECT_EQ(zero->path, "/dev/zero (deleted)");
    EXPECT_EQ(zero->end, 0x20002000u);
    EXPECT_TRUE(zero->read && zero->write && zero->shared && !zero->exec);
    EXPECT_EQ(zero->dev_major, 0u);
    EXPECT_EQ(zero->dev_minor, 1u);
    EXPECT_EQ(zero->inode, 1148u);

    const MapsEntry* spaces = find_start(maps, 0x21000000);
    ASSERT_NE(spaces, nullptr);
    EXPECT_EQ(spaces->path, "/tmp/tmp.MCDzHidoRE/dir with spaces/my file (1).bin");
    EXPECT_EQ(spaces->offset, 0x1000u);
    EXPECT_TRUE(spaces->read && !spaces->write && !spaces->shared);
    EXPECT_EQ(spaces->dev_major, 0xfeu);
    EXPECT_EQ(spaces->dev_minor, 0u);
    EXPECT_EQ(spaces->inode, 10952941u);

    const MapsEntry* gone = find_start(maps, 0x22000000);
    ASSERT_NE(gone, nullptr);
    EXPECT_EQ(gone->path, "/tmp/tmp.MCDzHidoRE/gone.bin (deleted)");
    EXPECT_TRUE(gone->shared);

    // the madvise test areas are anonymous: empty path (the line ends with "0 ")
    for (uint64_t a : {0x10000000u, 0x10200000u, 0x10600000u, 0x10800000u}) {
        const MapsEntry* m = find_start(maps, a);
        ASSERT_NE(m, nullptr) << std::hex << a;
        EXPECT_EQ(m->path, "");
        EXPECT_EQ(m->inode, 0u);
    }

    const MapsEntry* heap = find_path(maps, "[heap]");
    ASSERT_NE(heap, nullptr);
    EXPECT_EQ(heap->start, 0x556b34845000u);
    EXPECT_EQ(heap->end, 0x556b34876000u);
    const MapsEntry* stack = find_path(maps, "[stack]");
    ASSERT_NE(stack, nullptr);
    EXPECT_EQ(stack->start, 0x7ffe7b571000u);
    EXPECT_EQ(stack->end, 0x7ffe7b592000u);
    EXPECT_TRUE(stack->read && stack->write && !stack->exec && !stack->shared);

    const MapsEntry* vvar = find_path(maps, "[vvar]");
    const MapsEntry* vclock = find_path(maps, "[vvar_vclock]");
    const MapsEntry* vdso = find_path(maps, "[vdso]");
    const MapsEntry* vsyscall = find_path(maps, "[vsyscall]");
    ASSERT_TRUE(vvar && vclock && vdso && vsyscall);
    EXPECT_EQ(vvar->start, 0x7ff971372000u);
    EXPECT_EQ(vvar->end, vclock->start);
    EXPECT_EQ(vclock->end, vdso->start);
    EXPECT_EQ(vdso->end, 0x7ff97137a000u);
    EXPECT_TRUE(vvar->read && !vvar->write && !vvar->exec);
    EXPECT_TRUE(vdso->read && vdso->exec && !vdso->write);
    EXPECT_EQ(vsyscall->start, 0xffffffffff600000u);
    EXPECT_EQ(vsyscall->end, 0xffffffffff601000u);
    EXPECT_TRUE(!vsyscall->read && vsyscall->exec);

    const MapsEntry* libc = find_start(maps, 0x7ff9711a9000);
    ASSERT_NE(libc, nullptr);
    EXPECT_EQ(libc->path, "/usr/lib/x86_64-linux-gnu/libc.so.6");
    EXPECT_EQ(libc->offset, 0x26000u);
    EXPECT_EQ(libc->inode, 332835u);
    EXPECT_TRUE(libc->exec && !libc->write);
}

TEST(ProcMaps, SyntheticEdgeCases) {
    std::string text = sample("maps_synthetic.txt");
    ASSERT_NE(text.back(), '\n') << "the last line has no newline on purpose";
    auto maps = proc::parse_maps(text);
    std::vector<MapsEntry> want;
    for (const auto& l : lines_of(text)) want.push_back(scan_maps_line(l));
    expect_same_entries(maps, want);
    ASSERT_EQ(maps.size(), 14u);

    EXPECT_EQ(maps[0].path, "/opt/my app/bin/prog  two  spaces");
    EXPECT_EQ(maps[0].dev_major, 0xfdu);
    EXPECT_EQ(maps[0].dev_minor, 1u);
    EXPECT_EQ(maps[1].offset, 0x100001000u);  // more than 8 hex digits
    EXPECT_EQ(maps[1].dev_major, 0x103u);     // major > 255
    EXPECT_EQ(maps[1].dev_minor, 0x1a2u);     // minor > 255
    EXPECT_EQ(maps[1].inode, 12345678901234u);
    EXPECT_EQ(maps[2].path, "[heap]");
    EXPECT_EQ(maps[3].path, "/dev/zero (deleted)");
    EXPECT_TRUE(maps[3].shared);
    EXPECT_EQ(maps[4].path, "/memfd:buf (deleted)");
    EXPECT_EQ(maps[5].path, "");  // "0 " at the end
    EXPECT_FALSE(maps[5].read || maps[5].write || maps[5].exec || maps[5].shared);
    EXPECT_EQ(maps[6].path, "");  // "0" at the end, no space
    EXPECT_TRUE(maps[6].read && maps[6].write && maps[6].exec && !maps[6].shared);
    EXPECT_EQ(maps[7].path, "[anon:my name]");
    EXPECT_EQ(maps[8].path, "/tmp/a (deleted) b (deleted)");
    EXPECT_EQ(maps[8].offset, 0xfffff000u);
    EXPECT_EQ(maps[9].path, "[stack]");
    EXPECT_EQ(maps[10].path, "[vvar]");
    EXPECT_EQ(maps[11].path, "[vvar_vclock]");
    EXPECT_EQ(maps[12].path, "[vdso]");
    EXPECT_EQ(maps[13].path, "[vsyscall]");
    EXPECT_EQ(maps[13].start, 0xffffffffff600000u);
}

TEST(ProcMaps, EmptyTextIsNoMappings) {
    EXPECT_TRUE(proc::parse_maps("").empty());
    EXPECT_TRUE(proc::parse_maps("\n").empty());
}

TEST(ProcMaps, MalformedLinesThrow) {
    const char* bad[] = {
        "garbage",
        "00400000 00401000 r-xp 00000000 00:00 0",
        "00400000-00401000",
        "00400000-00401000 ",
        "00400000-00401000 r-x",
        "00400000-00401000 r-xp",
        "00400000-00401000 r-xp zzzz 00:00 0",
        "00400000-00401000 r-xp 00000000 0000 0",
        "00400000-00401000 r-xp 00000000 00: 0",
        "00400000-00401000 r-xp 00000000 00:00",
        "00400000-00401000 r-xp 00000000 00:00 x /bin/x",
        "0040000g-00401000 r-xp 00000000 00:00 0",
        "-00401000 r-xp 00000000 00:00 0",
        "00400000-ffffffffffffffffff r-xp 00000000 00:00 0",  // does not fit 64 bits
    };
    for (const char* line : bad) {
        std::string msg = error_of([&] { proc::parse_maps(line); });
        EXPECT_FALSE(msg.empty()) << line;
        // a bad line among good ones is not skipped
        std::string text = "00400000-00401000 r-xp 00000000 00:00 0 /bin/x\n" + std::string(line) + "\n";
        EXPECT_THROW(proc::parse_maps(text), ckpt::Error) << line;
    }
}

// ---- smaps VmFlags ------------------------------------------------------------------------

using Flags = std::vector<std::string>;

TEST(ProcSmaps, RecordedSampleMadviseFlags) {
    auto flags = proc::parse_smaps_vmflags(sample("smaps.txt"));
    // recorded: 0x10000000 MADV_DONTDUMP + MADV_DONTFORK, 0x10200000 MADV_HUGEPAGE,
    // 0x10600000 MADV_NOHUGEPAGE + MADV_WIPEONFORK, 0x10800000 mlock
    EXPECT_EQ(flags.at(0x10000000), (Flags{"rd", "wr", "mr", "mw", "me", "dc", "ac", "dd"}));
    EXPECT_EQ(flags.at(0x10200000), (Flags{"rd", "wr", "mr", "mw", "me", "ac", "hg"}));
    EXPECT_EQ(flags.at(0x10600000), (Flags{"rd", "wr", "mr", "mw", "me", "ac", "wf", "nh"}));
    EXPECT_EQ(flags.at(0x10800000), (Flags{"rd", "wr", "mr", "mw", "me", "lo", "ac"}));
    EXPECT_EQ(flags.at(0x20000000), (Flags{"rd", "wr", "sh", "mr", "mw", "me", "ms"}));  // /dev/zero
    EXPECT_EQ(flags.at(0x7ffe7b571000), (Flags{"rd", "wr", "mr", "mw", "me", "gd", "ac"}));  // [stack]
    EXPECT_EQ(flags.at(0xffffffffff600000), (Flags{"ex"}));                                  // [vsyscall]
}

TEST(ProcSmaps, RecordedSampleHasEveryMapping) {
    // recorded right after maps.txt by the same process: the same VMAs
    auto flags = proc::parse_smaps_vmflags(sample("smaps.txt"));
    auto maps = proc::parse_maps(sample("maps.txt"));
    std::set<uint64_t> keys, starts;
    for (const auto& [k, v] : flags) {
        keys.insert(k);
        EXPECT_FALSE(v.empty()) << std::hex << k;
        for (const auto& f : v) EXPECT_EQ(f.size(), 2u) << std::hex << k << ": '" << f << "'";
    }
    for (const auto& m : maps) starts.insert(m.start);
    EXPECT_EQ(keys, starts);
    // readable mappings say "rd", shared ones "sh"
    for (const auto& m : maps) {
        const Flags& f = flags.at(m.start);
        auto has = [&](const char* x) { return std::find(f.begin(), f.end(), x) != f.end(); };
        EXPECT_EQ(has("rd"), m.read) << describe(m);
        EXPECT_EQ(has("wr"), m.write) << describe(m);
        EXPECT_EQ(has("ex"), m.exec) << describe(m);
        EXPECT_EQ(has("sh"), m.shared) << describe(m);
    }
}

TEST(ProcSmaps, SyntheticEdgeCases) {
    auto flags = proc::parse_smaps_vmflags(sample("smaps_synthetic.txt"));
    ASSERT_EQ(flags.size(), 4u);
    EXPECT_EQ(flags.at(0x400000), (Flags{"rd", "ex", "mr", "mw", "me", "dw"}));  // path "/opt/a-b c/prog"
    EXPECT_EQ(flags.at(0x7f0000000000),
              (Flags{"rd", "wr", "mr", "mw", "me", "ac", "hg", "dd", "dc", "wf", "lo", "nh"}));
    EXPECT_EQ(flags.at(0x7f0000001000), Flags{});  // no VmFlags line
    // tab after "VmFlags:", no trailing space, no final newline
    EXPECT_EQ(flags.at(0x7ffc1e9f0000), (Flags{"rd", "wr", "mr", "mw", "me", "gd", "ac"}));
}

TEST(ProcSmaps, MalformedThrows) {
    EXPECT_TRUE(contains(error_of([] { proc::parse_smaps_vmflags("VmFlags: rd wr\n"); }), "before any mapping"));
    EXPECT_THROW(proc::parse_smaps_vmflags("1000-zz rw-p 00000000 00:00 0\nVmFlags: rd\n"), ckpt::Error);
    EXPECT_THROW(proc::parse_smaps_vmflags("1000-2000 rw-p\nVmFlags: rd\n"), ckpt::Error);
    EXPECT_TRUE(proc::parse_smaps_vmflags("").empty());
}

// ---- stat -----------------------------------------------------------------------------------

void expect_recorded_stat_fields(const proc::Stat& st) {
    // values from samples/stat.txt (recorded.log: pid 27934 ppid 27924 pgrp 27878 sid 18967)
    EXPECT_EQ(st.pid, 27934);
    EXPECT_EQ(st.state, 'R');
    EXPECT_EQ(st.ppid, 27924);
    EXPECT_EQ(st.pgrp, 27878);
    EXPECT_EQ(st.session, 18967);
    EXPECT_EQ(st.priority, -8);  // SCHED_FIFO 7: -1 - 7
    EXPECT_EQ(st.nice, -5);
    EXPECT_EQ(st.start_code, 93918739349504u);
    EXPECT_EQ(st.end_code, 93918739354169u);
    EXPECT_EQ(st.start_stack, 140730967855600u);
    EXPECT_EQ(st.rt_priority, 7u);
    EXPECT_EQ(st.policy, 1u);  // SCHED_FIFO
    EXPECT_EQ(st.start_data, 93918739365328u);
    EXPECT_EQ(st.end_data, 93918739366248u);
    EXPECT_EQ(st.start_brk, 93918930948096u);
    EXPECT_EQ(st.arg_start, 140730967857680u);
    EXPECT_EQ(st.arg_end, 140730967857765u);
    EXPECT_EQ(st.env_start, 140730967857765u);
    EXPECT_EQ(st.env_end, 140730967859157u);
}

TEST(ProcStat, RecordedSample) {
    proc::Stat st = proc::parse_stat(sample("stat.txt"));
    EXPECT_EQ(st.comm, "a b) (c");
    expect_recorded_stat_fields(st);
}

TEST(ProcStat, RecordedSampleAgreesWithMaps) {
    // stat and maps of the same process: brk starts the [heap], the stack pointers and the
    // argument/environment strings are in [stack], the code in the executable's text mapping
    proc::Stat st = proc::parse_stat(sample("stat.txt"));
    auto maps = proc::parse_maps(sample("maps.txt"));
    const MapsEntry* heap = find_path(maps, "[heap]");
    const MapsEntry* stack = find_path(maps, "[stack]");
    ASSERT_TRUE(heap && stack);
    EXPECT_EQ(st.start_brk, heap->start);
    for (uint64_t a : {st.start_stack, st.arg_start, st.arg_end, st.env_start, st.env_end}) {
        EXPECT_GE(a, stack->start);
        EXPECT_LT(a, stack->end);
    }
    const MapsEntry* text = find_start(maps, st.start_code);
    ASSERT_NE(text, nullptr);
    EXPECT_TRUE(text->exec);
    EXPECT_LE(st.end_code, text->end);
}

TEST(ProcStat, CommWithSpacesAndParentheses) {
    const std::string recorded = sample("stat.txt");
    const std::string rest = recorded.substr(recorded.rfind(')') + 1);  // " R 27924 ..."
    for (std::string comm : {"", "x", ")", "(", "((", "a b) (c", ") R 1 2 3 (", "x) S 9 (", "sp  ace", "kworker/0:1-ev"}) {
        std::string text = "27934 (" + comm + ")" + rest;
        proc::Stat st = proc::parse_stat(text);
        EXPECT_EQ(st.comm, comm) << text;
        expect_recorded_stat_fields(st);
    }
}

TEST(ProcStat, NoTrailingNewlineAndNegativeFields) {
    std::string text = sample("stat.txt");
    ASSERT_EQ(text.back(), '\n');
    text.pop_back();
    EXPECT_EQ(proc::parse_stat(text).env_end, 140730967859157u);
    // SCHED_FIFO 99: priority -100; field n (1-based, as in proc(5)) is n - 20 for n >= 20
    std::string rt = "1 (rt)";
    for (int n = 3; n <= 52; ++n) {
        std::string v = std::to_string(n >= 20 ? n - 20 : 0);
        if (n == 3) v = "S";
        if (n == 18) v = "-100";
        if (n == 19) v = "-20";
        if (n == 40) v = "99";
        rt += " " + v;
    }
    rt += "\n";
    proc::Stat st = proc::parse_stat(rt);
    EXPECT_EQ(st.priority, -100);
    EXPECT_EQ(st.nice, -20);
    EXPECT_EQ(st.rt_priority, 99u);
    EXPECT_EQ(st.ppid, 0);
    EXPECT_EQ(st.start_code, 6u);
    EXPECT_EQ(st.end_code, 7u);
    EXPECT_EQ(st.start_stack, 8u);
    EXPECT_EQ(st.policy, 21u);
    EXPECT_EQ(st.start_data, 25u);
    EXPECT_EQ(st.end_data, 26u);
    EXPECT_EQ(st.start_brk, 27u);
    EXPECT_EQ(st.arg_start, 28u);
    EXPECT_EQ(st.arg_end, 29u);
    EXPECT_EQ(st.env_start, 30u);
    EXPECT_EQ(st.env_end, 31u);
}

TEST(ProcStat, MalformedThrows) {
    const std::string recorded = sample("stat.txt");
    const std::string rest = recorded.substr(recorded.rfind(')') + 1);
    std::vector<std::string> bad = {
        "",
        "\n",
        "x (a) R" + rest,
        "27934 a R" + rest,             // no parentheses
        "27934 (a R" + rest.substr(1),  // no ')'
        "27934 )a( R" + rest,           // ')' before '('
        "27934 (a)",                    // no fields
        "27934 (a) R 1 2 3",            // too few fields
    };
    // a non-numeric value in each field the parser uses
    for (int field : {4, 5, 6, 18, 19, 26, 27, 28, 40, 41, 45, 46, 47, 48, 49, 50, 51}) {
        auto fields = lines_of(rest);  // one line
        std::string line = fields.at(0);
        std::vector<std::string> f;
        size_t p = 0;
        while (p < line.size()) {
            size_t q = line.find(' ', p);
            if (q == std::string::npos) q = line.size();
            if (q > p) f.push_back(line.substr(p, q - p));
            p = q + 1;
        }
        f.at(static_cast<size_t>(field - 3)) = "x1";
        std::string t = "27934 (a)";
        for (const auto& s : f) t += " " + s;
        bad.push_back(t + "\n");
    }
    // every truncation that loses a field
    const size_t last_field = recorded.rfind(' ');  // before exit_code, the 52nd field
    for (size_t n = 0; n <= last_field; n += 7) bad.push_back(recorded.substr(0, n));
    bad.push_back(recorded.substr(0, last_field));
    for (const auto& text : bad) EXPECT_THROW(proc::parse_stat(text), ckpt::Error) << "'" << text << "'";
}

// ---- status ---------------------------------------------------------------------------------

TEST(ProcStatus, RecordedSample) {
    proc::Status st = proc::parse_status(sample("status.txt"));
    EXPECT_EQ(st.name, "a b) (c");
    EXPECT_EQ(st.umask, 027u);
    EXPECT_EQ(st.state, 'R');
    EXPECT_EQ(st.tracer_pid, 0);
    EXPECT_EQ(st.threads, 2);
    EXPECT_EQ(st.uid[0], 2001u);  // real
    EXPECT_EQ(st.uid[1], 2002u);  // effective
    EXPECT_EQ(st.uid[2], 2003u);  // saved
    EXPECT_EQ(st.uid[3], 2004u);  // fs
    EXPECT_EQ(st.gid[0], 1001u);
    EXPECT_EQ(st.gid[1], 1002u);
    EXPECT_EQ(st.gid[2], 1003u);
    EXPECT_EQ(st.gid[3], 1004u);
    EXPECT_EQ(st.groups, (std::vector<uint32_t>{4, 24, 27, 1000}));
    EXPECT_EQ(st.sig_pnd, 1ULL << (SIGUSR1 - 1));  // tgkill
    EXPECT_EQ(st.shd_pnd, 1ULL << (SIGUSR2 - 1));  // kill
    EXPECT_EQ(st.sig_blk, (1ULL << (SIGUSR1 - 1)) | (1ULL << (SIGUSR2 - 1)) | (1ULL << (SIGTERM - 1)) | (1ULL << 63));
}

TEST(ProcStatus, SyntheticEdgeCases) {
    proc::Status st = proc::parse_status(sample("status_synthetic.txt"));
    EXPECT_EQ(st.name, "kworker/0:1-events");
    EXPECT_EQ(st.umask, 0u);
    EXPECT_EQ(st.state, 'I');
    EXPECT_EQ(st.tracer_pid, 4242);
    EXPECT_EQ(st.threads, 1);
    for (int i = 0; i < 4; ++i) {
        EXPECT_EQ(st.uid[i], 0u);
        EXPECT_EQ(st.gid[i], 0u);
    }
    EXPECT_TRUE(st.groups.empty());  // "Groups:\t \n"
    EXPECT_EQ(st.sig_pnd, ~0ULL);
    EXPECT_EQ(st.shd_pnd, 1u);
    EXPECT_EQ(st.sig_blk, 0xfffffffe7ffbfeffULL);
}

TEST(ProcStatus, MissingFieldsKeepDefaults) {
    proc::Status st = proc::parse_status("Name:\tx\n");
    EXPECT_EQ(st.name, "x");
    EXPECT_EQ(st.umask, 0u);
    EXPECT_EQ(st.threads, 0);
    EXPECT_TRUE(st.groups.empty());
}

TEST(ProcStatus, MalformedThrows) {
    const char* bad[] = {
        "Umask:\tzz\n",         "Umask:\t\n",
        "Uid:\t1\t2\t3\n",      "Uid:\t1 2 3 x\n",
        "Gid:\t\n",             "Groups:\t1 x 3\n",
        "Groups:\t-1\n",        "TracerPid:\tnone\n",
        "Threads:\t\n",        "SigPnd:\tzz\n",
        "ShdPnd:\t\n",          "SigBlk:\tnot hex\n",
        "SigBlk:\t10000000000000000\n",  // 65 bits
        "Uid:\t99999999999\t0\t0\t0\n",  // more than 32 bits
    };
    for (const char* text : bad) EXPECT_THROW(proc::parse_status(text), ckpt::Error) << text;
}

// ---- fdinfo ---------------------------------------------------------------------------------

TEST(ProcFdinfo, RecordedRegularFile) {
    // O_RDWR|O_CLOEXEC, lseek to 12345; ino and mnt_id from fstat/statx (recorded.log)
    proc::FdInfo fi = proc::parse_fdinfo(sample("fdinfo_regular.txt"));
    EXPECT_EQ(fi.pos, 12345u);
    EXPECT_EQ(fi.flags, uint32_t(O_RDWR | O_CLOEXEC) | kKernelLargefile);
    EXPECT_EQ(fi.flags, 02100002u);
    EXPECT_EQ(fi.mnt_id, 27);
    EXPECT_EQ(fi.ino, 10952943u);
}

TEST(ProcFdinfo, RecordedAppendFile) {
    // O_WRONLY|O_APPEND, 5000 bytes written, lseek to 7, 100 more written: pos is the size
    proc::FdInfo fi = proc::parse_fdinfo(sample("fdinfo_append.txt"));
    EXPECT_EQ(fi.pos, 5100u);
    EXPECT_EQ(fi.flags, uint32_t(O_WRONLY | O_APPEND) | kKernelLargefile);
    EXPECT_EQ(fi.flags & O_ACCMODE, uint32_t(O_WRONLY));
    EXPECT_EQ(fi.flags & O_CLOEXEC, 0u);
    EXPECT_EQ(fi.mnt_id, 27);
    EXPECT_EQ(fi.ino, 10952944u);
}

TEST(ProcFdinfo, RecordedDevNull) {
    proc::FdInfo fi = proc::parse_fdinfo(sample("fdinfo_devnull.txt"));
    EXPECT_EQ(fi.pos, 0u);
    EXPECT_EQ(fi.flags, uint32_t(O_RDWR) | kKernelLargefile);
    EXPECT_EQ(fi.mnt_id, 24);
    EXPECT_EQ(fi.ino, 3u);
}

TEST(ProcFdinfo, SyntheticEdgeCases) {
    // extra lines of other file types (epoll tfd, locks) are ignored
    proc::FdInfo fi = proc::parse_fdinfo(sample("fdinfo_synthetic.txt"));
    EXPECT_EQ(fi.pos, 0u);
    EXPECT_EQ(fi.flags, 02004002u);
    EXPECT_EQ(fi.mnt_id, 15);
    EXPECT_EQ(fi.ino, 1057u);
    // an older kernel: no mnt_id, no ino; no final newline; the largest position
    fi = proc::parse_fdinfo(sample("fdinfo_oldkernel.txt"));
    EXPECT_EQ(fi.pos, ~0ULL);
    EXPECT_EQ(fi.flags, kKernelLargefile);
    EXPECT_EQ(fi.mnt_id, -1);
    EXPECT_EQ(fi.ino, 0u);
}

TEST(ProcFdinfo, MalformedThrows) {
    const char* bad[] = {
        "",
        "pos:\t1\n",                       // no flags
        "flags:\t02\n",                    // no pos
        "pos:\tx\nflags:\t0\n",            // bad pos
        "pos:\t1\nflags:\t9\n",            // flags are octal
        "pos:\t1\nflags:\t\n",             // empty flags
        "pos:\t-1\nflags:\t0\n",           // negative pos
        "pos:\t1\nflags:\t0\nmnt_id:\tx\n",
        "pos:\t1\nflags:\t0\nino:\t\n",
        "pos 1\nflags 0\n",                // no colons
    };
    for (const char* text : bad) EXPECT_THROW(proc::parse_fdinfo(text), ckpt::Error) << text;
}

// ---- this process's own /proc files -----------------------------------------------------------

TEST(ProcLive, SelfMapsStatStatus) {
    auto maps = proc::parse_maps(read_file("/proc/self/maps"));
    ASSERT_FALSE(maps.empty());
    int on_stack = 0;
    auto addr = reinterpret_cast<uint64_t>(&on_stack);
    auto code = reinterpret_cast<uint64_t>(&scan_maps_line);
    bool stack_found = false, code_found = false;
    for (const auto& m : maps) {
        EXPECT_LT(m.start, m.end);
        if (addr >= m.start && addr < m.end) stack_found = m.read && m.write && m.path == "[stack]";
        if (code >= m.start && code < m.end) code_found = m.exec && !m.path.empty();
    }
    EXPECT_TRUE(stack_found);
    EXPECT_TRUE(code_found);
    EXPECT_NE(find_path(maps, "[vdso]"), nullptr);

    auto st = proc::parse_stat(read_file("/proc/self/stat"));
    EXPECT_EQ(st.pid, ::getpid());
    EXPECT_EQ(st.ppid, ::getppid());
    EXPECT_EQ(st.pgrp, ::getpgrp());
    EXPECT_EQ(st.session, ::getsid(0));
    EXPECT_EQ(st.state, 'R');

    mode_t old = ::umask(0037);
    auto status = proc::parse_status(read_file("/proc/self/status"));
    ::umask(old);
    EXPECT_EQ(status.umask, 0037u);
    EXPECT_EQ(status.uid[0], ::getuid());
    EXPECT_EQ(status.uid[1], ::geteuid());
    EXPECT_EQ(status.gid[0], ::getgid());
    EXPECT_EQ(status.gid[1], ::getegid());
    std::vector<gid_t> groups(static_cast<size_t>(::getgroups(0, nullptr)));
    groups.resize(static_cast<size_t>(::getgroups(static_cast<int>(groups.size()), groups.data())));
    EXPECT_EQ(status.groups, std::vector<uint32_t>(groups.begin(), groups.end()));
    EXPECT_EQ(status.state, 'R');
}

TEST(ProcLive, ThreadWithAwkwardName) {
    // a thread named like the recorded sample: its own stat and status
    proc::Stat st;
    proc::Status status;
    sigset_t blocked;
    pid_t tid = 0;
    std::string error;
    std::thread t([&] {
        tid = ::gettid();
        ::prctl(PR_SET_NAME, "a b) (c");
        sigemptyset(&blocked);
        sigaddset(&blocked, SIGUSR2);
        sigaddset(&blocked, SIGRTMIN + 3);
        pthread_sigmask(SIG_BLOCK, &blocked, nullptr);
        try {
            st = proc::parse_stat(read_file("/proc/thread-self/stat"));
            status = proc::parse_status(read_file("/proc/thread-self/status"));
        } catch (const std::exception& e) {
            error = e.what();
        }
    });
    t.join();
    ASSERT_EQ(error, "");
    EXPECT_EQ(st.comm, "a b) (c");
    EXPECT_EQ(st.pid, tid);
    EXPECT_NE(st.pid, ::getpid());
    EXPECT_EQ(st.ppid, ::getppid());
    EXPECT_EQ(status.name, "a b) (c");
    EXPECT_EQ(status.sig_blk & ((1ULL << (SIGUSR2 - 1)) | (1ULL << (SIGRTMIN + 3 - 1))),
              (1ULL << (SIGUSR2 - 1)) | (1ULL << (SIGRTMIN + 3 - 1)));
}

TEST(ProcLive, OwnFdinfo) {
    TempDir t;
    std::string path = t.sub("append log");
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "hello world", 11), 11);
    struct statx stx;
    ASSERT_EQ(::statx(fd, "", AT_EMPTY_PATH, STATX_INO | STATX_MNT_ID, &stx), 0);
    auto fi = proc::parse_fdinfo(read_file("/proc/self/fdinfo/" + std::to_string(fd)));
    ::close(fd);
    EXPECT_EQ(fi.pos, 11u);
    EXPECT_EQ(fi.flags & O_ACCMODE, uint32_t(O_WRONLY));
    EXPECT_NE(fi.flags & O_APPEND, 0u);
    EXPECT_NE(fi.flags & O_CLOEXEC, 0u);
    EXPECT_EQ(fi.ino, stx.stx_ino);
    if (stx.stx_mask & STATX_MNT_ID) {
        EXPECT_EQ(static_cast<uint64_t>(fi.mnt_id), stx.stx_mnt_id);
    }

    int nul = ::open("/dev/null", O_RDONLY);
    ASSERT_GE(nul, 0);
    fi = proc::parse_fdinfo(read_file("/proc/self/fdinfo/" + std::to_string(nul)));
    ::close(nul);
    EXPECT_EQ(fi.pos, 0u);
    EXPECT_EQ(fi.flags & O_ACCMODE, uint32_t(O_RDONLY));
    EXPECT_EQ(fi.flags & O_CLOEXEC, 0u);
}

}  // namespace
}  // namespace ckpt::test
