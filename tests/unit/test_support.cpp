#include "test_support.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "image/writer.h"

namespace ckpt::test {

namespace fs = std::filesystem;

TempDir::TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/ckpt-unit-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed: " + tmpl);
    path_ = buf.data();
}

TempDir::~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
}

std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot create " + path);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw std::runtime_error("cannot write " + path);
}

std::vector<std::string> list_dir(const std::string& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

void FieldDump::add(const std::string& path, const std::string& s) {
    static const char hex[] = "0123456789abcdef";
    std::string out = path + " = (" + std::to_string(s.size()) + ") ";
    for (unsigned char c : s) {
        out += hex[c >> 4];
        out += hex[c & 15];
    }
    lines_.push_back(std::move(out));
}

::testing::AssertionResult same_image(const image::Image& a, const image::Image& b) {
    if (auto r = same_record(a.header, b.header); !r) return r;
    if (auto r = same_records(a.processes, b.processes); !r) return r;
    if (auto r = same_records(a.threads, b.threads); !r) return r;
    if (auto r = same_records(a.vmas, b.vmas); !r) return r;
    if (auto r = same_records(a.page_runs, b.page_runs); !r) return r;
    if (auto r = same_records(a.fds, b.fds); !r) return r;
    if (auto r = same_record(a.end, b.end); !r) return r;
    return ::testing::AssertionSuccess();
}

std::string binary_blob(size_t n, unsigned seed) {
    std::string s(n, '\0');
    uint32_t x = 0x9e3779b9u * (seed + 1);
    for (size_t i = 0; i < n; ++i) {
        x = x * 1664525u + 1013904223u;
        // every 7th byte a NUL, the rest anything (including 0x00 and 0xff)
        s[i] = (i % 7 == 3) ? '\0' : static_cast<char>(x >> 24);
    }
    return s;
}

image::Process sample_process(int32_t pid) {
    image::Process p;
    p.pid = pid;
    p.ppid = 1;
    p.pgid = pid - 3;
    p.sid = 18967;
    p.comm = "a b) (c";
    p.argv = {"/usr/bin/prog", "--flag=1", "", "arg with spaces", std::string("nul\0inside", 10)};
    p.exe_path = "/usr/bin/prog";
    p.cwd = "/home/u/dir with spaces";
    p.root = "/";
    p.umask = 027;
    p.personality = 0x0040000;
    p.creds.ruid = 2001;
    p.creds.euid = 2002;
    p.creds.suid = 2003;
    p.creds.fsuid = 2004;
    p.creds.rgid = 1001;
    p.creds.egid = 1002;
    p.creds.sgid = 1003;
    p.creds.fsgid = 1004;
    p.creds.groups = {4, 24, 27, 1000, 65534};
    for (uint64_t i = 0; i < 16; ++i)
        p.rlimits.push_back({i * 1000 + 1, i % 3 == 0 ? ~0ULL : i * 2000 + 7});
    p.mm = {0x5555'5555'4000, 0x5555'5555'9239, 0x5555'5555'bdd0, 0x5555'5555'c168,
            0x5555'6000'0000, 0x5555'6002'1000, 0x7ffe'7b59'11f0, 0x7ffe'7b59'1a10,
            0x7ffe'7b59'1a65, 0x7ffe'7b59'1a65, 0x7ffe'7b59'1fd5};
    p.auxv = {3, 0x5555'5555'4040, 6, 4096, 25, 0x7ffe'7b59'1b09, 33, 0x7fff'f7fc'1000, 0, 0};
    for (uint64_t i = 0; i < 64; ++i)
        p.sigactions.push_back({0x401000 + i * 16, 0x04000004 | (i & 1 ? 0x10000000ULL : 0),
                                0x7fff'f7e0'0000 + i, 1ULL << i});
    p.itimers = {{1, 500000, 0, 250000}, {0, 0, 0, 0}, {-1, 999999, 3, 1}};
    p.shared_pending = {binary_blob(128, 1), binary_blob(128, 2)};
    p.vdso_hash = 0xdeadbeefcafebabeULL;
    p.nr_threads = 2;
    p.oom_score_adj = -617;
    p.loginuid = 1000;
    p.thp_disable = 3;
    p.child_subreaper = 1;
    p.membarrier = 0x10;
    p.cgroups = {{4, "cpu,cpuacct", "/a:b/c"}, {0, "", "/"}};
    return p;
}

image::Thread sample_thread(int32_t pid, int32_t tid, size_t xsave_size) {
    image::Thread t;
    t.pid = pid;
    t.tid = tid;
    t.name = tid == pid ? "main thread" : "worker (2)";
    t.state = 'S';
    t.regs = binary_blob(27 * 8, static_cast<unsigned>(tid));
    t.xsave = binary_blob(xsave_size, static_cast<unsigned>(tid) + 100);
    t.sigmask = 0x8000000000004a00ULL;
    t.altstack_sp = 0x7fff'0000'0000;
    t.altstack_size = 65536;
    t.altstack_flags = 2;  // SS_DISABLE
    t.clear_child_tid = 0x7fff'f7d8'4a10;
    t.robust_list = 0x7fff'f7d8'4a20;
    t.robust_list_len = 24;
    t.rseq_addr = 0x7fff'f7d8'4fe0;
    t.rseq_len = 32;
    t.rseq_sig = 0x53053053;
    t.rseq_flags = 0;
    t.sched_policy = 1;
    t.sched_priority = 7;
    t.nice = -5;
    t.affinity = binary_blob(128, 7);
    t.syscall_nr = tid == pid ? 230 : -1;
    t.restart = tid == pid ? image::SyscallRestart::RestartBlock : image::SyscallRestart::None;
    t.pending = {binary_blob(128, 3), std::string(128, '\0')};
    t.backtrace = {{0x7fff'f7e9'1234, 0x7ffe'7b59'0000, "clock_nanosleep+0x45", "/usr/lib/x86_64-linux-gnu/libc.so.6"},
                   {0x5555'5555'5189, 0x7ffe'7b59'0040, "", "/usr/bin/prog"},
                   {0x5555'5555'51a0, 0x7ffe'7b59'0080, "main+0x20", ""}};
    t.no_new_privs = tid == pid ? 0 : 1;
    return t;
}

namespace {

image::Vma vma(int32_t pid, uint64_t start, uint64_t end, uint32_t prot, uint32_t flags,
               image::VmaKind kind, std::string path) {
    image::Vma v;
    v.pid = pid;
    v.start = start;
    v.end = end;
    v.prot = prot;
    v.flags = flags;
    v.kind = kind;
    v.path = std::move(path);
    return v;
}

}  // namespace

SampleImage write_sample_image(const std::string& dir, unsigned variant, image::Existing existing) {
    using namespace image;
    const int32_t pid = 27934 + static_cast<int32_t>(variant);
    SampleImage s;
    ImageWriter w(dir, existing);

    Header& h = s.img.header;
    h.image_id = w.image_id();
    h.ckpt_version = "0.1.0-unit";
    h.kernel_release = "6.18.44-fc-v669";
    h.created_unix_ns = 1'790'000'000'123'456'789ULL + variant;
    h.page_size = static_cast<uint32_t>(kPageSize);
    h.xsave_size = 2696;
    h.xfeatures = 0x2e7;
    h.nr_processes = 1;

    s.img.processes = {sample_process(pid)};
    s.img.threads = {sample_thread(pid, pid, h.xsave_size), sample_thread(pid, pid + 1, h.xsave_size)};

    auto& vmas = s.img.vmas;
    vmas.push_back(vma(pid, 0x10000000, 0x10004000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       VmaKind::Anon, ""));
    vmas.back().advice = kAdviceDontDump | kAdviceDontFork | kAdviceMergeable;
    vmas.back().stored_pages = 2;
    vmas.back().vmflags = "rd wr mr mw me ac dc dd mg";
    vmas.push_back(vma(pid, 0x20000000, 0x20002000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                       VmaKind::Anon, "/dev/zero (deleted)"));
    vmas.back().dev = 1;
    vmas.back().ino = 1148;
    vmas.back().file.dev = 1;
    vmas.back().file.ino = 1148;
    vmas.back().file.size = 8192;
    vmas.back().data_offset = kDataHeaderSize;  // its content: empty (never written)
    vmas.back().checksum = XXH3_64bits(nullptr, 0);
    vmas.push_back(vma(pid, 0x21000000, 0x21002000, PROT_READ, MAP_PRIVATE, VmaKind::File,
                       "/tmp/dir with spaces/my file (1).bin"));
    vmas.back().pgoff = 4096;
    vmas.back().dev = 0xfe00;
    vmas.back().ino = 10952941;
    vmas.push_back(vma(pid, 0x5555'6000'0000, 0x5555'6002'1000, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, VmaKind::Heap, "[heap]"));
    vmas.back().advice = kAdviceHugepage | kAdviceLocked;
    vmas.back().stored_pages = 3;
    vmas.push_back(vma(pid, 0x7ff9'7137'2000, 0x7ff9'7137'6000, PROT_READ, MAP_PRIVATE, VmaKind::Vvar, "[vvar]"));
    vmas.push_back(vma(pid, 0x7ff9'7137'6000, 0x7ff9'7137'8000, PROT_READ, MAP_PRIVATE, VmaKind::VvarVclock,
                       "[vvar_vclock]"));
    vmas.push_back(vma(pid, 0x7ff9'7137'8000, 0x7ff9'7137'a000, PROT_READ | PROT_EXEC, MAP_PRIVATE,
                       VmaKind::Vdso, "[vdso]"));
    vmas.push_back(vma(pid, 0x7ffe'7b57'1000, 0x7ffe'7b59'2000, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN, VmaKind::Stack, "[stack]"));
    vmas.back().advice = kAdviceNoHugepage | kAdviceWipeOnFork;
    vmas.back().stored_pages = 1;
    vmas.push_back(vma(pid, 0xffff'ffff'ff60'0000, 0xffff'ffff'ff60'1000, PROT_EXEC, MAP_PRIVATE,
                       VmaKind::Vsyscall, "[vsyscall]"));

    // page data: three runs, then the content of an unlinked file (not a page multiple)
    struct RunSpec {
        uint64_t addr, pages;
    };
    const RunSpec specs[] = {{0x10000000, 2}, {0x5555'6000'0000, 3}, {0x7ffe'7b59'1000, 1}};
    std::vector<PageRun> runs;
    unsigned k = 0;
    for (const auto& spec : specs) {
        std::string bytes = binary_blob(spec.pages * kPageSize, 1000 + variant * 10 + k++);
        PageRun r;
        r.pid = pid;
        r.addr = spec.addr;
        r.nr_pages = spec.pages;
        r.data_offset = w.append_data(bytes.data(), bytes.size());
        runs.push_back(r);
        s.run_bytes.push_back(std::move(bytes));
    }
    w.checksum_runs(runs);
    s.img.page_runs = runs;

    s.unlinked_content = binary_blob(5000, 77 + variant);
    auto fd = [&](int32_t n, FdKind kind, std::string path) {
        Fd f;
        f.pid = pid;
        f.fd = n;
        f.kind = kind;
        f.path = std::move(path);
        return f;
    };
    auto& fds = s.img.fds;
    fds.push_back(fd(0, FdKind::Tty, "/dev/pts/3"));
    fds.back().open_flags = O_RDWR;
    fds.back().mode = S_IFCHR | 0620;
    fds.back().rdev = 0x8803;
    fds.push_back(fd(1, FdKind::Regular, "/home/u/out file.log"));
    fds.back().open_flags = O_WRONLY | O_APPEND | 0100000;
    fds.back().pos = 5100;
    fds.back().mode = S_IFREG | 0644;
    fds.back().dev = 0xfe00;
    fds.back().ino = 10952944;
    fds.back().size = 5100;
    fds.push_back(fds.back());
    fds.back().fd = 2;
    fds.back().dup_of = 1;
    fds.back().size = 0;
    fds.push_back(fd(3, FdKind::CharDev, "/dev/null"));
    fds.back().open_flags = O_RDWR;
    fds.back().fd_flags = FD_CLOEXEC;
    fds.back().mode = S_IFCHR | 0666;
    fds.back().rdev = 0x103;
    fds.push_back(fd(4, FdKind::Unlinked, "/tmp/gone.bin (deleted)"));
    fds.back().open_flags = O_RDWR;
    fds.back().pos = 77;
    fds.back().mode = S_IFREG | 0640;
    fds.back().ino = 10952942;
    fds.back().size = s.unlinked_content.size();
    fds.back().extents = {{0, s.unlinked_content.size()}};
    fds.back().file.mode = S_IFREG | 0640;
    fds.back().file.uid = 1000;
    fds.back().file.mtime_ns = 1700000000123456789;
    fds.back().file.build_id = std::string("\x01\x02\0\xff", 4);
    fds.back().data_offset = w.append_data(s.unlinked_content.data(), s.unlinked_content.size());
    fds.back().checksum = XXH3_64bits(s.unlinked_content.data(), s.unlinked_content.size());
    fds.push_back(fd(5, FdKind::Directory, "/home/u/dir with spaces"));
    fds.back().open_flags = O_RDONLY | O_DIRECTORY;
    fds.back().fd_flags = FD_CLOEXEC;
    fds.back().mode = S_IFDIR | 0755;

    w.add(s.img.header);
    for (const auto& p : s.img.processes) w.add(p);
    for (const auto& t : s.img.threads) w.add(t);
    for (const auto& v : s.img.vmas) w.add(v);
    for (const auto& r : s.img.page_runs) w.add(r);
    for (const auto& f : s.img.fds) w.add(f);
    s.img.end.nr_records = 1 + s.img.processes.size() + s.img.threads.size() + s.img.vmas.size() +
                           s.img.page_runs.size() + s.img.fds.size();
    s.img.end.data_size = w.data_offset();
    w.commit();
    return s;
}

namespace {

uint32_t le32(const std::string& b, size_t off) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[off + static_cast<size_t>(i)]);
    return v;
}

}  // namespace

std::vector<RecordSpan> parse_meta_layout(const std::string& meta) {
    // preamble: 8 magic bytes, u32 version, u32 reserved; then records:
    // u32 type, u32 payload_size, u64 checksum, payload.
    std::vector<RecordSpan> out;
    size_t pos = 16;
    while (pos < meta.size()) {
        if (meta.size() - pos < 16) {
            ADD_FAILURE() << "meta.img layout: partial record header at " << pos;
            break;
        }
        RecordSpan r;
        r.type = le32(meta, pos);
        r.payload_size = le32(meta, pos + 4);
        r.header_offset = pos;
        r.payload_offset = pos + 16;
        if (r.payload_offset + r.payload_size > meta.size()) {
            ADD_FAILURE() << "meta.img layout: record at " << pos << " runs past the end";
            break;
        }
        out.push_back(r);
        pos = r.payload_offset + r.payload_size;
    }
    return out;
}

}  // namespace ckpt::test
