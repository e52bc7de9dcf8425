// The ckpt image format: the one place where every record is defined.
//
// An image is a directory with two files:
//   meta.img  preamble (magic, version) followed by records; the first is a Header,
//             the last an End. Each record: RecordHeader + payload, payload checksummed.
//   data.img  preamble, padded to one page, then raw page data (and the contents of
//             unlinked files), referenced from PageRun and Fd records by offset.
//
// Every record is a struct with a `visit` function listing its fields in wire order; the
// same list drives encoding, decoding and `ckpt info --json`, so a field cannot be written
// and forgotten by the reader or by info. Integers are little endian and fixed width;
// strings and byte blobs are a u32 length then the bytes; vectors a u32 count then elements.
// docs/image-format.md describes the layout for people; this header is the authority.
//
// Compatibility: kFormatVersion changes whenever any record changes shape; a reader refuses
// a version it does not know rather than guessing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ckpt::image {

inline constexpr char kMetaMagic[8] = {'C', 'K', 'P', 'T', 'M', 'E', 'T', 'A'};
inline constexpr char kDataMagic[8] = {'C', 'K', 'P', 'T', 'D', 'A', 'T', 'A'};
inline constexpr uint32_t kFormatVersion = 6;
inline constexpr uint64_t kPageSize = 4096;
inline constexpr uint64_t kDataHeaderSize = kPageSize;  // page data starts page aligned
inline constexpr const char* kMetaFile = "meta.img";
inline constexpr const char* kDataFile = "data.img";

struct Preamble {  // first 16 bytes of both files
    char magic[8];
    uint32_t version;
    uint32_t reserved;
};

enum class RecordType : uint32_t {
    Header = 1,
    Process = 2,
    Thread = 3,
    Vma = 4,
    PageRun = 5,
    Fd = 6,
    EventFd = 7,
    SignalFd = 8,
    TimerFd = 9,
    EpollTarget = 10,
    FileLock = 11,
    InotifyWatch = 12,
    Memfd = 13,
    SysvShm = 14,
    UnixSocket = 15,
    InetSocket = 16,
    Pty = 17,
    End = 0x7fff,
};

struct RecordHeader {
    uint32_t type;
    uint32_t payload_size;
    uint64_t checksum;  // XXH3-64 of the payload, seeded with `type`
};
static_assert(sizeof(RecordHeader) == 16);

inline constexpr uint32_t kMaxPayload = 64u << 20;  // sanity bound for corrupt sizes

// ---- records --------------------------------------------------------------------------

struct Header {
    static constexpr RecordType kType = RecordType::Header;
    uint64_t image_id = 0;  // random; data.img carries the same id
    std::string ckpt_version;
    std::string kernel_release;
    uint64_t created_unix_ns = 0;
    uint32_t page_size = kPageSize;
    uint32_t xsave_size = 0;  // size of each thread's xsave blob
    uint64_t xfeatures = 0;   // XCR0 of the dumping CPU
    uint32_t nr_processes = 0;

    template <typename V> void visit(V& v) {
        v("image_id", image_id);
        v("ckpt_version", ckpt_version);
        v("kernel_release", kernel_release);
        v("created_unix_ns", created_unix_ns);
        v("page_size", page_size);
        v("xsave_size", xsave_size);
        v("xfeatures", xfeatures);
        v("nr_processes", nr_processes);
    }
};

struct SigAction {
    uint64_t handler = 0, flags = 0, restorer = 0, mask = 0;
    template <typename V> void visit(V& v) {
        v("handler", handler);
        v("flags", flags);
        v("restorer", restorer);
        v("mask", mask);
    }
};

struct Itimer {
    int64_t interval_sec = 0, interval_usec = 0, value_sec = 0, value_usec = 0;
    template <typename V> void visit(V& v) {
        v("interval_sec", interval_sec);
        v("interval_usec", interval_usec);
        v("value_sec", value_sec);
        v("value_usec", value_usec);
    }
};

// A POSIX timer (timer_create) of the process: created again with the same id.
struct PosixTimer {
    int32_t id = 0;
    int32_t clockid = 0;
    int32_t notify = 0;      // SIGEV_SIGNAL 0, SIGEV_NONE 1, SIGEV_THREAD_ID 4 (glibc's SIGEV_THREAD is one)
    int32_t signo = 0;
    int32_t target_tid = 0;  // SIGEV_THREAD_ID: the thread it signals
    uint64_t sigval = 0;     // sigev_value, handed back in si_value
    // Time left and interval from timer_gettime at dump (a periodic timer whose signal is
    // still pending shows 0 left: it is re-armed when the signal is taken).
    int64_t value_sec = 0, value_nsec = 0, interval_sec = 0, interval_nsec = 0;
    int32_t overrun = 0;  // timer_getoverrun at dump (for people: the kernel cannot be given it back)
    template <typename V> void visit(V& v) {
        v("id", id);
        v("clockid", clockid);
        v("notify", notify);
        v("signo", signo);
        v("target_tid", target_tid);
        v("sigval", sigval);
        v("value_sec", value_sec);
        v("value_nsec", value_nsec);
        v("interval_sec", interval_sec);
        v("interval_nsec", interval_nsec);
        v("overrun", overrun);
    }
};

