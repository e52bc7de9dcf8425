// Helpers shared by the unit tests: temporary directories, whole-file I/O, a generic dump of
// any record's fields (driven by its visit()), sample records with every field set, and an
// allocation tracker (alloc_tracker.cpp replaces the global operator new).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/error.h"
#include "image/codec.h"
#include "image/format.h"
#include "image/image.h"
#include "image/image_dir.h"

namespace ckpt::test {

// A fresh directory under TMPDIR (or /tmp), removed with everything in it.
class TempDir {
  public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }
    std::string sub(const std::string& name) const { return path_ + "/" + name; }

  private:
    std::string path_;
};

std::string read_bytes(const std::string& path);
void write_bytes(const std::string& path, const std::string& bytes);
// Names in a directory (not . and ..), sorted.
std::vector<std::string> list_dir(const std::string& dir);

// Runs f, which must throw ckpt::Error; returns its message (empty and a test failure if it
// did not throw, or threw something else).
template <typename F>
std::string error_of(F&& f) {
    try {
        std::forward<F>(f)();
    } catch (const ckpt::Error& e) {
        return e.what();
    } catch (const std::exception& e) {
        ADD_FAILURE() << "expected ckpt::Error, got another exception: " << e.what();
        return {};
    }
    ADD_FAILURE() << "expected ckpt::Error, nothing was thrown";
    return {};
}

bool contains(const std::string& haystack, const std::string& needle);

// ---- generic field dump ----------------------------------------------------------------

// Flattens a record into "path = value" lines, one per scalar or string (strings in hex, so
// that NUL bytes and binary blobs compare and print exactly). Vectors give "name.size" and
// "name[i]..." entries. Driven by visit(): a field added to format.h is covered
// automatically.
class FieldDump {
  public:
    template <typename T>
    void operator()(const char* name, const T& value) {
        add(prefix_ + name, value);
    }
    std::vector<std::string> take() { return std::move(lines_); }

    template <typename T>
    void add(const std::string& path, const T& v) {
        if constexpr (std::is_enum_v<T>) {
            add(path, static_cast<std::underlying_type_t<T>>(v));
        } else if constexpr (std::is_integral_v<T>) {
            if constexpr (std::is_signed_v<T>)
                lines_.push_back(path + " = " + std::to_string(static_cast<int64_t>(v)));
            else
                lines_.push_back(path + " = " + std::to_string(static_cast<uint64_t>(v)));
        } else {
            add_record(path, v);
        }
    }
    void add(const std::string& path, const std::string& s);
    template <typename T>
    void add(const std::string& path, const std::vector<T>& vec) {
        lines_.push_back(path + ".size = " + std::to_string(vec.size()));
        for (size_t i = 0; i < vec.size(); ++i) add(path + "[" + std::to_string(i) + "]", vec[i]);
    }

  private:
    template <typename T>
    void add_record(const std::string& path, const T& rec) {
        std::string saved = prefix_;
        prefix_ = path + ".";
        const_cast<T&>(rec).visit(*this);
        prefix_ = saved;
    }

    std::string prefix_;
    std::vector<std::string> lines_;
};

template <typename Rec>
std::vector<std::string> dump_fields(const Rec& rec) {
    FieldDump d;
    const_cast<Rec&>(rec).visit(d);
    return d.take();
}

// Equal records: same encoding (every byte of every field, in wire order) and, for a readable
// failure, the same field-by-field dump.
template <typename Rec>
::testing::AssertionResult same_record(const Rec& a, const Rec& b) {
    auto fa = dump_fields(a), fb = dump_fields(b);
    if (fa != fb) {
        auto r = ::testing::AssertionFailure() << image::record_name(Rec::kType) << " differs:";
        size_t n = std::max(fa.size(), fb.size());
        for (size_t i = 0; i < n; ++i) {
            std::string x = i < fa.size() ? fa[i] : "(missing)";
            std::string y = i < fb.size() ? fb[i] : "(missing)";
            if (x != y) r << "\n  " << x << "  vs  " << y;
        }
        return r;
    }
    if (image::encode(a) != image::encode(b))
        return ::testing::AssertionFailure() << image::record_name(Rec::kType)
                                             << ": field dumps agree but encodings differ";
    return ::testing::AssertionSuccess();
}

template <typename Rec>
::testing::AssertionResult same_records(const std::vector<Rec>& a, const std::vector<Rec>& b) {
    if (a.size() != b.size())
        return ::testing::AssertionFailure() << image::record_name(Rec::kType) << " count "
                                             << a.size() << " vs " << b.size();
    for (size_t i = 0; i < a.size(); ++i) {
        auto r = same_record(a[i], b[i]);
        if (!r) return r << " (record #" << i << ")";
    }
    return ::testing::AssertionSuccess();
}

::testing::AssertionResult same_image(const image::Image& a, const image::Image& b);

// ---- sample records -------------------------------------------------------------------

// A string of n bytes following a pattern that includes NUL bytes and high bytes.
std::string binary_blob(size_t n, unsigned seed);

image::Process sample_process(int32_t pid);
image::Thread sample_thread(int32_t pid, int32_t tid, size_t xsave_size);

// One complete image written with ImageWriter: the records as they were added (Header with
// the writer's image id, processes, threads, vmas, page runs with checksums, fds with an
// unlinked file whose content is in data.img), and the End the writer should produce.
struct SampleImage {
    image::Image img;
    std::vector<std::string> run_bytes;  // content of each page run, in order
    std::string unlinked_content;
};

// Writes the sample image into dir and commits it. `variant` changes the data a little so
// that two images differ.
SampleImage write_sample_image(const std::string& dir, unsigned variant = 0,
                               image::Existing existing = image::Existing::Refuse);

// Offsets of the records in meta.img (parsed here from format.h's layout, not by the reader).
struct RecordSpan {
    uint32_t type;
    size_t header_offset;   // RecordHeader
    size_t payload_offset;  // payload
    size_t payload_size;
};
std::vector<RecordSpan> parse_meta_layout(const std::string& meta);

// ---- allocation tracking (alloc_tracker.cpp) --------------------------------------------

// While an AllocLimit is alive, the largest single operator new request is recorded, and a
// request above `limit` bytes throws std::bad_alloc instead of being attempted (so that a
// decoder bug shows up as a test failure, not as the machine running out of memory).
class AllocLimit {
  public:
    explicit AllocLimit(size_t limit);
    ~AllocLimit();
    AllocLimit(const AllocLimit&) = delete;
    AllocLimit& operator=(const AllocLimit&) = delete;
    size_t largest() const;
    bool refused() const;  // a request above the limit was made
};

}  // namespace ckpt::test
