// The record codec (image/codec.h): wire format, round trips, and robustness of the decoder
// against hand-made payloads (huge counts and lengths, truncation, trailing bytes).
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "image/codec.h"
#include "test_support.h"

namespace ckpt::test {
namespace {

using namespace ckpt::image;

template <typename T>
std::string le(T v) {
    std::string s(sizeof v, '\0');
    std::memcpy(s.data(), &v, sizeof v);
    return s;
}

// ---- wire format ------------------------------------------------------------------------

TEST(Codec, EncodesFixedWidthLittleEndianIntegers) {
    End e;
    e.nr_records = 0x0102030405060708ULL;
    e.data_size = 0xfffffffffffffffeULL;
    std::string want("\x08\x07\x06\x05\x04\x03\x02\x01\xfe\xff\xff\xff\xff\xff\xff\xff", 16);
    EXPECT_EQ(encode(e), want);
}

TEST(Codec, EncodesStringsAndVectorsWithU32Prefix) {
    BacktraceFrame f{0x11, 0x22, std::string("a\0b", 3), ""};
    std::string want = le<uint64_t>(0x11) + le<uint64_t>(0x22) + le<uint32_t>(3) +
                       std::string("a\0b", 3) + le<uint32_t>(0);
    EXPECT_EQ(encode(f), want);

    Creds c;
    c.ruid = 1;
    c.fsgid = 8;
    c.groups = {4, 0xfffffffe};
    std::string cw = le<uint32_t>(1) + le<uint32_t>(0) + le<uint32_t>(0) + le<uint32_t>(0) +
                     le<uint32_t>(0) + le<uint32_t>(0) + le<uint32_t>(0) + le<uint32_t>(8) +
                     le<uint32_t>(2) + le<uint32_t>(4) + le<uint32_t>(0xfffffffe);
    EXPECT_EQ(encode(c), cw);
}

TEST(Codec, EnumsAndSignedFieldsKeepTheirWidth) {
    Fd f;
    f.pid = -2;
    f.fd = 7;
    f.dup_of = -1;
    f.kind = FdKind::Unlinked;
    std::string e = encode(f);
    // pid, fd, dup_of (i32), kind (u32), open_flags, fd_flags (u32), pos (u64), path (u32+0),
    // mode (u32), dev, ino, rdev, size, data_offset, checksum (u64),
    // file: dev, ino (u64), mode, uid, gid (u32), size (u64), atime, mtime, ctime (i64),
    // build_id (u32+0); extents (u32 count 0); file_id, pipe_size, external (u32)
    ASSERT_EQ(e.size(), 4u * 4 + 4 + 4 + 8 + 4 + 4 + 6 * 8 + (2 * 8 + 3 * 4 + 8 + 3 * 8 + 4) + 4 + 3 * 4);
    EXPECT_EQ(e.substr(0, 16), le<int32_t>(-2) + le<int32_t>(7) + le<int32_t>(-1) + le<uint32_t>(1));
    Fd back = decode<Fd>(e);
    EXPECT_EQ(back.pid, -2);
    EXPECT_EQ(back.dup_of, -1);
    EXPECT_EQ(back.kind, FdKind::Unlinked);
}

TEST(Codec, RoundTripsEveryRecordType) {
    Process p = sample_process(42);
    Thread t = sample_thread(42, 43, 1000);
    EXPECT_TRUE(same_record(decode<Process>(encode(p)), p));
    EXPECT_TRUE(same_record(decode<Thread>(encode(t)), t));
    Thread back = decode<Thread>(encode(t));
    ASSERT_EQ(back.regs.size(), 27u * 8);
    EXPECT_EQ(back.regs, t.regs);  // binary, with NULs
    EXPECT_EQ(back.xsave, t.xsave);
    EXPECT_EQ(back.restart, SyscallRestart::None);
    EXPECT_EQ(back.nice, -5);
    EXPECT_EQ(back.backtrace.at(1).symbol, "");
}

TEST(Codec, SameRecordDetectsAChangedField) {
    // the equality helper used by the image tests must see a one-byte difference anywhere
    Thread t = sample_thread(42, 43, 1000);
    Thread u = t;
    u.xsave[999] ^= 1;
    auto r = same_record(t, u);
    EXPECT_FALSE(r);
    EXPECT_TRUE(contains(r.message(), "xsave")) << r.message();
    u = t;
    u.backtrace[2].object = "x";
    r = same_record(t, u);
    EXPECT_FALSE(r);
    EXPECT_TRUE(contains(r.message(), "backtrace[2].object")) << r.message();
    Process p = sample_process(1), q = p;
    q.creds.groups.push_back(5);
    r = same_record(p, q);
    EXPECT_FALSE(r);
    EXPECT_TRUE(contains(r.message(), "creds.groups")) << r.message();
}

// ---- decoder robustness -----------------------------------------------------------------

TEST(CodecRobustness, EmptyPayloadThrows) {
    EXPECT_TRUE(contains(error_of([] { decode<End>(""); }), "corrupt End record"));
    EXPECT_TRUE(contains(error_of([] { decode<Header>(""); }), "image_id"));
    EXPECT_TRUE(contains(error_of([] { decode<Process>(""); }), "Process"));
}

TEST(CodecRobustness, TrailingBytesThrow) {
    std::string e = encode(sample_process(5)) + "x";
    std::string msg = error_of([&] { decode<Process>(e); });
    EXPECT_TRUE(contains(msg, "trailing bytes")) << msg;
}

template <typename Rec>
void expect_every_prefix_throws(const Rec& rec) {
    std::string full = encode(rec);
    for (size_t n = 0; n < full.size(); ++n) {
        std::string prefix = full.substr(0, n);
        std::string msg = error_of([&] { decode<Rec>(prefix); });
        ASSERT_TRUE(contains(msg, "corrupt")) << record_name(Rec::kType) << " cut at " << n
                                              << " of " << full.size() << ": " << msg;
    }
    EXPECT_NO_THROW(decode<Rec>(full));
}

TEST(CodecRobustness, EveryTruncationThrows) {
    expect_every_prefix_throws(sample_process(5));
    expect_every_prefix_throws(sample_thread(5, 6, 300));
    Vma v;
    v.path = "/dev/zero (deleted)";
    expect_every_prefix_throws(v);
    expect_every_prefix_throws(PageRun{});
    Fd f;
    f.path = "/x";
    expect_every_prefix_throws(f);
    expect_every_prefix_throws(End{});
    Header h;
    h.kernel_release = "6.1";
    expect_every_prefix_throws(h);
}

// Encodes a record like Encoder, except that the length prefix of the `target`-th string or
// vector (counting in wire order, nested ones included; only vectors if vectors_only) is
// replaced by `bad_len`, followed by `filler` zero bytes; the encoding stops there.
class LengthCorrupter {
  public:
    LengthCorrupter(int target, uint32_t bad_len, size_t filler, bool vectors_only = false)
        : target_(target), bad_len_(bad_len), filler_(filler), vectors_only_(vectors_only) {}