struct Rlimit {
    uint64_t cur = 0, max = 0;
    template <typename V> void visit(V& v) {
        v("cur", cur);
        v("max", max);
    }
};

struct MmFields {  // what PR_SET_MM_MAP takes back
    uint64_t start_code = 0, end_code = 0, start_data = 0, end_data = 0;
    uint64_t start_brk = 0, brk = 0, start_stack = 0;
    uint64_t arg_start = 0, arg_end = 0, env_start = 0, env_end = 0;
    template <typename V> void visit(V& v) {
        v("start_code", start_code);
        v("end_code", end_code);
        v("start_data", start_data);
        v("end_data", end_data);
        v("start_brk", start_brk);
        v("brk", brk);
        v("start_stack", start_stack);
        v("arg_start", arg_start);
        v("arg_end", arg_end);
        v("env_start", env_start);
        v("env_end", env_end);
    }
};

// One line of /proc/PID/cgroup: a hierarchy and the process's cgroup in it, relative to the
// root of ckpt's cgroup namespace (the audit refuses a target in another one).
struct Cgroup {
    uint32_t hierarchy = 0;   // the id in /proc/PID/cgroup; 0 is cgroup v2 (ids can change at boot)
    std::string controllers;  // "cpu,cpuacct", "name=systemd"; empty for cgroup v2
    std::string path;         // "/user.slice/..."
    template <typename V> void visit(V& v) {
        v("hierarchy", hierarchy);
        v("controllers", controllers);
        v("path", path);
    }
};

struct Creds {
    uint32_t ruid = 0, euid = 0, suid = 0, fsuid = 0;
    uint32_t rgid = 0, egid = 0, sgid = 0, fsgid = 0;
    std::vector<uint32_t> groups;
    template <typename V> void visit(V& v) {
        v("ruid", ruid);
        v("euid", euid);
        v("suid", suid);
        v("fsuid", fsuid);
        v("rgid", rgid);
        v("egid", egid);
        v("sgid", sgid);
        v("fsgid", fsgid);
        v("groups", groups);
    }
};

// Processes come in tree order: the dumped process first, every child after its parent
// (depth first, children by pid). ppid links them; the first one's parent is outside.
struct Process {
    static constexpr RecordType kType = RecordType::Process;
    int32_t pid = 0, ppid = 0, pgid = 0, sid = 0;
    int32_t exit_signal = 17;  // what the parent gets at its exit (SIGCHLD after fork())
    // An exited child its parent has not waited for: only the ids, exit_signal and
    // exit_status are meaningful, and it has no threads, memory or files.
    uint32_t zombie = 0;
    int32_t exit_status = 0;  // a zombie's wait status (as waitpid reports it)
    uint32_t ctty = 0;        // its session's controlling terminal (tty_nr of /proc stat), 0 if none
    std::string comm;
    std::vector<std::string> argv;  // for people (info); the real argv is in memory
    std::string exe_path;
    std::string cwd;
    std::string root;
    uint32_t umask = 0;
    uint32_t personality = 0;
    Creds creds;
    std::vector<Rlimit> rlimits;  // indexed by RLIMIT_*
    MmFields mm;
    std::vector<uint64_t> auxv;  // raw (key, value) pairs up to and including AT_NULL
    std::vector<SigAction> sigactions;  // 64 entries, index = signal - 1
    std::vector<Itimer> itimers;        // REAL, VIRTUAL, PROF
    std::vector<PosixTimer> posix_timers;  // by id
    std::vector<std::string> shared_pending;  // process-directed siginfo_t (128 bytes each)
    uint64_t vdso_hash = 0;  // XXH3 of the [vdso] text, to refuse a different kernel's vDSO
    uint32_t nr_threads = 0;
    int32_t oom_score_adj = 0;
    uint32_t loginuid = 0xffffffff;  // audit login uid; all ones = never set
    uint32_t thp_disable = 0;        // PR_GET_THP_DISABLE: 0, 1, or 3 (except where advised)
    uint32_t child_subreaper = 0;    // PR_GET_CHILD_SUBREAPER
    uint32_t membarrier = 0;         // MEMBARRIER_CMD_REGISTER_* commands registered
    std::vector<Cgroup> cgroups;     // every hierarchy of /proc/PID/cgroup (all threads alike)

