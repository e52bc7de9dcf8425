#include "tracer/parasite.h"

#include <asm/unistd.h>
#include <fcntl.h>
#include <linux/memfd.h>
#include <sys/mman.h>

#include <cstring>

#include "common/blobs.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/log.h"

namespace ckpt::tracer {

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }
constexpr int kPipeSize = parasite::kMaxBatchPages * kPage;  // all pipes together

}  // namespace

Parasite::Parasite(RemoteSyscalls& leader) : leader_(leader) {
    auto blob = parasite_blob();
    args_offset_ = round_up(blob.size(), kPage);
    size_ = round_up(args_offset_ + sizeof(parasite::ParasiteArgs), kPage) + parasite::kStackSize;
    pid_t pid = leader.pid();

    // A scratch page for the memfd name: the only string we need before the region exists.
    long scratch = leader.checked("mmap", __NR_mmap, 0, kPage, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS, static_cast<uint64_t>(-1), 0);
    long memfd = -1;
    try {
        static const char name[] = "ckpt-parasite";
        write_mem(pid, static_cast<uint64_t>(scratch), name, sizeof name);
        memfd = leader.checked("memfd_create", __NR_memfd_create, static_cast<uint64_t>(scratch),
                               MFD_CLOEXEC);
        leader.checked("ftruncate", __NR_ftruncate, static_cast<uint64_t>(memfd), size_);
        UniqueFd local(::open(fmt::format("/proc/{}/fd/{}", pid, memfd).c_str(), O_RDWR | O_CLOEXEC));
        if (!local) fail_errno("cannot open the parasite memfd of process {}", pid);
        local_ = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, local.get(), 0);
        if (local_ == MAP_FAILED) {
            local_ = nullptr;
            fail_errno("cannot map the parasite region locally");
        }
        std::memcpy(local_, blob.data(), blob.size());
        args_ = reinterpret_cast<parasite::ParasiteArgs*>(static_cast<char*>(local_) + args_offset_);
        long addr = leader.checked("mmap", __NR_mmap, 0, size_, PROT_READ | PROT_WRITE | PROT_EXEC,
                                   MAP_SHARED, static_cast<uint64_t>(memfd), 0);
        base_ = RemoteAddr(static_cast<uint64_t>(addr));
        leader.checked("close", __NR_close, static_cast<uint64_t>(memfd));
        memfd = -1;
        leader.checked("munmap", __NR_munmap, static_cast<uint64_t>(scratch), kPage);
        scratch = 0;
        setup_pipes();
    } catch (...) {
        if (memfd >= 0) leader.syscall(__NR_close, static_cast<uint64_t>(memfd));
        if (scratch) leader.syscall(__NR_munmap, static_cast<uint64_t>(scratch), kPage);
        cleanup();
        throw;
    }
    log::debug("parasite at {:#x} ({} bytes) in process {}", base_.addr(), size_, pid);
}

void Parasite::setup_pipes() {
    // The target makes each pipe (so we never need to push a descriptor into it); we open its
    // read end through /proc, which a root tracer may always do. A pipe larger than
    // /proc/sys/fs/pipe-max-size needs CAP_SYS_RESOURCE, so we use several.
    auto* fds = reinterpret_cast<int*>(&args_->pages.nonzero_bitmap[0]);
    uint64_t remote_fds = base_.addr() + args_offset_ +
                          offsetof(parasite::ParasiteArgs, pages.nonzero_bitmap);
    int want = std::min(std::stoi(read_file("/proc/sys/fs/pipe-max-size")), kPipeSize);
    uint64_t total = 0;
    while (pipes_.size() < parasite::kMaxPipes && total < kPipeSize) {
        leader_.checked("pipe2", __NR_pipe2, remote_fds, O_CLOEXEC);
        PagePipe p;
        int rd = fds[0];
        p.remote_write = fds[1];
        p.read.reset(::open(fmt::format("/proc/{}/fd/{}", leader_.pid(), rd).c_str(),
                            O_RDONLY | O_CLOEXEC));
        int saved_errno = errno;
        leader_.checked("close", __NR_close, static_cast<uint64_t>(rd));
        pipes_.push_back(std::move(p));
        if (!pipes_.back().read) {
            errno = saved_errno;
            fail_errno("cannot open the page pipe of process {}", leader_.pid());
        }
        int cap = ::fcntl(pipes_.back().read.get(), F_SETPIPE_SZ, want);
        if (cap < 0) fail_errno("cannot size the page pipe to {} bytes", want);
        pipe_capacity_ = static_cast<uint64_t>(cap);
        total += pipe_capacity_;
    }
}

Parasite::~Parasite() { cleanup(); }

void Parasite::cleanup() noexcept {
    try {
        for (auto& p : pipes_) {
            if (p.remote_write >= 0) leader_.syscall(__NR_close, static_cast<uint64_t>(p.remote_write));
            p.remote_write = -1;
        }
        if (!base_.null()) {
            long r = leader_.syscall(__NR_munmap, base_.addr(), size_);
            if (r != 0) log::error("could not unmap the parasite from process {}", leader_.pid());
            base_ = RemoteAddr();
        }
    } catch (const Error& e) {
        log::error("could not remove the parasite from process {}: {}", leader_.pid(), e.what());
    }
    pipes_.clear();
    if (local_) {
        ::munmap(local_, size_);
        local_ = nullptr;
    }
}

long Parasite::run(RemoteSyscalls& thread, parasite::Command cmd) {
    args_->abi_version = parasite::kAbiVersion;
    args_->cmd = cmd;
    args_->result = -1;
    uint64_t remote_args = base_.addr() + args_offset_;
    RemoteAddr stack_top(base_.addr() + size_ - 64);
    thread.run_code(base_, stack_top, remote_args, parasite::kDoneSyscall, parasite::kDoneMagic);
    return args_->result;
}

}  // namespace ckpt::tracer
