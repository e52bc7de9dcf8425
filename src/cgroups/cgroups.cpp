#include "cgroups/cgroups.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <optional>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/fd.h"
#include "common/fs.h"

namespace ckpt::cgroups {

namespace {

// Two lines name the same hierarchy if both are v2, or both v1 with the same controllers.
bool same_hierarchy(const image::Cgroup& a, const image::Cgroup& b) {
    if ((a.hierarchy == 0) != (b.hierarchy == 0)) return false;
    return a.hierarchy == 0 || a.controllers == b.controllers;
}

const image::Cgroup* find(const std::vector<image::Cgroup>& list, const image::Cgroup& like) {
    for (const auto& c : list)
        if (same_hierarchy(c, like)) return &c;
    return nullptr;
}

std::vector<std::string> split(std::string_view s, char sep) {
    std::vector<std::string> out;
    size_t at = 0;
    for (;;) {
        size_t end = s.find(sep, at);
        out.emplace_back(s.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at));
        if (end == std::string_view::npos) return out;
        at = end + 1;
    }
}

// mountinfo writes space, tab, newline and backslash in paths as \ooo.
std::string unescape(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3') {
            out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
            i += 3;
        } else {
            out += s[i];
        }
    }
    return out;
}

struct Mount {
    std::string root;   // the cgroup shown at the mount point ("/" unless a bind of a subtree)
    std::string point;  // where it is mounted
};

// Every mount of the hierarchy `c` in ckpt's mount namespace. A v1 controller (or name=)
// belongs to one hierarchy only, so a cgroup mount whose super options hold all of c's
// controllers is a mount of that hierarchy.
std::vector<Mount> mounts_of(const image::Cgroup& c) {
    std::vector<Mount> out;
    std::istringstream in(read_file("/proc/self/mountinfo"));
    std::string line;
    std::vector<std::string> want = c.hierarchy == 0 ? std::vector<std::string>{} : split(c.controllers, ',');
    while (std::getline(in, line)) {
        auto f = split(line, ' ');
        size_t dash = 0;
        while (dash < f.size() && f[dash] != "-") ++dash;
        if (dash < 6 || dash + 3 >= f.size()) continue;
        const std::string& fstype = f[dash + 1];
        if (c.hierarchy == 0 ? fstype != "cgroup2" : fstype != "cgroup") continue;
        if (c.hierarchy != 0) {
            auto opts = split(f[dash + 3], ',');
            std::set<std::string> have(opts.begin(), opts.end());
            bool all = true;
            for (const auto& w : want) all = all && have.count(w);
            if (!all) continue;
        }
        out.push_back({unescape(f[3]), unescape(f[4])});
    }
    return out;
}

// The directory of cgroup `path` under one of the mounts, if one shows it.
std::optional<std::string> directory_of(const std::vector<Mount>& mounts, const std::string& path) {
    for (const auto& m : mounts) {
        std::string rel;
        if (m.root == "/")
            rel = path;
        else if (path == m.root)
            rel = "/";
        else if (path.starts_with(m.root + "/"))
            rel = path.substr(m.root.size());
        else
            continue;
        return rel == "/" ? m.point : m.point + rel;
    }
    return std::nullopt;
}

// The directory of cgroup c here, or why there is none.
std::string directory_or_reason(const image::Cgroup& c, bool& found) {
    found = false;
    auto mounts = mounts_of(c);
    if (mounts.empty()) return "that hierarchy is not mounted here";
    auto dir = directory_of(mounts, c.path);
    if (!dir)
        return fmt::format("no mount of that hierarchy reaches it ({} shows only {})", mounts.front().point,
                           mounts.front().root);
    found = true;
    return *dir;
}

std::string where(const image::Cgroup& c) {
    return fmt::format("cgroup {} of {}", c.path, hierarchy_name(c));
}

}  // namespace