    template <typename V> void visit(V& v) {
        v("pid", pid);
        v("ppid", ppid);
        v("pgid", pgid);
        v("sid", sid);
        v("exit_signal", exit_signal);
        v("zombie", zombie);
        v("exit_status", exit_status);
        v("ctty", ctty);
        v("comm", comm);
        v("argv", argv);
        v("exe_path", exe_path);
        v("cwd", cwd);
        v("root", root);
        v("umask", umask);
        v("personality", personality);
        v("creds", creds);
        v("rlimits", rlimits);
        v("mm", mm);
        v("auxv", auxv);
        v("sigactions", sigactions);
        v("itimers", itimers);
        v("posix_timers", posix_timers);
        v("shared_pending", shared_pending);
        v("vdso_hash", vdso_hash);
        v("nr_threads", nr_threads);
        v("oom_score_adj", oom_score_adj);
        v("loginuid", loginuid);
        v("thp_disable", thp_disable);
        v("child_subreaper", child_subreaper);
        v("membarrier", membarrier);
        v("cgroups", cgroups);
    }
};

// How a thread was stopped inside a system call; restore resumes it as the kernel would.
enum class SyscallRestart : uint32_t {
    None = 0,       // not in a syscall, or the syscall completed
    Restart = 1,    // -ERESTARTSYS/-ERESTARTNOINTR/-ERESTARTNOHAND: re-execute it
    RestartBlock = 2,  // -ERESTART_RESTARTBLOCK: re-execute it with its original arguments
};

struct BacktraceFrame {
    uint64_t pc = 0;
    uint64_t sp = 0;
    std::string symbol;  // "function+0xoff" or empty
    std::string object;  // mapping path
    template <typename V> void visit(V& v) {
        v("pc", pc);
        v("sp", sp);
        v("symbol", symbol);
        v("object", object);
    }
};

// One seccomp filter of a thread: the classic BPF program as installed, and its flags.
struct SeccompFilter {
    uint64_t flags = 0;  // SECCOMP_FILTER_FLAG_LOG, _SPEC_ALLOW (PTRACE_SECCOMP_GET_METADATA)
    std::string insns;   // struct sock_filter[], 8 bytes each
    template <typename V> void visit(V& v) {
        v("flags", flags);
        v("insns", insns);
    }
};

struct Thread {
    static constexpr RecordType kType = RecordType::Thread;
    int32_t pid = 0;  // owning process
    int32_t tid = 0;
    std::string name;
    char state = '?';  // from /proc: R, S, D...
    std::string regs;   // struct user_regs_struct, 27 * 8 bytes
    std::string xsave;  // NT_X86_XSTATE blob, Header::xsave_size bytes
    uint64_t sigmask = 0;
    uint64_t altstack_sp = 0, altstack_size = 0;
    int32_t altstack_flags = 0;
    uint64_t clear_child_tid = 0;
    uint64_t robust_list = 0, robust_list_len = 0;
    uint64_t rseq_addr = 0;
    uint32_t rseq_len = 0, rseq_sig = 0, rseq_flags = 0;
    int32_t sched_policy = 0, sched_priority = 0, nice = 0;
    std::string affinity;  // cpu_set_t bytes
    int64_t syscall_nr = -1;  // orig_rax when stopped in a syscall
    SyscallRestart restart = SyscallRestart::None;
    std::vector<std::string> pending;  // thread-directed siginfo_t
    std::vector<BacktraceFrame> backtrace;
    uint32_t no_new_privs = 0;  // per thread for the kernel (NoNewPrivs in task status)
    int32_t pdeath_signal = 0;  // PR_SET_PDEATHSIG, per thread
    uint32_t seccomp_mode = 0;  // 0 none, 1 strict, 2 filters
    // Oldest first, as they are installed again (the last thing before the thread runs);
    // filters threads inherited from one another are installed per thread (TSYNC sharing is lost).
    std::vector<SeccompFilter> seccomp_filters;

    template <typename V> void visit(V& v) {
        v("pid", pid);
        v("tid", tid);
        v("name", name);
        v("state", state);
        v("regs", regs);
        v("xsave", xsave);
        v("sigmask", sigmask);
        v("altstack_sp", altstack_sp);
        v("altstack_size", altstack_size);
        v("altstack_flags", altstack_flags);
        v("clear_child_tid", clear_child_tid);
        v("robust_list", robust_list);
        v("robust_list_len", robust_list_len);
        v("rseq_addr", rseq_addr);
        v("rseq_len", rseq_len);
        v("rseq_sig", rseq_sig);
        v("rseq_flags", rseq_flags);
        v("sched_policy", sched_policy);
        v("sched_priority", sched_priority);
        v("nice", nice);
        v("affinity", affinity);
        v("syscall_nr", syscall_nr);
        v("restart", restart);
        v("pending", pending);
        v("backtrace", backtrace);
        v("no_new_privs", no_new_privs);
        v("pdeath_signal", pdeath_signal);
        v("seccomp_mode", seccomp_mode);
        v("seccomp_filters", seccomp_filters);
    }
};

