#include "restore/file_check.h"

#include <sys/stat.h>

#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/fd.h"
#include "common/log.h"
#include "tracer/file_identity.h"

namespace ckpt::restore {

namespace {

struct Expected {
    const std::string& path;
    const image::FileStat& then;
};

std::string hex(const std::string& bytes) {
    std::string out;
    for (unsigned char c : bytes) out += fmt::format("{:02x}", c);
    return out;
}

// What differs between the file as dumped and as found, for people; empty if nothing that
// matters does. Content identity is size, mtime and build-id: a different inode or device
// with the same identity is the same content (another machine, or a file replaced by an
// identical copy). On the same inode a changed ctime also counts, because only a change
// of the file itself moves it (content rewritten with its mtime put back, mode, owner).
std::vector<std::string> differences(const image::FileStat& then, const image::FileStat& now) {
    std::vector<std::string> d;
    if (!then.build_id.empty() && now.build_id != then.build_id)
        d.push_back(now.build_id.empty() ? fmt::format("build-id {} is gone", hex(then.build_id))
                                         : fmt::format("build-id differs ({} -> {})",
                                                       hex(then.build_id), hex(now.build_id)));
    if (now.size != then.size)
        d.push_back(fmt::format("size {} -> {} ({})", then.size, now.size,
                                now.size < then.size ? "truncated" : "grew"));
    if (now.mtime_ns != then.mtime_ns) d.push_back("mtime differs");
    bool same_inode = now.dev == then.dev && now.ino == then.ino;
    if (same_inode && d.empty() && now.ctime_ns != then.ctime_ns)
        d.push_back("ctime differs (the file was changed in place)");
    return d;
}

void check_one(const Expected& e, bool allow_changed) {
    UniqueFd f(tracer::open_for_identity(e.path));
    if (!f) fail_errno("file {} is needed by the image but cannot be opened", e.path);
    image::FileStat now = tracer::identify_file(f.get(), e.path);
    if (!S_ISREG(now.mode)) fail("file {} is no longer a regular file", e.path);
    std::vector<std::string> d = differences(e.then, now);
    if (d.empty()) {
        if (now.dev != e.then.dev || now.ino != e.then.ino)
            log::info("file {} is another inode than at the dump, with the same size, mtime{}: "
                      "taken as the same content", e.path, e.then.build_id.empty() ? "" : " and build-id");
        return;
    }
    std::string what;
    for (const auto& s : d) what += (what.empty() ? "" : ", ") + s;
    if (allow_changed) {
        log::error("file {} changed since the dump: {} (accepted: --allow-changed-files)", e.path, what);
        return;
    }
    fail("file {} changed since the dump: {} (--allow-changed-files restores anyway)", e.path, what);
}

}  // namespace

void check_files(const image::Image& img, bool allow_changed) {
    std::vector<Expected> files;
    std::set<std::string> seen;
    // Only regular files have a content to compare (a mapped device does not).
    for (const auto& f : img.fds)
        if (f.kind == image::FdKind::Regular && f.dup_of < 0 && S_ISREG(f.file.mode) && seen.insert(f.path).second)
            files.push_back({f.path, f.file});
    for (const auto& v : img.vmas)
        if (v.kind == image::VmaKind::File && !v.unlinked && S_ISREG(v.file.mode) && seen.insert(v.path).second)
            files.push_back({v.path, v.file});
    for (const auto& e : files) check_one(e, allow_changed);
}

}  // namespace ckpt::restore