std::vector<image::Cgroup> parse(std::string_view text, const std::string& what) {
    std::vector<image::Cgroup> out;
    for (const auto& line : split(text, '\n')) {
        if (line.empty()) continue;
        // The path is everything after the second colon: it may hold colons itself.
        size_t a = line.find(':');
        size_t b = a == std::string::npos ? a : line.find(':', a + 1);
        if (b == std::string::npos || a == 0) fail("cannot parse {}: '{}'", what, line);
        image::Cgroup c;
        try {
            size_t used = 0;
            c.hierarchy = static_cast<uint32_t>(std::stoul(line.substr(0, a), &used));
            if (used != a) throw std::invalid_argument("id");
        } catch (const std::exception&) {
            fail("cannot parse {}: '{}'", what, line);
        }
        c.controllers = line.substr(a + 1, b - a - 1);
        c.path = line.substr(b + 1);
        if (c.path.empty() || c.path[0] != '/') fail("cannot parse {}: '{}'", what, line);
        out.push_back(std::move(c));
    }
    return out;
}

std::vector<image::Cgroup> of_process(pid_t pid) {
    std::string path = fmt::format("/proc/{}/cgroup", pid);
    return parse(read_file(path), path);
}

std::vector<image::Cgroup> of_thread(pid_t pid, pid_t tid) {
    std::string path = fmt::format("/proc/{}/task/{}/cgroup", pid, tid);
    return parse(read_file(path), path);
}

std::string hierarchy_name(const image::Cgroup& c) {
    return c.hierarchy == 0 ? std::string("cgroup v2") : fmt::format("cgroup v1 hierarchy {}", c.controllers);
}

std::string thread_difference(pid_t pid, pid_t tid) {
    auto process = of_process(pid);
    for (const auto& t : of_thread(pid, tid)) {
        const image::Cgroup* p = find(process, t);
        if (!p || p->path != t.path)
            return fmt::format("thread {} is in {} of {} (the process in {})", tid, t.path, hierarchy_name(t),
                               p ? p->path : "none");
    }
    return {};
}

std::string restore_obstacle(pid_t pid) {
    auto mine = of_process(::getpid());
    for (const auto& c : of_process(pid)) {
        const image::Cgroup* m = find(mine, c);
        if (m && m->path == c.path) continue;  // a restore by this ckpt would not move it
        bool found;
        std::string dir = directory_or_reason(c, found);
        if (!found) return fmt::format("is in {}, but {}", where(c), dir);
        if (c.hierarchy != 0) continue;
        std::string type;
        try {
            type = read_file(dir + "/cgroup.type");
        } catch (const Error&) {
            continue;  // the root cgroup has no type; without the file nothing is threaded
        }
        if (type.starts_with("threaded"))
            return fmt::format("is in {}, a threaded cgroup (its cgroup.procs cannot be written)", where(c));
    }
    return {};
}

void restore_membership(pid_t pid, const std::vector<image::Cgroup>& recorded) {
    auto now = of_process(pid);
    for (const auto& rec : recorded) {
        const image::Cgroup* cur = find(now, rec);
        if (cur && cur->path == rec.path) continue;
        if (!cur && rec.path == "/") continue;  // a hierarchy this kernel lacks, and its root: nothing lost
        if (!cur)
            fail("cannot put pid {} back into {}: that hierarchy does not exist here", pid, where(rec));
        bool found;
        std::string dir = directory_or_reason(rec, found);
        if (!found) fail("cannot put pid {} back into {}: {}", pid, where(rec), dir);
        struct stat st;
        if (::stat(dir.c_str(), &st) != 0) fail_errno("cannot put pid {} back into {}: {}", pid, where(rec), dir);
        std::string procs = dir + "/cgroup.procs";
        UniqueFd fd(::open(procs.c_str(), O_WRONLY | O_CLOEXEC));
        std::string text = std::to_string(pid);
        if (!fd || ::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
            fail_errno("cannot put pid {} back into {}: writing {}", pid, where(rec), procs);
    }
    auto after = of_process(pid);
    for (const auto& rec : recorded) {
        const image::Cgroup* cur = find(after, rec);
        if (cur && cur->path != rec.path)
            fail("cannot put pid {} back into {}: it is in {} after the move", pid, where(rec), cur->path);
    }
}

}  // namespace ckpt::cgroups