// What identifies a file's content (and, for files saved by content, its attributes).
// Recorded for every open regular file and every file mapping; restore compares it with
// what is at the path then (see docs/files.md).
struct FileStat {
    uint64_t dev = 0, ino = 0;
    uint32_t mode = 0, uid = 0, gid = 0;
    uint64_t size = 0;
    int64_t atime_ns = 0, mtime_ns = 0, ctime_ns = 0;
    std::string build_id;  // raw bytes of an ELF file's GNU build-id note; empty if none

    template <typename V> void visit(V& v) {
        v("dev", dev);
        v("ino", ino);
        v("mode", mode);
        v("uid", uid);
        v("gid", gid);
        v("size", size);
        v("atime_ns", atime_ns);
        v("mtime_ns", mtime_ns);
        v("ctime_ns", ctime_ns);
        v("build_id", build_id);
    }
};

// A range of a file that holds data (SEEK_DATA..SEEK_HOLE); what lies between is a hole.
struct FileExtent {
    uint64_t offset = 0, length = 0;
    template <typename V> void visit(V& v) {
        v("offset", offset);
        v("length", length);
    }
};

// Pages of a VMA that are guard regions (madvise MADV_GUARD_INSTALL): never read at dump,
// installed again at restore.
struct GuardRange {
    uint64_t addr = 0, nr_pages = 0;
    template <typename V> void visit(V& v) {
        v("addr", addr);
        v("nr_pages", nr_pages);
    }
};

// Bytes of an unlinked file's content in data.img (the sum of its extents).
inline uint64_t stored_bytes(const std::vector<FileExtent>& extents) {
    uint64_t n = 0;
    for (const auto& e : extents) n += e.length;
    return n;
}

enum class VmaKind : uint32_t {
    Anon = 0,        // private or shared anonymous memory
    File = 1,        // a mapping of a file
    Heap = 2,        // [heap]
    Stack = 3,       // [stack]
    Vdso = 4,        // [vdso]
    Vvar = 5,        // [vvar]
    VvarVclock = 6,  // [vvar_vclock]
    Vsyscall = 7,    // [vsyscall]: fixed by the kernel, recorded but never restored
    Memfd = 8,       // a mapping of a memfd: its object is the Memfd record of (file.dev, file.ino)
    SysvShm = 9,     // an attach of a System V shared memory segment: `ino` is its shmid
};

// madvise-level properties read from smaps VmFlags that restore reapplies.
enum VmaAdvice : uint32_t {
    kAdviceHugepage = 1 << 0,    // hg
    kAdviceNoHugepage = 1 << 1,  // nh
    kAdviceDontDump = 1 << 2,    // dd
    kAdviceDontFork = 1 << 3,    // dc
    kAdviceWipeOnFork = 1 << 4,  // wf
    kAdviceLocked = 1 << 5,      // lo
    kAdviceMergeable = 1 << 6,   // mg (KSM)
    kAdviceSequential = 1 << 7,  // sr
    kAdviceRandom = 1 << 8,      // rr
    kAdviceLockOnFault = 1 << 9, // lf (with lo: mlock2 MLOCK_ONFAULT)
};

struct Vma {
    static constexpr RecordType kType = RecordType::Vma;
    int32_t pid = 0;
    uint64_t start = 0, end = 0;
    uint32_t prot = 0;   // PROT_*
    uint32_t flags = 0;  // MAP_SHARED / MAP_PRIVATE / MAP_ANONYMOUS / MAP_GROWSDOWN / MAP_NORESERVE
    VmaKind kind = VmaKind::Anon;
    uint32_t advice = 0;  // VmaAdvice bits
    uint64_t pgoff = 0;   // file offset in bytes
    std::string path;     // file path, or the name shown in maps ("/dev/zero (deleted)")
    uint64_t dev = 0, ino = 0;
    uint64_t stored_pages = 0;  // pages of this VMA in data.img (for info)
    FileStat file;              // File: the mapped file's identity
    // File deleted while mapped (path ends in " (deleted)"): its content is in data.img like
    // an unlinked Fd's, shared with every Fd and Vma of the same inode (file.dev, file.ino).
    uint32_t unlinked = 0;
    uint64_t data_offset = 0;
    uint64_t checksum = 0;
    std::vector<FileExtent> extents;
    // VmFlags of smaps as the kernel showed them ("rd wr mr mw me ac"): what restore
    // reproduces is also in flags/advice; "mw" tells how a shared file mapping's file was opened.
    std::string vmflags;
    std::vector<GuardRange> guards;  // only in a VMA whose VmFlags show "gu"
    // Shared anonymous memory (kind Anon, MAP_SHARED) is one object per (file.dev,
    // file.ino), maybe mapped by several processes, file.size bytes: its content is stored
    // once, like an unlinked file's (data_offset, checksum, extents), with the first VMA
    // that maps it; every other VMA of the object has that VMA's pid in `content_pid`.
    int32_t content_pid = 0;
    // Private memory still shared copy-on-write with the parent (fork() and neither wrote
    // it since): 1 if the parent's VMA at the same address is taken over at restore, as
    // fork() would; then only the pages this process has of its own are stored, and `zero`
    // lists the pages it has none of (never touched, dropped, or all zero).
    uint32_t inherit = 0;
    std::vector<GuardRange> zero;

