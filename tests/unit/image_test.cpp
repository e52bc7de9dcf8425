// The image files: ImageWriter -> read_image/verify_data round trip, atomicity of commit(),
// and detection of corrupt, truncated and mismatched files.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "image/reader.h"
#include "image/writer.h"
#include "test_support.h"

namespace ckpt::test {
namespace {

using namespace ckpt::image;
namespace fs = std::filesystem;

std::string meta_of(const std::string& dir) { return dir + "/meta.img"; }
std::string data_of(const std::string& dir) { return dir + "/data.img"; }

// A record as it is on disk, for rebuilding meta.img with valid checksums.
struct RawRecord {
    uint32_t type;
    std::string payload;
};

std::vector<RawRecord> raw_records(const std::string& meta) {
    std::vector<RawRecord> out;
    for (const auto& r : parse_meta_layout(meta))
        out.push_back({r.type, meta.substr(r.payload_offset, r.payload_size)});
    return out;
}

// meta.img from a preamble and records; each record's checksum is computed here, from the
// format's definition (XXH3-64 of the payload seeded with the type).
std::string build_meta(const std::string& preamble, const std::vector<RawRecord>& recs) {
    std::string out = preamble;
    for (const auto& r : recs) {
        uint32_t size = static_cast<uint32_t>(r.payload.size());
        uint64_t sum = XXH3_64bits_withSeed(r.payload.data(), r.payload.size(), r.type);
        out.append(reinterpret_cast<const char*>(&r.type), 4);
        out.append(reinterpret_cast<const char*>(&size), 4);
        out.append(reinterpret_cast<const char*>(&sum), 8);
        out.append(r.payload);
    }
    return out;
}

// ---- round trip -------------------------------------------------------------------------

TEST(ImageRoundTrip, EveryFieldSurvives) {
    TempDir t;
    const std::string dir = t.sub("img");
    SampleImage s = write_sample_image(dir);

    Image img = read_image(dir);
    EXPECT_TRUE(same_image(img, s.img));
    EXPECT_NO_THROW(verify_data(dir, img));

    // a few fields by hand, in case the generic comparison were blind to something
    EXPECT_NE(img.header.image_id, 0u);
    EXPECT_EQ(img.header.kernel_release, "6.18.44-fc-v669");
    EXPECT_EQ(img.header.xsave_size, 2696u);
    ASSERT_EQ(img.processes.size(), 1u);
    const Process& p = img.processes[0];
    EXPECT_EQ(p.comm, "a b) (c");
    ASSERT_EQ(p.argv.size(), 5u);
    EXPECT_EQ(p.argv[2], "");
    EXPECT_EQ(p.argv[4], std::string("nul\0inside", 10));
    EXPECT_EQ(p.creds.fsuid, 2004u);
    EXPECT_EQ(p.creds.groups, (std::vector<uint32_t>{4, 24, 27, 1000, 65534}));
    ASSERT_EQ(p.sigactions.size(), 64u);
    EXPECT_EQ(p.sigactions[63].mask, 1ULL << 63);
    ASSERT_EQ(p.itimers.size(), 3u);
    EXPECT_EQ(p.itimers[2].interval_sec, -1);
    EXPECT_EQ(p.rlimits.at(3).max, ~0ULL);
    EXPECT_EQ(p.auxv.back(), 0u);
    ASSERT_EQ(p.shared_pending.size(), 2u);
    EXPECT_EQ(p.shared_pending[1], binary_blob(128, 2));
    EXPECT_EQ(p.mm.env_end, 0x7ffe'7b59'1fd5u);
    EXPECT_EQ(p.oom_score_adj, -617);
    EXPECT_EQ(p.loginuid, 1000u);
    EXPECT_EQ(p.thp_disable, 3u);
    EXPECT_EQ(p.child_subreaper, 1u);
    EXPECT_EQ(p.membarrier, 0x10u);
    ASSERT_EQ(img.threads.size(), 2u);
    const Thread& th = img.threads[0];
    ASSERT_EQ(th.regs.size(), 27u * 8);
    EXPECT_NE(th.regs.find('\0'), std::string::npos);
    EXPECT_EQ(th.regs, s.img.threads[0].regs);
    ASSERT_EQ(th.xsave.size(), 2696u);
    EXPECT_EQ(th.xsave, s.img.threads[0].xsave);
    EXPECT_EQ(th.restart, SyscallRestart::RestartBlock);
    EXPECT_EQ(th.syscall_nr, 230);
    EXPECT_EQ(th.pending.at(1), std::string(128, '\0'));
    ASSERT_EQ(th.backtrace.size(), 3u);
    EXPECT_EQ(th.backtrace[0].symbol, "clock_nanosleep+0x45");
    EXPECT_EQ(img.threads[1].restart, SyscallRestart::None);
    EXPECT_EQ(img.threads[1].syscall_nr, -1);
    EXPECT_EQ(img.threads[0].no_new_privs, 0u);
    EXPECT_EQ(img.threads[1].no_new_privs, 1u);
    ASSERT_EQ(img.vmas.size(), 9u);
    EXPECT_EQ(img.vmas[1].path, "/dev/zero (deleted)");
    EXPECT_EQ(img.vmas[3].kind, VmaKind::Heap);
    EXPECT_EQ(img.vmas[3].advice, uint32_t{kAdviceHugepage | kAdviceLocked});
    EXPECT_EQ(img.vmas[0].advice, uint32_t{kAdviceDontDump | kAdviceDontFork | kAdviceMergeable});
    EXPECT_EQ(img.vmas[0].vmflags, "rd wr mr mw me ac dc dd mg");
    EXPECT_EQ(img.vmas[8].start, 0xffff'ffff'ff60'0000u);
    ASSERT_EQ(img.page_runs.size(), 3u);
    ASSERT_EQ(img.fds.size(), 6u);
    EXPECT_EQ(img.fds[2].dup_of, 1);
    EXPECT_EQ(img.fds[4].kind, FdKind::Unlinked);
    EXPECT_EQ(img.end.nr_records, 1u + 1 + 2 + 9 + 3 + 6);

    // data.img: preamble, image id, page data where the runs say, unlinked content
    std::string data = read_bytes(data_of(dir));
    EXPECT_EQ(data.size(), img.end.data_size);
    EXPECT_EQ(data.substr(0, 8), "CKPTDATA");
    uint32_t version;
    std::memcpy(&version, data.data() + 8, 4);
    EXPECT_EQ(version, kFormatVersion);
    uint64_t id;
    std::memcpy(&id, data.data() + 16, 8);
    EXPECT_EQ(id, img.header.image_id);
    EXPECT_EQ(img.page_runs[0].data_offset, kDataHeaderSize);
    for (size_t i = 0; i < img.page_runs.size(); ++i) {
        const PageRun& r = img.page_runs[i];
        EXPECT_EQ(data.substr(r.data_offset, r.nr_pages * kPageSize), s.run_bytes[i]) << "run " << i;
        EXPECT_EQ(r.checksum, XXH3_64bits(s.run_bytes[i].data(), s.run_bytes[i].size())) << "run " << i;
    }
    const Fd& gone = img.fds[4];
    EXPECT_EQ(gone.size, 5000u);
    EXPECT_EQ(data.substr(gone.data_offset, gone.size), s.unlinked_content);
    EXPECT_EQ(gone.data_offset + gone.size, data.size());
}

TEST(ImageRoundTrip, MetaLayoutFollowsFormat) {
    TempDir t;
    const std::string dir = t.sub("img");
    SampleImage s = write_sample_image(dir);
    std::string meta = read_bytes(meta_of(dir));
    EXPECT_EQ(meta.substr(0, 8), "CKPTMETA");
    uint32_t version, reserved;
    std::memcpy(&version, meta.data() + 8, 4);
    std::memcpy(&reserved, meta.data() + 12, 4);
    EXPECT_EQ(version, kFormatVersion);
    EXPECT_EQ(reserved, 0u);

    auto layout = parse_meta_layout(meta);
    std::vector<uint32_t> types;
    for (const auto& r : layout) types.push_back(r.type);
    std::vector<uint32_t> want = {1, 2, 3, 3};
    want.insert(want.end(), 9, 4);
    want.insert(want.end(), 3, 5);
    want.insert(want.end(), 6, 6);
    want.push_back(0x7fff);
    EXPECT_EQ(types, want);
    for (const auto& r : layout) {
        uint64_t sum;
        std::memcpy(&sum, meta.data() + r.header_offset + 8, 8);
        EXPECT_EQ(sum, XXH3_64bits_withSeed(meta.data() + r.payload_offset, r.payload_size, r.type))
            << "record at " << r.header_offset;
    }
    // the payloads are the codec's encodings
    EXPECT_EQ(meta.substr(layout[0].payload_offset, layout[0].payload_size), encode(s.img.header));
    EXPECT_EQ(meta.substr(layout[2].payload_offset, layout[2].payload_size), encode(s.img.threads[0]));
    EXPECT_EQ(meta.substr(layout.back().payload_offset, layout.back().payload_size), encode(s.img.end));
}

TEST(ImageRoundTrip, FilesArePrivateAndNothingElseIsLeft) {
    TempDir t;
    const std::string dir = t.sub("img");
    write_sample_image(dir);
    EXPECT_EQ(list_dir(dir), (std::vector<std::string>{"data.img", "meta.img"}));
    for (const auto& f : {meta_of(dir), data_of(dir)}) {
        struct stat st;
        ASSERT_EQ(::stat(f.c_str(), &st), 0);
        EXPECT_EQ(st.st_mode & 07777, 0600u) << f;
    }
    struct stat st;
    ASSERT_EQ(::stat(dir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 077, 0u) << "image directory is created 0700";
}

TEST(ImageRoundTrip, SecondCommitReplacesTheImageOnlyWhenAskedTo) {
    TempDir t;
    const std::string dir = t.sub("img");
    SampleImage first = write_sample_image(dir, 0);
    std::string msg = error_of([&] { ImageWriter w(dir); });
    EXPECT_TRUE(contains(msg, dir + " already holds an image (meta.img); use --overwrite")) << msg;
    EXPECT_TRUE(same_image(read_image(dir), first.img));
    EXPECT_EQ(list_dir(dir), (std::vector<std::string>{"data.img", "meta.img"}));
    // data.img alone is an image too (its meta.img may have been lost)
    fs::rename(meta_of(dir), t.sub("meta-aside"));
    msg = error_of([&] { ImageWriter w(dir); });
    EXPECT_TRUE(contains(msg, "already holds an image (data.img)")) << msg;
    fs::rename(t.sub("meta-aside"), meta_of(dir));

    SampleImage second = write_sample_image(dir, 1, Existing::Replace);
    Image img = read_image(dir);
    EXPECT_TRUE(same_image(img, second.img));
    EXPECT_NO_THROW(verify_data(dir, img));
    EXPECT_EQ(list_dir(dir), (std::vector<std::string>{"data.img", "meta.img"}));
}

TEST(ImageRoundTrip, LargeMetaIsFlushedCompletely) {
    // more than the writer's 1 MiB buffer of records
    TempDir t;
    const std::string dir = t.sub("img");
    Image want;
    {
        ImageWriter w(dir);
        want.header.image_id = w.image_id();
        want.header.nr_processes = 1;
        want.processes = {sample_process(7)};
        w.add(want.header);
        w.add(want.processes[0]);
        for (int i = 0; i < 6000; ++i) {
            Vma v;
            v.pid = 7;
            v.start = 0x10000000ULL + static_cast<uint64_t>(i) * 0x2000;
            v.end = v.start + 0x1000;
            v.kind = VmaKind::File;
            v.path = "/some/long/path/" + std::string(200, static_cast<char>('a' + i % 26)) + "/" + std::to_string(i);
            want.vmas.push_back(v);
            w.add(v);
        }
        want.end.nr_records = 2 + want.vmas.size();
        want.end.data_size = w.data_offset();
        w.commit();
    }
    EXPECT_GT(fs::file_size(meta_of(dir)), 1u << 20);
    Image img = read_image(dir);
    EXPECT_TRUE(same_image(img, want));
    EXPECT_NO_THROW(verify_data(dir, img));
}

TEST(ImageRoundTrip, SplicedAndAppendedDataKeepTheirOffsets) {
    // The dump mixes both ways of adding page data (tracer/memory_dump.cpp): pages spliced
    // from the parasite's pipes at an explicit offset (splice(..., &off, ...)) followed by
    // data_appended(), and append_data() for pages read through /proc/PID/mem and for the
    // content of unlinked files. Every byte must land at the offset it was given.
    TempDir t;
    const std::string dir = t.sub("img");
    std::vector<std::string> chunks;
    std::vector<PageRun> runs;
    Image want;
    {
        ImageWriter w(dir);
        want.header.image_id = w.image_id();
        want.header.nr_processes = 1;
        want.processes = {sample_process(3)};
        auto splice_in = [&](const std::string& bytes) {
            int p[2];
            ASSERT_EQ(::pipe(p), 0);
            ASSERT_EQ(::write(p[1], bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
            loff_t off = static_cast<loff_t>(w.data_offset());
            ASSERT_EQ(::splice(p[0], nullptr, w.data_fd(), &off, bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
            ::close(p[0]);
            ::close(p[1]);
            w.data_appended(bytes.size());
        };
        for (unsigned i = 0; i < 5; ++i) {  // spliced, appended, spliced, appended, spliced
            std::string bytes = binary_blob(kPageSize * (i % 2 + 1), 500 + i);
            PageRun r;
            r.pid = 3;
            r.addr = 0x10000000 + i * 0x100000;
            r.nr_pages = bytes.size() / kPageSize;
            r.data_offset = w.data_offset();
            if (i % 2 == 0) {
                splice_in(bytes);
            } else {
                EXPECT_EQ(w.append_data(bytes.data(), bytes.size()), r.data_offset);
            }
            if (testing::Test::HasFatalFailure()) return;
            runs.push_back(r);
            chunks.push_back(bytes);
        }
        // checksum_runs maps data_offset() bytes of the file: it must be that long (or the
        // test would die of SIGBUS rather than fail)
        struct stat st;
        ASSERT_EQ(::fstat(w.data_fd(), &st), 0);
        ASSERT_EQ(static_cast<uint64_t>(st.st_size), w.data_offset());
        w.checksum_runs(runs);
        want.page_runs = runs;
        w.add(want.header);
        w.add(want.processes[0]);
        for (const auto& r : runs) w.add(r);
        want.end.nr_records = 2 + runs.size();
        want.end.data_size = w.data_offset();
        w.commit();
    }
    std::string data = read_bytes(data_of(dir));
    ASSERT_EQ(data.size(), want.end.data_size);
    for (size_t i = 0; i < runs.size(); ++i) {
        EXPECT_TRUE(data.compare(runs[i].data_offset, chunks[i].size(), chunks[i]) == 0)
            << "run " << i << " (" << (i % 2 == 0 ? "spliced" : "append_data") << ") is not at offset "
            << runs[i].data_offset;
        EXPECT_EQ(runs[i].checksum, XXH3_64bits(chunks[i].data(), chunks[i].size())) << "run " << i;
    }
    Image img = read_image(dir);
    EXPECT_TRUE(same_image(img, want));
}

// ---- atomicity ----------------------------------------------------------------------------

void write_some_records(ImageWriter& w) {
    Header h;
    h.image_id = w.image_id();
    h.nr_processes = 1;
    w.add(h);
    w.add(sample_process(3));
    std::string page = binary_blob(kPageSize, 1);
    PageRun r;
    r.pid = 3;
    r.nr_pages = 1;
    r.data_offset = w.append_data(page.data(), page.size());
    w.add(r);
}

TEST(ImageAtomicity, WriterWithoutCommitLeavesNothing) {
    TempDir t;
    const std::string dir = t.sub("img");
    {
        ImageWriter w(dir);
        write_some_records(w);
        // while it is being written, there is no image to read
        EXPECT_FALSE(fs::exists(meta_of(dir)));
        EXPECT_FALSE(fs::exists(data_of(dir)));
        std::string msg = error_of([&] { read_image(dir); });
        EXPECT_TRUE(contains(msg, "no complete image")) << msg;
        EXPECT_TRUE(contains(msg, "partial files of an unfinished dump are there")) << msg;
    }
    // the writer created the directory: it is gone again
    EXPECT_FALSE(fs::exists(dir));
    std::string msg = error_of([&] { read_image(dir); });
    EXPECT_TRUE(contains(msg, "no such directory")) << msg;

    // a directory that was there before stays, empty
    ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
    {
        ImageWriter w(dir);
        write_some_records(w);
    }
    EXPECT_EQ(list_dir(dir), std::vector<std::string>{});
    msg = error_of([&] { read_image(dir); });
    EXPECT_TRUE(contains(msg, "no complete image (meta.img is missing)")) << msg;
}

TEST(ImageAtomicity, ExceptionWhileWritingLeavesNothing) {
    TempDir t;
    const std::string dir = t.sub("img");
    try {
        ImageWriter w(dir);
        write_some_records(w);
        throw std::runtime_error("dump failed");
    } catch (const std::runtime_error&) {
    }
    EXPECT_FALSE(fs::exists(dir));
    ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
    try {
        ImageWriter w(dir);
        write_some_records(w);
        throw std::runtime_error("dump failed");
    } catch (const std::runtime_error&) {
    }
    EXPECT_EQ(list_dir(dir), std::vector<std::string>{});
    EXPECT_TRUE(contains(error_of([&] { read_image(dir); }), "no complete image"));
}

TEST(ImageAtomicity, AbandonedWriterKeepsThePreviousImage) {
    TempDir t;
    const std::string dir = t.sub("img");
    SampleImage old = write_sample_image(dir);
    {
        ImageWriter w(dir, Existing::Replace);
        write_some_records(w);
    }
    EXPECT_EQ(list_dir(dir), (std::vector<std::string>{"data.img", "meta.img"}));
    Image img = read_image(dir);
    EXPECT_TRUE(same_image(img, old.img));
    EXPECT_NO_THROW(verify_data(dir, img));
}

TEST(ImageAtomicity, StaleTemporariesAreReplaced) {
    // a crashed dump leaves its temporary files; the next writer starts afresh
    TempDir t;
    const std::string dir = t.sub("img");
    ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
    write_bytes(dir + "/.meta.img.partial", "garbage from a crashed dump");
    write_bytes(dir + "/.data.img.partial", std::string(10000, 'x'));
    SampleImage s = write_sample_image(dir);
    Image img = read_image(dir);
    EXPECT_TRUE(same_image(img, s.img));
    EXPECT_NO_THROW(verify_data(dir, img));
    EXPECT_EQ(list_dir(dir), (std::vector<std::string>{"data.img", "meta.img"}));
}

TEST(ImageAtomicity, FailedConstructionLeavesNoTemporaries) {
    // A stale temporary cannot be removed (a directory is in the way): the constructor
    // throws, and must leave neither a temporary nor its lock file behind.
    TempDir t;
    const std::string dir = t.sub("img");
    ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
    ASSERT_EQ(::mkdir((dir + "/.data.img.partial").c_str(), 0700), 0);
    std::string msg = error_of([&] { ImageWriter w(dir); });
    EXPECT_TRUE(contains(msg, "cannot remove the partial file " + dir + "/.data.img.partial")) << msg;
    EXPECT_EQ(list_dir(dir), std::vector<std::string>{".data.img.partial"});
}

// ---- the image directory: lock, refusal, repair --------------------------------------------

TEST(ImageDir, SecondWriterIsRefusedWhileTheFirstHoldsTheLock) {
    TempDir t;
    const std::string dir = t.sub("img");
    {
        ImageWriter first(dir);
        // flock belongs to the open file: a second writer in this process conflicts too
        std::string msg = error_of([&] { ImageWriter second(dir); });
        EXPECT_TRUE(contains(msg, fmt::format("{} is being written by another dump (pid {})", dir,
                                              ::getpid())))
            << msg;
        EXPECT_EQ(read_bytes(dir + "/.ckpt.lock"), fmt::format("{}\n", ::getpid()));
        // the refused writer left the first one's files alone
        EXPECT_EQ(list_dir(dir), (std::vector<std::string>{".ckpt.lock", ".data.img.partial",
                                                           ".meta.img.partial"}));
        write_some_records(first);
        first.commit();
    }
    EXPECT_EQ(list_dir(dir), (std::vector<std::string>{"data.img", "meta.img"}));
    EXPECT_NO_THROW(read_image(dir));
}

TEST(ImageDir, LockFileOfADeadDumpIsTakenOver) {
    // a dump killed with SIGKILL leaves its lock file (unlocked: the kernel dropped the flock)
    TempDir t;
    const std::string dir = t.sub("img");
    ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
    write_bytes(dir + "/.ckpt.lock", "999999\n");
    write_bytes(dir + "/.meta.img.partial", "partial");
    SampleImage s = write_sample_image(dir);
    EXPECT_TRUE(same_image(read_image(dir), s.img));
    EXPECT_EQ(list_dir(dir), (std::vector<std::string>{"data.img", "meta.img"}));
}

TEST(ImageDir, NotADirectoryIsSaid) {
    TempDir t;
    const std::string file = t.sub("file");
    write_bytes(file, "x");
    std::string msg = error_of([&] { ImageWriter w(file); });
    EXPECT_TRUE(contains(msg, file + ": not a directory")) << msg;
    msg = error_of([&] { read_image(file); });
    EXPECT_TRUE(contains(msg, "cannot open image directory " + file + ": not a directory")) << msg;
    EXPECT_EQ(read_bytes(file), "x");
}

TEST(ImageDir, MetaThatCannotBeReadIsSaid) {
    TempDir t;
    const std::string dir = t.sub("img");
    write_sample_image(dir);
    fs::remove(meta_of(dir));
    ASSERT_EQ(::mkdir(meta_of(dir).c_str(), 0700), 0);  // root reads anything: EISDIR instead
    std::string msg = error_of([&] { read_image(dir); });
    EXPECT_FALSE(contains(msg, "no complete image")) << msg;
    EXPECT_TRUE(contains(msg, meta_of(dir))) << msg;
}

TEST(ImageDir, InterruptedOverwriteKeepsThePreviousImage) {
    // An overwrite that died between its two renames: data.img is the new image's,
    // meta.img and .data.img.old the old one's. Readers use the old image; the next dump
    // puts its data back.
    TempDir t;
    const std::string dir = t.sub("img"), other = t.sub("new");
    SampleImage old = write_sample_image(dir, 0);
    write_sample_image(other, 1);
    fs::rename(data_of(dir), dir + "/.data.img.old");
    fs::copy_file(data_of(other), data_of(dir));
    Image img = read_image(dir);
    EXPECT_TRUE(same_image(img, old.img));
    EXPECT_NO_THROW(verify_data(dir, img));
    EXPECT_EQ(meta_image_id(dir), old.img.header.image_id);
    EXPECT_EQ(data_file_for(dir, old.img.header.image_id), dir + "/.data.img.old");

    // the next dump (here: one that fails) repairs the directory first
    {
        ImageWriter w(dir, Existing::Replace);
        write_some_records(w);
    }
    EXPECT_EQ(list_dir(dir), (std::vector<std::string>{"data.img", "meta.img"}));
    img = read_image(dir);
    EXPECT_TRUE(same_image(img, old.img));
    EXPECT_NO_THROW(verify_data(dir, img));

    // and a plain dump still refuses the repaired image
    std::string msg = error_of([&] { ImageWriter w(dir); });
    EXPECT_TRUE(contains(msg, "already holds an image")) << msg;
}

TEST(ImageDir, LeftoverOldDataOfACompletedOverwriteIsRemoved) {
    // died after the second rename, before removing .data.img.old: the new image is complete
    TempDir t;
    const std::string dir = t.sub("img");
    write_sample_image(dir, 0);
    write_bytes(dir + "/.data.img.old", read_bytes(data_of(dir)));
    SampleImage now = write_sample_image(dir, 1, Existing::Replace);
    write_bytes(dir + "/.data.img.old", "stale");
    EXPECT_TRUE(same_image(read_image(dir), now.img));
    {
        ImageWriter w(dir, Existing::Replace);
    }
    EXPECT_EQ(list_dir(dir), (std::vector<std::string>{"data.img", "meta.img"}));
    EXPECT_TRUE(same_image(read_image(dir), now.img));
}

TEST(ImageAtomicity, MissingDirectoryIsAClearError) {
    TempDir t;
    std::string msg = error_of([&] { read_image(t.sub("does-not-exist")); });
    EXPECT_TRUE(contains(msg, "cannot open image directory")) << msg;
    EXPECT_TRUE(contains(msg, "does-not-exist")) << msg;
}

// ---- corruption of meta.img -------------------------------------------------------------

class ImageCorruption : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = tmp_.sub("img");
        sample_ = write_sample_image(dir_);
        meta_ = read_bytes(meta_of(dir_));
        data_ = read_bytes(data_of(dir_));
        layout_ = parse_meta_layout(meta_);
        ASSERT_EQ(layout_.size(), sample_.img.end.nr_records + 1);
    }
    // read_image with meta.img replaced by `meta`; returns the error message
    std::string read_with_meta(const std::string& meta) {
        write_bytes(meta_of(dir_), meta);
        return error_of([&] { read_image(dir_); });
    }
    std::string read_with_data(const std::string& data) {
        write_bytes(data_of(dir_), data);
        return error_of([&] { read_image(dir_); });
    }

    TempDir tmp_;
    std::string dir_;
    SampleImage sample_;
    std::string meta_, data_;
    std::vector<RecordSpan> layout_;
};

TEST_F(ImageCorruption, FlippedPayloadByteIsAChecksumError) {
    for (size_t i = 0; i < layout_.size(); ++i) {
        const RecordSpan& r = layout_[i];
        // first, middle and last byte of every payload
        for (size_t off : {size_t{0}, r.payload_size / 2, r.payload_size - 1}) {
            std::string bad = meta_;
            bad[r.payload_offset + off] ^= 0x20;
            std::string msg = read_with_meta(bad);
            EXPECT_TRUE(contains(msg, "checksum mismatch in record " + std::to_string(i) + " ("))
                << "record " << i << " (type " << r.type << "), payload byte " << off << ": " << msg;
        }
    }
}

TEST_F(ImageCorruption, EveryFlippedByteIsDetected) {
    // every byte of meta.img but the preamble's reserved field, two different flips each
    for (size_t pos = 0; pos < meta_.size(); ++pos) {
        if (pos >= 12 && pos < 16) continue;  // Preamble::reserved is not checked
        for (unsigned char mask : {0x01, 0x80}) {
            std::string bad = meta_;
            bad[pos] = static_cast<char>(bad[pos] ^ mask);
            std::string msg = read_with_meta(bad);
            bool ok = contains(msg, "checksum") || contains(msg, "corrupt") || contains(msg, "truncated") ||
                      contains(msg, "not a ckpt image") || contains(msg, "version");
            ASSERT_TRUE(ok) << "byte " << pos << " ^ " << int(mask) << ": " << msg;
        }
    }
}

TEST_F(ImageCorruption, BadMagicIsNotAnImage) {
    for (size_t pos = 0; pos < 8; ++pos) {
        std::string bad = meta_;
        bad[pos] ^= 0x40;
        std::string msg = read_with_meta(bad);
        EXPECT_TRUE(contains(msg, "not a ckpt image")) << msg;
        EXPECT_TRUE(contains(msg, "meta.img")) << msg;
    }
    // a data file given as meta.img
    EXPECT_TRUE(contains(read_with_meta(data_), "not a ckpt image"));
}

TEST_F(ImageCorruption, OtherVersionIsRefused) {
    for (uint32_t v : {0u, kFormatVersion + 1, 0xffffffffu}) {
        std::string bad = meta_;
        std::memcpy(bad.data() + 8, &v, 4);
        std::string msg = read_with_meta(bad);
        EXPECT_TRUE(contains(msg, "version " + std::to_string(v))) << msg;
        EXPECT_TRUE(contains(msg, "reads version " + std::to_string(kFormatVersion))) << msg;
    }
}

TEST_F(ImageCorruption, RecordStructureIsChecked) {
    const std::string pre = meta_.substr(0, 16);
    const auto recs = raw_records(meta_);
    ASSERT_EQ(recs.front().type, 1u);
    ASSERT_EQ(recs.back().type, 0x7fffu);
    // with valid checksums: the checks behind them must still catch these
    {  // no End
        auto r = recs;
        r.pop_back();
        EXPECT_TRUE(contains(read_with_meta(build_meta(pre, r)), "no End record"));
    }
    {  // a record missing before End
        auto r = recs;
        r.erase(r.begin() + 5);
        std::string msg = read_with_meta(build_meta(pre, r));
        EXPECT_TRUE(contains(msg, "End counts")) << msg;
    }
    {  // Header not first
        auto r = recs;
        std::swap(r[0], r[1]);
        EXPECT_TRUE(contains(read_with_meta(build_meta(pre, r)), "first record is not a Header"));
    }
    {  // two Headers
        auto r = recs;
        r.insert(r.begin() + 1, r[0]);
        EXPECT_TRUE(contains(read_with_meta(build_meta(pre, r)), "second Header"));
    }
    {  // unknown type
        auto r = recs;
        r[3].type = 99;
        std::string msg = read_with_meta(build_meta(pre, r));
        EXPECT_TRUE(contains(msg, "unknown record type 99")) << msg;
    }
    {  // a record after End
        auto r = recs;
        r.push_back(recs[1]);
        EXPECT_TRUE(contains(read_with_meta(build_meta(pre, r)), "after the End record"));
    }
    {  // garbage after End
        EXPECT_TRUE(contains(read_with_meta(meta_ + "x"), "after the End record"));
    }
    {  // a payload that does not decode (valid checksum, wrong length)
        auto r = recs;
        r[1].payload += "extra";
        std::string msg = read_with_meta(build_meta(pre, r));
        EXPECT_TRUE(contains(msg, "corrupt Process record")) << msg;
        EXPECT_TRUE(contains(msg, "trailing bytes")) << msg;
    }
    {  // a payload size above kMaxPayload
        std::string bad = meta_;
        uint32_t huge = kMaxPayload + 1;
        std::memcpy(bad.data() + layout_[1].header_offset + 4, &huge, 4);
        std::string msg = read_with_meta(bad);
        EXPECT_TRUE(contains(msg, "claims " + std::to_string(huge) + " bytes")) << msg;
    }
    {  // rebuilding without changes gives the same file (the test's own encoder is right)
        EXPECT_EQ(build_meta(pre, recs), meta_);
    }
}

TEST_F(ImageCorruption, ImageWithoutProcessIsRefused) {
    auto recs = raw_records(meta_);
    std::vector<RawRecord> r;
    for (const auto& rec : recs)
        if (rec.type != 2) r.push_back(rec);
    End end = decode<End>(r.back().payload);
    end.nr_records = r.size() - 1;
    r.back().payload = encode(end);
    std::string msg = read_with_meta(build_meta(meta_.substr(0, 16), r));
    EXPECT_TRUE(contains(msg, "holds no process")) << msg;
}

// ---- truncation ---------------------------------------------------------------------------

TEST_F(ImageCorruption, EveryTruncationOfMetaThrows) {
    for (size_t n = 0; n < meta_.size(); ++n) {
        std::string msg = read_with_meta(meta_.substr(0, n));
        ASSERT_TRUE(contains(msg, "truncated")) << "meta.img cut to " << n << " bytes: " << msg;
    }
    // and at each record boundary specifically (a whole number of records, no End)
    for (const auto& r : layout_) {
        std::string msg = read_with_meta(meta_.substr(0, r.header_offset));
        EXPECT_TRUE(contains(msg, "truncated")) << msg;
    }
    write_bytes(meta_of(dir_), meta_);
    EXPECT_NO_THROW(read_image(dir_));
}

TEST_F(ImageCorruption, TruncatedOrExtendedDataThrows) {
    const size_t size = data_.size();
    for (size_t n : {size_t{0}, size_t{8}, size_t{16}, size_t{23}, size_t{24}, size_t{4095}, size_t{4096},
                     size_t{4097}, size - 5000, size - 4096, size - 1}) {
        std::string msg = read_with_data(data_.substr(0, n));
        EXPECT_TRUE(contains(msg, "truncated")) << "data.img cut to " << n << " bytes: " << msg;
        if (n >= 24) {  // the size check, not a short read of the header
            EXPECT_TRUE(contains(msg, "is " + std::to_string(n) + " bytes, the image expects " +
                                          std::to_string(size)))
                << msg;
        }
    }
    std::string msg = read_with_data(data_ + "x");
    EXPECT_TRUE(contains(msg, "the image expects " + std::to_string(size))) << msg;
}

TEST_F(ImageCorruption, MissingDataThrows) {
    ASSERT_EQ(::unlink(data_of(dir_).c_str()), 0);
    std::string msg = error_of([&] { read_image(dir_); });
    EXPECT_TRUE(contains(msg, "cannot open")) << msg;
    EXPECT_TRUE(contains(msg, "data.img")) << msg;
}

TEST_F(ImageCorruption, BadDataPreambleThrows) {
    std::string bad = data_;
    bad[3] ^= 1;
    std::string msg = read_with_data(bad);
    EXPECT_TRUE(contains(msg, "not a ckpt image")) << msg;
    EXPECT_TRUE(contains(msg, "data.img")) << msg;
    bad = data_;
    bad[8] ^= 2;
    EXPECT_TRUE(contains(read_with_data(bad), "version"));
    // meta.img given as data.img
    EXPECT_TRUE(contains(read_with_data(meta_), "not a ckpt image"));
}

TEST_F(ImageCorruption, CorruptPageDataFailsVerification) {
    for (size_t i = 0; i < sample_.img.page_runs.size(); ++i) {
        const PageRun& r = sample_.img.page_runs[i];
        for (uint64_t off : {uint64_t{0}, r.nr_pages * kPageSize - 1}) {
            std::string bad = data_;
            bad[r.data_offset + off] ^= 0x10;
            write_bytes(data_of(dir_), bad);
            Image img;
            ASSERT_NO_THROW(img = read_image(dir_)) << "read_image does not read page data";
            std::string msg = error_of([&] { verify_data(dir_, img); });
            EXPECT_TRUE(contains(msg, "checksum mismatch")) << msg;
            EXPECT_TRUE(contains(msg, fmt::format("pages at {:#x}", r.addr))) << msg;
        }
    }
    write_bytes(data_of(dir_), data_);
    EXPECT_NO_THROW(verify_data(dir_, read_image(dir_)));
}

TEST_F(ImageCorruption, CorruptUnlinkedFileContentFailsVerification) {
    const Fd& f = sample_.img.fds[4];
    ASSERT_EQ(f.kind, FdKind::Unlinked);
    std::string bad = data_;
    bad[f.data_offset + f.size - 1] ^= 0x01;
    write_bytes(data_of(dir_), bad);
    Image img = read_image(dir_);
    std::string msg = error_of([&] { verify_data(dir_, img); });
    EXPECT_TRUE(contains(msg, "checksum mismatch")) << msg;
    EXPECT_TRUE(contains(msg, "unlinked file behind fd 4")) << msg;
}

// ---- data.img of another image -------------------------------------------------------------

TEST(ImageMismatch, DataFromAnotherImageIsRefused) {
    TempDir t;
    const std::string a = t.sub("a"), b = t.sub("b");
    SampleImage sa = write_sample_image(a, 0);
    SampleImage sb = write_sample_image(b, 1);
    ASSERT_NE(sa.img.header.image_id, sb.img.header.image_id);
    // same layout and size: only the image id tells them apart
    ASSERT_EQ(fs::file_size(data_of(a)), fs::file_size(data_of(b)));
    std::string da = read_bytes(data_of(a)), db = read_bytes(data_of(b));
    write_bytes(data_of(a), db);
    write_bytes(data_of(b), da);
    for (const auto& dir : {a, b}) {
        std::string msg = error_of([&] { read_image(dir); });
        EXPECT_TRUE(contains(msg, "another image")) << msg;
    }
    // put back: both fine again
    write_bytes(data_of(a), da);
    write_bytes(data_of(b), db);
    EXPECT_NO_THROW(verify_data(a, read_image(a)));
    EXPECT_NO_THROW(verify_data(b, read_image(b)));
}

// ---- references into data.img --------------------------------------------------------------

// A minimal valid image (one page of data) with extra page runs and fds.
void write_image_with(const std::string& dir, const std::vector<PageRun>& runs, const std::vector<Fd>& fds,
                      const std::vector<Vma>& vmas = {}) {
    ImageWriter w(dir);
    Header h;
    h.image_id = w.image_id();
    h.nr_processes = 1;
    w.add(h);
    w.add(sample_process(3));
    std::string page = binary_blob(kPageSize, 5);
    w.append_data(page.data(), page.size());
    for (const auto& v : vmas) w.add(v);
    for (const auto& r : runs) w.add(r);
    for (const auto& f : fds) w.add(f);
    w.commit();
}

TEST(ImageReferences, PageRunOutsideDataIsRefused) {
    TempDir t;
    struct Case {
        const char* what;
        uint64_t offset, pages;
    } cases[] = {
        {"in the header", 0, 1},
        {"past the end", kDataHeaderSize + kPageSize, 1},
        {"longer than the file", kDataHeaderSize, 2},
        {"size overflows", kDataHeaderSize, 1ULL << 52},          // pages * 4096 wraps to 0
        {"end overflows", ~0ULL - kPageSize + 1, 1},               // offset + size wraps to 0
    };
    int n = 0;
    for (const auto& c : cases) {
        std::string dir = t.sub("img" + std::to_string(n++));
        PageRun r;
        r.pid = 3;
        r.addr = 0x10000000;
        r.nr_pages = c.pages;
        r.data_offset = c.offset;
        write_image_with(dir, {r}, {});
        std::string msg = error_of([&] { read_image(dir); });
        EXPECT_TRUE(contains(msg, "points outside data.img")) << c.what << ": " << msg;
    }
    // the page that is there is fine
    PageRun ok;
    ok.pid = 3;
    ok.nr_pages = 1;
    ok.data_offset = kDataHeaderSize;
    ok.checksum = XXH3_64bits(binary_blob(kPageSize, 5).data(), kPageSize);
    std::string dir = t.sub("ok");
    write_image_with(dir, {ok}, {});
    EXPECT_NO_THROW(verify_data(dir, read_image(dir)));
}

TEST(ImageReferences, UnlinkedContentOutsideDataIsRefused) {
    TempDir t;
    struct Case {
        const char* what;
        uint64_t offset, size;
    } cases[] = {
        {"in the header", 0, 10},
        {"past the end", kDataHeaderSize + kPageSize, 1},
        {"longer than the file", kDataHeaderSize, kPageSize + 1},
        {"end overflows", ~0ULL - 9, 20},  // offset + size wraps to 10
    };
    int n = 0;
    for (const auto& c : cases) {
        std::string dir = t.sub("img" + std::to_string(n++));
        Fd f;
        f.pid = 3;
        f.fd = 9;
        f.kind = FdKind::Unlinked;
        f.path = "/tmp/x (deleted)";
        f.data_offset = c.offset;
        f.size = c.size;
        f.extents = {{0, c.size}};
        write_image_with(dir, {}, {f});
        std::string msg = error_of([&] { read_image(dir); });
        EXPECT_TRUE(contains(msg, "content of fd 9 points outside data.img")) << c.what << ": " << msg;
    }
}

TEST(ImageReferences, DeletedMappingContentIsChecked) {
    TempDir t;
    Vma v;
    v.pid = 3;
    v.start = 0x10000;
    v.end = 0x11000;
    v.kind = VmaKind::File;
    v.path = "/tmp/lib.so (deleted)";
    v.unlinked = 1;
    v.file.size = kPageSize;
    v.extents = {{0, kPageSize}};
    v.data_offset = kDataHeaderSize + 1;  // one byte too far: the page is not all there
    std::string bad = t.sub("outside");
    write_image_with(bad, {}, {}, {v});
    std::string msg = error_of([&] { read_image(bad); });
    EXPECT_TRUE(contains(msg, "content of the mapping at 0x10000 points outside data.img")) << msg;

    v.data_offset = kDataHeaderSize;
    v.checksum = XXH3_64bits(binary_blob(kPageSize, 5).data(), kPageSize);
    std::string ok = t.sub("ok");
    write_image_with(ok, {}, {}, {v});
    EXPECT_NO_THROW(verify_data(ok, read_image(ok)));

    v.checksum ^= 1;
    std::string corrupt = t.sub("corrupt");
    write_image_with(corrupt, {}, {}, {v});
    msg = error_of([&] { verify_data(corrupt, read_image(corrupt)); });
    EXPECT_TRUE(contains(msg, "checksum mismatch in content of the deleted file mapped at 0x10000")) << msg;
}

TEST(ImageReferences, BadUnlinkedExtentsAreRefused) {
    TempDir t;
    struct Case {
        const char* what;
        uint64_t size;
        std::vector<FileExtent> extents;
    } cases[] = {
        {"past the end of the file", 100, {{50, 51}}},
        {"offset + length wraps", 100, {{~0ULL - 9, 20}}},
        {"overlapping", 100, {{0, 10}, {5, 10}}},
        {"out of order", 100, {{50, 10}, {0, 10}}},
        {"more bytes than data.img", ~0ULL, {{0, ~0ULL}}},
    };
    int n = 0;
    for (const auto& c : cases) {
        std::string dir = t.sub("img" + std::to_string(n++));
        Fd f;
        f.pid = 3;
        f.fd = 9;
        f.kind = FdKind::Unlinked;
        f.path = "/tmp/x (deleted)";
        f.data_offset = kDataHeaderSize;
        f.size = c.size;
        f.extents = c.extents;
        write_image_with(dir, {}, {f});
        std::string msg = error_of([&] { read_image(dir); });
        EXPECT_TRUE(contains(msg, "extents of the unlinked file of fd 9")) << c.what << ": " << msg;
    }
}

}  // namespace
}  // namespace ckpt::test
