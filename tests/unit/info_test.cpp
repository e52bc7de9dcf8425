// `ckpt info`: how fields are shown (info_fields.h) in text and JSON, sections, --verify.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "image/info.h"
#include "image/info_fields.h"
#include "image/reader.h"
#include "image/writer.h"
#include "test_support.h"

namespace ckpt::test {
namespace {

using namespace ckpt::image;
using fields::Style;

std::string info_output(const std::string& dir, const InfoOptions& opts) {
    char* buf = nullptr;
    size_t size = 0;
    std::FILE* f = ::open_memstream(&buf, &size);
    EXPECT_NE(f, nullptr);
    try {
        print_info(dir, opts, f);
    } catch (...) {
        std::fclose(f);
        std::free(buf);
        throw;
    }
    std::fclose(f);
    std::string out(buf, size);
    std::free(buf);
    return out;
}

TEST(InfoFields, SignalNamesFollowGlibc) {
    EXPECT_EQ(fields::signal_name(2), "SIGINT");
    EXPECT_EQ(fields::signal_name(15), "SIGTERM");
    EXPECT_EQ(fields::signal_name(31), "SIGSYS");
    EXPECT_EQ(fields::signal_name(32), "SIG32");
    EXPECT_EQ(fields::signal_name(34), "SIGRTMIN");
    EXPECT_EQ(fields::signal_name(36), "SIGRTMIN+2");
    EXPECT_EQ(fields::signal_name(63), "SIGRTMAX-1");
    EXPECT_EQ(fields::signal_name(64), "SIGRTMAX");
}

TEST(InfoFields, MasksAndFlagsByName) {
    EXPECT_EQ(fields::text(Style::SigMask, 0), "none");
    EXPECT_EQ(fields::text(Style::SigMask, (1ULL << 1) | (1ULL << 14)), "SIGINT,SIGTERM");
    EXPECT_EQ(fields::text(Style::SigMask, ~0ULL), "all");
    EXPECT_EQ(fields::text(Style::SigMask, ~(1ULL << 8)), "all but SIGKILL");
    EXPECT_EQ(fields::text(Style::OpenFlags, 0), "O_RDONLY");
    EXPECT_EQ(fields::text(Style::OpenFlags, 02 | 02000 | 0100000), "O_RDWR|O_APPEND|O_LARGEFILE");
    EXPECT_EQ(fields::text(Style::OpenFlags, 04010001), "O_WRONLY|O_SYNC");
    EXPECT_EQ(fields::text(Style::OpenFlags, 010000), "O_RDONLY|O_DSYNC");
    EXPECT_EQ(fields::text(Style::OpenFlags, 040000000 | 1), "O_WRONLY|0x800000");
    EXPECT_EQ(fields::text(Style::SaFlags, 0x14000004), "SA_SIGINFO|SA_RESTORER|SA_RESTART");
    EXPECT_EQ(fields::text(Style::SaFlags, 0), "none");
    EXPECT_EQ(fields::text(Style::Prot, 5), "r-x");
    EXPECT_EQ(fields::text(Style::Addr, 0x7ffd1000), "0x7ffd1000");
}

TEST(InfoFields, SyscallNamesFromTheKernelHeaders) {
    EXPECT_EQ(fields::syscall_name(0), "read");
    EXPECT_EQ(fields::syscall_name(35), "nanosleep");
    EXPECT_EQ(fields::syscall_name(230), "clock_nanosleep");
    EXPECT_EQ(fields::syscall_name(99999), "syscall 99999");
    EXPECT_EQ(fields::text_signed(Style::Syscall, -1), "-1");
}

TEST(InfoText, NamesInsteadOfNumbersAndLabelledColumns) {
    TempDir t;
    const std::string dir = t.sub("img");
    write_sample_image(dir);
    std::string out = info_output(dir, {});
    EXPECT_TRUE(contains(out, "in clock_nanosleep (restarts)")) << out;
    EXPECT_FALSE(contains(out, "syscall 230")) << out;
    EXPECT_TRUE(contains(out, "blocked SIG")) << out;
    EXPECT_TRUE(contains(out, "O_WRONLY|O_APPEND|O_LARGEFILE")) << out;
    EXPECT_TRUE(contains(out, "memory (9 mappings, ")) << out;
    EXPECT_TRUE(contains(out, "address")) << out;
    EXPECT_TRUE(contains(out, "  size")) << out;
    EXPECT_TRUE(contains(out, "stored  path")) << out;
    EXPECT_TRUE(contains(out, "files (6):")) << out;
    EXPECT_FALSE(contains(out, "flags 0x")) << out;
}

TEST(InfoText, NoEmptySections) {
    TempDir t;
    const std::string dir = t.sub("img");
    {
        ImageWriter w(dir);
        Header h;
        h.image_id = w.image_id();
        h.nr_processes = 1;
        w.add(h);
        Process p = sample_process(5);
        for (auto& sa : p.sigactions) sa.handler = 0;
        w.add(p);
        w.commit();
    }
    std::string out = info_output(dir, {});
    EXPECT_TRUE(contains(out, "process 5 ")) << out;
    for (const char* section : {"threads", "memory", "files", "signal handlers"})
        EXPECT_FALSE(contains(out, std::string("  ") + section)) << section << " in:\n" << out;
}

TEST(InfoJson, WideValuesAreStringsAndEnumsNames) {
    TempDir t;
    const std::string dir = t.sub("img");
    SampleImage s = write_sample_image(dir);
    InfoOptions o;
    o.json = true;
    std::string out = info_output(dir, o);
    // beyond 2^53: a JSON number would be rounded by JavaScript and jq
    EXPECT_TRUE(contains(out, "\"created_unix_ns\": \"1790000000123456789\"")) << out;
    EXPECT_TRUE(contains(out, fmt::format("\"image_id\": \"{:#x}\"", s.img.header.image_id))) << out;
    EXPECT_TRUE(contains(out, "\"start\": \"0x10000000\"")) << out;
    EXPECT_TRUE(contains(out, "\"start\": \"0xffffffffff600000\"")) << out;
    EXPECT_TRUE(contains(out, "\"sigmask\": \"0x8000000000004a00\"")) << out;
    EXPECT_TRUE(contains(out, "\"kind\": \"anon\"")) << out;
    EXPECT_TRUE(contains(out, "\"kind\": \"unlinked\"")) << out;
    EXPECT_TRUE(contains(out, "\"restart\": \"restart_block\"")) << out;
    EXPECT_TRUE(contains(out, "\"syscall_nr\": \"230\"")) << out;
    EXPECT_TRUE(contains(out, "\"syscall_nr\": \"-1\"")) << out;
    EXPECT_TRUE(contains(out, "\"max\": \"18446744073709551615\"")) << out;
    // text: UTF-8 as it is, control characters escaped; bytes that are no UTF-8 in hex
    EXPECT_TRUE(contains(out, "\"a b) (c\"")) << out;
    EXPECT_TRUE(contains(out, "\"nul\\u0000inside\"")) << out;
    // 32-bit values stay numbers
    EXPECT_TRUE(contains(out, fmt::format("\"tid\": {},", s.img.threads[0].tid))) << out;
    EXPECT_TRUE(contains(out, "\"page_size\": 4096")) << out;
}

TEST(InfoJson, Utf8PathsAsTextOtherBytesInHex) {
    TempDir t;
    const std::string dir = t.sub("img");
    {
        ImageWriter w(dir);
        Header h;
        h.image_id = w.image_id();
        h.nr_processes = 1;
        w.add(h);
        Process p = sample_process(5);
        p.exe_path = "/tmp/caf\xc3\xa9 \xe2\x82\xac";
        p.cwd = "/tmp/\xff";
        p.root = "/\xc3";  // truncated sequence
        w.add(p);
        w.commit();
    }
    InfoOptions o;
    o.json = true;
    std::string out = info_output(dir, o);
    EXPECT_TRUE(contains(out, "\"exe_path\": \"/tmp/caf\xc3\xa9 \xe2\x82\xac\"")) << out;
    EXPECT_TRUE(contains(out, "\"cwd\": \"2f746d702fff\"")) << out;
    EXPECT_TRUE(contains(out, "\"root\": \"2fc3\"")) << out;
}

TEST(InfoVerify, DamagedPageDataIsAnErrorBeforeAnyOutput) {
    TempDir t;
    const std::string dir = t.sub("img");
    SampleImage s = write_sample_image(dir);
    InfoOptions o;
    o.verify = true;
    EXPECT_FALSE(info_output(dir, o).empty());
    std::string data = read_bytes(dir + "/data.img");
    const PageRun& r = s.img.page_runs[1];
    data[r.data_offset + 100] ^= 1;
    write_bytes(dir + "/data.img", data);
    EXPECT_NO_THROW(info_output(dir, {}));  // plain info does not read page data
    std::string msg = error_of([&] { info_output(dir, o); });
    EXPECT_TRUE(contains(msg, fmt::format("checksum mismatch in page run 2 of {}", s.img.page_runs.size())))
        << msg;
    EXPECT_TRUE(contains(msg, fmt::format("at {:#x}", r.addr))) << msg;
}

}  // namespace
}  // namespace ckpt::test