    template <typename V> void visit(V& v) {
        v("pid", pid);
        v("start", start);
        v("end", end);
        v("prot", prot);
        v("flags", flags);
        v("kind", kind);
        v("advice", advice);
        v("pgoff", pgoff);
        v("path", path);
        v("dev", dev);
        v("ino", ino);
        v("stored_pages", stored_pages);
        v("file", file);
        v("unlinked", unlinked);
        v("data_offset", data_offset);
        v("checksum", checksum);
        v("extents", extents);
        v("vmflags", vmflags);
        v("guards", guards);
        v("content_pid", content_pid);
        v("inherit", inherit);
        v("zero", zero);
    }
};

// Pages [addr, addr + nr_pages * page) of process pid are at data_offset in data.img.
struct PageRun {
    static constexpr RecordType kType = RecordType::PageRun;
    int32_t pid = 0;
    uint64_t addr = 0;
    uint64_t nr_pages = 0;
    uint64_t data_offset = 0;
    uint64_t checksum = 0;  // XXH3-64 of the run's bytes

    template <typename V> void visit(V& v) {
        v("pid", pid);
        v("addr", addr);
        v("nr_pages", nr_pages);
        v("data_offset", data_offset);
        v("checksum", checksum);
    }
};

enum class FdKind : uint32_t {
    Regular = 0,   // a file that still has its path
    Unlinked = 1,  // a regular file deleted while open: its content is in data.img
    CharDev = 2,   // /dev/null, /dev/zero, ...
    Tty = 3,       // a terminal (pty slave or console)
    Directory = 4,
    Pipe = 5,  // an end of a pipe (ino is the pipe's inode)
    Fifo = 6,  // an end of a named pipe (path, dev and ino are the FIFO's)
    // Event descriptors: the state of each open file description is in one record of its
    // own type with the same file_id (EventFd, SignalFd, TimerFd; an epoll's registered
    // targets in EpollTarget records).
    EventFd = 7,
    Epoll = 8,
    SignalFd = 9,
    TimerFd = 10,
    Inotify = 11,  // its watches are InotifyWatch records
    Memfd = 12,    // a memfd: its memory object is a Memfd record with the same (dev, ino)
    UnixSocket = 13,  // an AF_UNIX socket: its state is the UnixSocket record of its file_id
    InetSocket = 14,  // a TCP or UDP socket (IPv4, IPv6): the InetSocket record of its file_id
    PtyMaster = 15,   // the master of a pseudo-terminal pair (/dev/ptmx): the Pty record of its file_id
    PtySlave = 16,    // /dev/pts/N whose master is held in the tree (the Pty record of index N)
};

struct Fd {
    static constexpr RecordType kType = RecordType::Fd;
    int32_t pid = 0;
    int32_t fd = 0;
    int32_t dup_of = -1;  // same open file description as this earlier fd (kcmp)
    FdKind kind = FdKind::Regular;
    uint32_t open_flags = 0;  // O_* as in fdinfo "flags", without O_CLOEXEC
    uint32_t fd_flags = 0;    // FD_CLOEXEC
    uint64_t pos = 0;
    std::string path;
    uint32_t mode = 0;  // st_mode
    uint64_t dev = 0, ino = 0, rdev = 0;
    uint64_t size = 0;
    uint64_t data_offset = 0;  // Unlinked: content in data.img
    uint64_t checksum = 0;     // Unlinked: XXH3-64 of the stored bytes
    FileStat file;             // Regular, Unlinked: identity and attributes of the file
    // Unlinked: the ranges holding data, stored back to back at data_offset; the rest of
    // [0, size) is holes. Fds on one unlinked inode (same dev, ino) share one copy.
    std::vector<FileExtent> extents;
    // The open file description: the same id in every record, of any process, that refers
    // to it (fork() shares descriptions; a shared offset moves for all holders). Unique
    // per description in the image, never 0.
    uint32_t file_id = 0;
    // Pipe, Fifo: its capacity (F_GETPIPE_SZ). The bytes buffered in it at dump time are
    // stored once, with the first record of the pipe (size bytes at data_offset, checksum).
    uint32_t pipe_size = 0;
    // Pipe, Fifo: 1 if a process outside the dumped tree held it too (the other end of a
    // `| tee`, a supervisor's pipe). Its bytes are not stored: they belong to the pipe,
    // which lives on outside. At restore a pipe is given for it (--inherit-fd,
    // --inherit-stdio); a FIFO is reopened by its path, which finds the same pipe again
    // while an outside process holds it.
    uint32_t external = 0;