    template <typename T>
    void operator()(const char* name, const T& v) {
        if (done_) return;
        last_name_ = name;
        put(v);
    }
    template <Scalar T>
    void put(const T& v) {
        if (done_) return;
        out_.append(reinterpret_cast<const char*>(&v), sizeof v);
    }
    void put(const std::string& s) {
        if (done_ || (!vectors_only_ && corrupt_here())) return;
        put(static_cast<uint32_t>(s.size()));
        out_.append(s);
    }
    template <typename T>
    void put(const std::vector<T>& vec) {
        if (done_ || corrupt_here()) return;
        put(static_cast<uint32_t>(vec.size()));
        for (const auto& e : vec) put(e);
    }
    template <typename T>
        requires(!Scalar<T>)
    void put(const T& rec) {
        const_cast<T&>(rec).visit(*this);
    }

    bool done() const { return done_; }
    const std::string& out() const { return out_; }
    const std::string& field() const { return field_; }

  private:
    bool corrupt_here() {
        if (seen_++ != target_) return false;
        put(bad_len_);
        out_.append(filler_, '\0');
        field_ = last_name_;
        done_ = true;
        return true;
    }

    int target_;
    uint32_t bad_len_;
    size_t filler_;
    bool vectors_only_;
    int seen_ = 0;
    bool done_ = false;
    std::string out_;
    std::string last_name_, field_;
};

// For every length-prefixed field of rec: a huge length must give ckpt::Error, with no
// allocation larger than `alloc_limit`. Returns how many fields were tried.
template <typename Rec>
int expect_huge_lengths_rejected(const Rec& rec, uint32_t bad_len, size_t filler, size_t alloc_limit) {
    int target = 0;
    for (;; ++target) {
        LengthCorrupter c(target, bad_len, filler);
        c.put(rec);
        if (!c.done()) break;
        std::string payload = c.out();
        std::string msg;
        size_t largest = 0;
        bool refused = false;
        {
            AllocLimit limit(alloc_limit);
            try {
                decode<Rec>(payload);
            } catch (const ckpt::Error& e) {
                msg = e.what();
            } catch (const std::bad_alloc&) {
                msg = "(std::bad_alloc)";
            }
            largest = limit.largest();
            refused = limit.refused();
        }
        EXPECT_FALSE(refused) << record_name(Rec::kType) << "." << c.field() << " length " << bad_len
                              << ": decoder asked for " << largest << " bytes at once";
        EXPECT_TRUE(contains(msg, "corrupt " + std::string(record_name(Rec::kType)) + " record"))
            << record_name(Rec::kType) << "." << c.field() << " length " << bad_len << ": "
            << (msg.empty() ? "no error" : msg);
    }
    return target;
}

TEST(CodecRobustness, HugeLengthsAndCountsThrowWithoutAllocating) {
    // Small payloads with lengths up to 4 GiB: nothing above 1 MiB may be allocated.
    const size_t kLimit = 1 << 20;
    for (uint32_t bad : {0xffffffffu, 0x80000000u, 0x7fffffffu, 1u << 26, 1u << 20, 4097u}) {
        for (size_t filler : {size_t{0}, size_t{3}, size_t{4096}}) {
            SCOPED_TRACE(testing::Message() << "length " << bad << ", " << filler << " bytes follow");
            // Process: comm, argv (+ each element), exe_path, cwd, root, creds.groups,
            // rlimits, auxv, sigactions, itimers, shared_pending (+ elements)
            int n = expect_huge_lengths_rejected(sample_process(9), bad, filler, kLimit);
            EXPECT_GE(n, 11);
            n = expect_huge_lengths_rejected(sample_thread(9, 9, 512), bad, filler, kLimit);
            EXPECT_GE(n, 6);
            Header h;
            EXPECT_EQ(expect_huge_lengths_rejected(h, bad, filler, kLimit), 2);
            Vma v;  // path, file.build_id, extents, vmflags, guards, zero
            EXPECT_EQ(expect_huge_lengths_rejected(v, bad, filler, kLimit), 6);
            Fd f;  // path, file.build_id, extents
            EXPECT_EQ(expect_huge_lengths_rejected(f, bad, filler, kLimit), 3);
        }
    }
}

TEST(CodecRobustness, ElementCountCannotAmplifyAllocation) {
    // A count that fits the bytes that follow (one byte per element) but not the elements'
    // real minimum wire size (4 bytes for a string, 24 for a BacktraceFrame...). The decoder
    // may not allocate much more per payload byte than the in-memory size of what the payload
    // can really hold (at most 8x: a std::string is 32 bytes, its smallest encoding 4), or a
    // record of kMaxPayload (64 MiB) could make it allocate gigabytes (64 Mi BacktraceFrames
    // are 5 GiB).
    const size_t filler = 64 * 1024;
    int fields = 0;
    auto check = [&](const auto& rec) {
        using Rec = std::decay_t<decltype(rec)>;
        for (int target = 0;; ++target) {
            LengthCorrupter c(target, static_cast<uint32_t>(filler), filler, /*vectors_only=*/true);
            c.put(rec);
            if (!c.done()) break;
            ++fields;
            const std::string payload = c.out();
            const size_t limit = 8 * payload.size() + 4096;
            size_t largest = 0;
            std::string msg;
            {
                AllocLimit guard(limit);
                try {
                    decode<Rec>(payload);
                    msg = "(no error)";
                } catch (const ckpt::Error& e) {
                    msg = e.what();
                } catch (const std::bad_alloc&) {
                    msg = "(std::bad_alloc)";
                }
                largest = guard.largest();
            }
            EXPECT_LE(largest, limit) << record_name(Rec::kType) << "." << c.field() << ": a "
                                      << payload.size() << "-byte payload made the decoder allocate "
                                      << largest << " bytes at once (" << msg << ")";
            EXPECT_TRUE(contains(msg, "corrupt")) << record_name(Rec::kType) << "." << c.field() << ": " << msg;
        }
    };
    check(sample_process(9));
    check(sample_thread(9, 9, 512));
    // Process: argv, groups, rlimits, auxv, sigactions, itimers, posix_timers, shared_pending,
    // cgroups; Thread: pending, backtrace, seccomp_filters
    EXPECT_EQ(fields, 12);
}

TEST(CodecRobustness, VectorCountFieldIsNamed) {
    // The message names the record and the field, so that a corrupt image can be diagnosed.
    LengthCorrupter c(1, 0xffffffffu, 0);  // Process: [0] comm, [1] argv
    c.put(sample_process(1));
    ASSERT_EQ(c.field(), "argv");
    std::string msg = error_of([&] { decode<Process>(c.out()); });
    EXPECT_TRUE(contains(msg, "corrupt Process record")) << msg;
    EXPECT_TRUE(contains(msg, "argv")) << msg;
}

}  // namespace
}  // namespace ckpt::test
