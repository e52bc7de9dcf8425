// Encoding and decoding of record payloads, driven by each record's `visit` (format.h).
#pragma once

#include <concepts>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "common/error.h"
#include "image/format.h"

namespace ckpt::image {

template <typename T>
concept Scalar = std::is_integral_v<T> || std::is_enum_v<T>;

class Encoder {
  public:
    template <typename T>
    void operator()(const char*, const T& value) { put(value); }

    template <Scalar T>
    void put(const T& v) {
        char b[sizeof(T)];
        std::memcpy(b, &v, sizeof(T));
        out_.append(b, sizeof(T));
    }
    void put(const std::string& s) {
        put(static_cast<uint32_t>(s.size()));
        out_.append(s);
    }
    template <typename T>
    void put(const std::vector<T>& vec) {
        put(static_cast<uint32_t>(vec.size()));
        for (const auto& e : vec) put(e);
    }
    template <typename T>
        requires(!Scalar<T>)
    void put(const T& rec) {
        const_cast<T&>(rec).visit(*this);
    }

    std::string take() { return std::move(out_); }

  private:
    std::string out_;
};

// The fewest bytes one encoded T can take (a string or vector: its u32 length), found from
// visit() on a default T; Decoder checks vector counts against it.
class MinWireSize {
  public:
    template <typename T>
    void operator()(const char*, const T& value) { add(value); }
    template <Scalar T>
    void add(const T&) { n += sizeof(T); }
    void add(const std::string&) { n += sizeof(uint32_t); }
    template <typename T>
    void add(const std::vector<T>&) { n += sizeof(uint32_t); }
    template <typename T>
        requires(!Scalar<T>)
    void add(const T& rec) { const_cast<T&>(rec).visit(*this); }
    size_t n = 0;
};

template <typename T>
size_t min_wire_size() {
    static const size_t n = [] {
        MinWireSize m;
        T t{};
        m.add(t);
        return m.n;
    }();
    return n;
}

class Decoder {
  public:
    Decoder(const char* data, size_t size, const char* record) : p_(data), end_(data + size),
                                                                 record_(record) {}

    template <typename T>
    void operator()(const char* field, T& value) {
        field_ = field;
        get(value);
    }

    template <Scalar T>
    void get(T& v) {
        need(sizeof(T));
        std::memcpy(&v, p_, sizeof(T));
        p_ += sizeof(T);
    }
    void get(std::string& s) {
        uint32_t n;
        get(n);
        need(n);
        s.assign(p_, n);
        p_ += n;
    }
    template <typename T>
    void get(std::vector<T>& vec) {
        uint32_t n;
        get(n);
        // Each element takes at least min_wire_size<T>() bytes: a count larger than what is
        // left can hold is corrupt (and must not be allocated).
        if (n > static_cast<size_t>(end_ - p_) / min_wire_size<T>()) bad("vector count");
        vec.clear();
        vec.resize(n);
        for (auto& e : vec) get(e);
    }
    template <typename T>
        requires(!Scalar<T>)
    void get(T& rec) {
        rec.visit(*this);
    }

    void finish() {
        if (p_ != end_) bad("trailing bytes");
    }

  private:
    void need(size_t n) {
        if (static_cast<size_t>(end_ - p_) < n) bad("payload too short");
    }
    [[noreturn]] void bad(const char* why) {
        fail("corrupt {} record: {} at field '{}'", record_, why, field_ ? field_ : "?");
    }

    const char* p_;
    const char* end_;
    const char* record_;
    const char* field_ = nullptr;
};

const char* record_name(RecordType t);
uint64_t payload_checksum(RecordType t, const void* data, size_t size);

template <typename Rec>
std::string encode(const Rec& rec) {
    Encoder e;
    e.put(rec);
    return e.take();
}

template <typename Rec>
Rec decode(const std::string& payload) {
    Rec rec;
    Decoder d(payload.data(), payload.size(), record_name(Rec::kType));
    d.get(rec);
    d.finish();
    return rec;
}

}  // namespace ckpt::image