    template <typename V> void visit(V& v) {
        v("pid", pid);
        v("fd", fd);
        v("dup_of", dup_of);
        v("kind", kind);
        v("open_flags", open_flags);
        v("fd_flags", fd_flags);
        v("pos", pos);
        v("path", path);
        v("mode", mode);
        v("dev", dev);
        v("ino", ino);
        v("rdev", rdev);
        v("size", size);
        v("data_offset", data_offset);
        v("checksum", checksum);
        v("file", file);
        v("extents", extents);
        v("file_id", file_id);
        v("pipe_size", pipe_size);
        v("external", external);
    }
};

// ---- event descriptors: one record per open file description (Fd::file_id) ---------------
// src/files/{eventfd,signalfd,timerfd,epoll}.h hold the dump and restore halves of each.

struct EventFd {
    static constexpr RecordType kType = RecordType::EventFd;
    uint32_t file_id = 0;
    uint64_t count = 0;      // the counter
    uint32_t semaphore = 0;  // EFD_SEMAPHORE
    template <typename V> void visit(V& v) {
        v("file_id", file_id);
        v("count", count);
        v("semaphore", semaphore);
    }
};

struct SignalFd {
    static constexpr RecordType kType = RecordType::SignalFd;
    uint32_t file_id = 0;
    uint64_t mask = 0;  // the signals it reads: bit n-1 = signal n
    template <typename V> void visit(V& v) {
        v("file_id", file_id);
        v("mask", mask);
    }
};

struct TimerFd {
    static constexpr RecordType kType = RecordType::TimerFd;
    uint32_t file_id = 0;
    int32_t clockid = 0;
    uint32_t settime_flags = 0;  // TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET
    uint64_t ticks = 0;          // expirations not yet read
    // Time left until the next expiration (0, 0 when disarmed, or when it expired and
    // nobody has read it since: the kernel re-arms a periodic timer at that read).
    int64_t value_sec = 0, value_nsec = 0;
    int64_t interval_sec = 0, interval_nsec = 0;
    // CLOCK_REALTIME when the time left was read: an absolute timer of a wall clock fires
    // at the wall time it was set for, however long the image waited.
    int64_t read_realtime_ns = 0;
    template <typename V> void visit(V& v) {
        v("file_id", file_id);
        v("clockid", clockid);
        v("settime_flags", settime_flags);
        v("ticks", ticks);
        v("value_sec", value_sec);
        v("value_nsec", value_nsec);
        v("interval_sec", interval_sec);
        v("interval_nsec", interval_nsec);
        v("read_realtime_ns", read_realtime_ns);
    }
};

// One target registered in an epoll: the kernel keys it by (file, fd number at
// registration), so both are kept. Registered again at restore by process `pid`, which
// holds the epoll and the target's description (under `tfd` or, if that number has been
// closed or reused since, under another number: restore puts it at `tfd` for the moment
// of registering).
struct EpollTarget {
    static constexpr RecordType kType = RecordType::EpollTarget;
    uint32_t file_id = 0;         // the epoll's open file description
    int32_t pid = 0;              // the process that registers it at restore
    int32_t tfd = 0;              // the fd number it was registered under
    uint32_t target_file_id = 0;  // the description it watches
    uint32_t events = 0;          // EPOLL* mask as the kernel holds it (a fired EPOLLONESHOT keeps only its flag bits)
    uint64_t data = 0;
    template <typename V> void visit(V& v) {
        v("file_id", file_id);
        v("pid", pid);
        v("tfd", tfd);
        v("target_file_id", target_file_id);
        v("events", events);
        v("data", data);
    }
};

// One watch of an inotify instance, added again under the same watch descriptor number.
// Events queued and not yet read at dump time are not kept.
struct InotifyWatch {
    static constexpr RecordType kType = RecordType::InotifyWatch;
    uint32_t file_id = 0;  // the inotify's open file description
    int32_t wd = 0;
    uint32_t mask = 0;     // IN_* events and flags (IN_ONESHOT, IN_EXCL_UNLINK, ...)
    std::string path;      // recovered at dump from the file handle the kernel keeps
    uint64_t dev = 0, ino = 0;  // of the watched inode, checked at restore
    template <typename V> void visit(V& v) {
        v("file_id", file_id);
        v("wd", wd);
        v("mask", mask);
        v("path", path);
        v("dev", dev);
        v("ino", ino);
    }
};

// A memfd (memfd_create): one memory object, held by Fd records of kind Memfd and mapped
// by Vma records of kind Memfd with the same (dev, ino), in any process of the tree. Its
// content is stored once; holes and pages of zeros are not stored. src/files/memfd.h.
struct Memfd {
    static constexpr RecordType kType = RecordType::Memfd;
    uint64_t dev = 0, ino = 0;  // at dump: what identifies it in Fd (dev, ino) and Vma (file.dev, file.ino)
    std::string name;           // as given to memfd_create ("/memfd:NAME (deleted)" in /proc)
    uint64_t size = 0;
    uint32_t mode = 0;          // permission bits (memfd_create gives 0777, or 0666 without exec)
    uint32_t seals = 0;         // F_GET_SEALS (F_SEAL_SEAL alone: made without MFD_ALLOW_SEALING)
    uint64_t data_offset = 0;
    uint64_t checksum = 0;
    std::vector<FileExtent> extents;
    template <typename V> void visit(V& v) {
        v("dev", dev);
        v("ino", ino);
        v("name", name);
        v("size", size);
        v("mode", mode);
        v("seals", seals);
        v("data_offset", data_offset);
        v("checksum", checksum);
        v("extents", extents);
    }
};

// A System V shared memory segment attached by processes of the tree (VMAs of kind SysvShm
// with `ino` = id), made again with the same id and key. src/ipc/sysv_shm.h.
struct SysvShm {
    static constexpr RecordType kType = RecordType::SysvShm;
    int32_t id = 0;
    int32_t key = 0;          // IPC_PRIVATE (0) also for a segment removed while attached
    uint64_t size = 0;
    uint32_t mode = 0;        // permission bits
    uint32_t destroyed = 0;   // IPC_RMID done, still attached: removed again once the tree is back
    uint32_t locked = 0;      // SHM_LOCK
    uint32_t uid = 0, gid = 0;  // owner (the creator's ids, cuid and cgid, become ckpt's)
    uint64_t data_offset = 0;
    uint64_t checksum = 0;
    std::vector<FileExtent> extents;  // pages of zeros are holes
    template <typename V> void visit(V& v) {
        v("id", id);
        v("key", key);
        v("size", size);
        v("mode", mode);
        v("destroyed", destroyed);
        v("locked", locked);
        v("uid", uid);
        v("gid", gid);
        v("data_offset", data_offset);
        v("checksum", checksum);
        v("extents", extents);
    }
};

// An AF_UNIX socket (one open file description): src/files/unix_socket.h.
struct UnixSocket {
    static constexpr RecordType kType = RecordType::UnixSocket;
    uint32_t file_id = 0;
    uint64_t ino = 0;       // the socket's inode at dump: what `peer_ino` of its peer names
    uint32_t type = 0;      // SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
    uint32_t state = 0;     // TCP_ESTABLISHED 1 (connected), TCP_CLOSE 7, TCP_LISTEN 10
    uint64_t peer_ino = 0;  // connected: the peer's inode (a socket of the image), 0 if it closed
    std::string name;       // bound address: a path, or "\0..." for an abstract name; "" if unbound
    uint32_t shutdown = 0;  // RCV_SHUTDOWN 1 | SEND_SHUTDOWN 2, as the kernel holds them
    uint32_t backlog = 0;   // listening: listen()'s backlog
    int32_t rcvbuf = 0, sndbuf = 0;  // as getsockopt reports them (twice what was set)
    uint32_t passcred = 0, passsec = 0;
    int32_t peek_off = -1;  // SO_PEEK_OFF (-1: off)
    int64_t rcvtimeo_us = 0, sndtimeo_us = 0;
    // Bound to a path: the socket file's mode and owner (mode 0: the file was gone at dump),
    // and for a relative path the directory it is relative to (the process's cwd at dump).
    uint32_t path_mode = 0, path_uid = 0, path_gid = 0;
    std::string bind_dir;
    // What it has received and not read yet: a stream's bytes as one element, a datagram or
    // seqpacket socket's messages one by one. Sent again by its peer at restore.
    std::vector<std::string> queue;
    template <typename V> void visit(V& v) {
        v("file_id", file_id);
        v("ino", ino);
        v("type", type);
        v("state", state);
        v("peer_ino", peer_ino);
        v("name", name);
        v("shutdown", shutdown);
        v("backlog", backlog);
        v("rcvbuf", rcvbuf);
        v("sndbuf", sndbuf);
        v("passcred", passcred);
        v("passsec", passsec);
        v("peek_off", peek_off);
        v("rcvtimeo_us", rcvtimeo_us);
        v("sndtimeo_us", sndtimeo_us);
        v("path_mode", path_mode);
        v("path_uid", path_uid);
        v("path_gid", path_gid);
        v("bind_dir", bind_dir);
        v("queue", queue);
    }
};

// A TCP or UDP socket: TCP listening, never connected, or connected to another socket of
// the tree (both ends inside); UDP bound or connected, nothing queued. src/files/inet_socket.h.
struct SockOpt {
    int32_t level = 0, name = 0;
    std::string value;  // as getsockopt gave it
    template <typename V> void visit(V& v) {
        v("level", level);
        v("name", name);
        v("value", value);
    }
};

struct InetSocket {
    static constexpr RecordType kType = RecordType::InetSocket;
    uint32_t file_id = 0;
    int32_t family = 0, type = 0, protocol = 0;  // AF_INET/AF_INET6, SOCK_STREAM/SOCK_DGRAM, IPPROTO_*
    uint32_t state = 0;      // TCP: TCP_ESTABLISHED 1, TCP_LISTEN 10 or TCP_CLOSE 7; UDP: 1 connected, 7 not
    std::string local;       // struct sockaddr_in/_in6 from getsockname (empty: unbound)
    std::string peer;        // connected: getpeername
    std::vector<std::string> queue;  // TCP connected: the bytes received and not read yet (one element)
    uint32_t backlog = 0;    // TCP listening
    std::vector<SockOpt> options;  // set again before bind
    template <typename V> void visit(V& v) {
        v("file_id", file_id);
        v("family", family);
        v("type", type);
        v("protocol", protocol);
        v("state", state);
        v("local", local);
        v("peer", peer);
        v("backlog", backlog);
        v("options", options);
        v("queue", queue);
    }
};

// A pseudo-terminal pair whose master is held in the tree (script, tmux, expect, sshd): made
// again with the same index N, so that /dev/pts/N names its slave again. src/files/pty.h.
struct Pty {
    static constexpr RecordType kType = RecordType::Pty;
    uint32_t file_id = 0;   // the master's open file description
    uint32_t index = 0;     // N of /dev/pts/N
    std::string termios;    // the slave side's struct termios2 (TCGETS2), as the kernel holds it
    std::string winsize;    // struct winsize
    uint32_t packet = 0;    // TIOCPKT mode of the master
    uint32_t locked = 0;    // TIOCGPTLCK: the slave was never unlocked (unlockpt)
    // The master saw a hang-up (POLLHUP): every slave descriptor was closed after one had
    // been opened, so the master's reads end with EIO once `output` is read.
    uint32_t slave_closed = 0;
    int32_t sid = 0;        // the session whose controlling terminal it is (0: none)
    int32_t fg_pgrp = 0;    // that session's foreground process group (0: none)
    // What the slave side wrote and the master had not read yet: written again through the
    // slave at restore (output processing off for that moment, it was done once already).
    std::string output;
    template <typename V> void visit(V& v) {
        v("file_id", file_id);
        v("index", index);
        v("termios", termios);
        v("winsize", winsize);
        v("packet", packet);
        v("locked", locked);
        v("slave_closed", slave_closed);
        v("sid", sid);
        v("fg_pgrp", fg_pgrp);
        v("output", output);
    }
};

// ---- file locks: src/files/file_locks.h --------------------------------------------------

enum class FileLockKind : uint32_t {
    Posix = 0,  // fcntl F_SETLK: owned by the process, released by closing any fd of the file
    Flock = 1,  // flock(): owned by the open file description
    Ofd = 2,    // fcntl F_OFD_SETLK: owned by the open file description
};

// A lock held at dump time, taken again before anything of the tree runs.
struct FileLock {
    static constexpr RecordType kType = RecordType::FileLock;
    FileLockKind kind = FileLockKind::Posix;
    int32_t pid = 0;  // Posix: its owner; Flock, Ofd: the process that takes it again
    int32_t fd = 0;   // an fd of `pid` on the file (Flock, Ofd: on the locked description)
    uint32_t file_id = 0;  // the description of `fd`
    uint32_t write = 0;    // 1: write (exclusive) lock, 0: read (shared)
    uint64_t start = 0;
    uint64_t end = 0;  // last byte locked; ~0 = to the end of the file, however it grows (flock: always)
    // Flock, Ofd held through no descriptor but a mapping (the fd was closed after mmap): the
    // start of that mapping of `pid`; `fd` is then -1 and `file_id` 0.
    uint64_t vma_start = 0;
    template <typename V> void visit(V& v) {
        v("kind", kind);
        v("pid", pid);
        v("fd", fd);
        v("file_id", file_id);
        v("write", write);
        v("start", start);
        v("end", end);
        v("vma_start", vma_start);
    }
};

struct End {
    static constexpr RecordType kType = RecordType::End;
    uint64_t nr_records = 0;  // records before this one, Header included
    uint64_t data_size = 0;   // expected size of data.img

    template <typename V> void visit(V& v) {
        v("nr_records", nr_records);
        v("data_size", data_size);
    }
};

}  // namespace ckpt::image
