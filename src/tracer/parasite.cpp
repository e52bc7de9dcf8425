#include "tracer/parasite.h"

#include <asm/unistd.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>

#include <cstring>

#include "common/blobs.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/log.h"
#include "tracer/fault.h"
#include "tracer/proc_parse.h"
#include "tracer/sigframe.h"

namespace ckpt::tracer {

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }
constexpr int kPipeSize = parasite::kMaxBatchPages * kPage;  // all pipes together
constexpr uint64_t kRedZone = 128;
// A command moves at most one 16 MiB batch: anything near this long means the parasite is
// stuck (a page that never comes in, say), and the dump gives up instead of hanging.
constexpr long kCommandTimeoutMs = 60000;

// Where the leader's frame may go outside the region: below its stack pointer on the main
// stack, past the red zone, exactly where the kernel would put a signal frame. Only the main
// stack is trusted: below the stack pointer of a coroutine or goroutine stack may lie some
// other object's memory.
RemoteAddr stack_frame_spot(pid_t pid, uint64_t rsp, uint64_t frame_size) {
    uint64_t at = (rsp - kRedZone - frame_size) & ~63ull;
    for (const auto& m : proc::parse_maps(read_file(fmt::format("/proc/{}/maps", pid)))) {
        if (m.path == "[stack]" && m.write && m.start <= at && rsp <= m.end && rsp > at)
            return RemoteAddr(at);
    }
    return RemoteAddr();
}

bool sigpipe_pending(pid_t tid) {
    for (const auto& si : peek_pending(tid, false)) {
        int signo;
        std::memcpy(&signo, si.data(), sizeof signo);
        if (signo == SIGPIPE) return true;
    }
    return false;
}

}  // namespace

Parasite::Parasite(RemoteSyscalls& leader, const Gadgets& gadgets, uint64_t page_bytes)
    : leader_(leader), gadgets_(gadgets) {
    const pid_t pid = leader.pid();
    auto blob = parasite_blob();
    static const unsigned char kSigreturn[] = {0xb8, 0x0f, 0, 0, 0, 0x0f, 0x05};
    if (blob.size() < parasite::kSigreturnOffset + sizeof kSigreturn ||
        std::memcmp(blob.data() + parasite::kSigreturnOffset, kSigreturn, sizeof kSigreturn) != 0)
        fail("internal error: the parasite blob has no rt_sigreturn at its fixed offset");
    const uint64_t frame_size = sigframe_size(leader.saved().xstate.size());
    if (frame_size > parasite::kFrameSlot / 2) fail("xsave area too large ({} bytes)", frame_size);
    args_off_ = round_up(blob.size(), kPage);
    // [blob][args][leader frame slot][thread frame slot][leader stack][thread stack]; each
    // frame sits mid-slot so that a signal frame the kernel might push below it still fits.
    const uint64_t slots = round_up(args_off_ + sizeof(parasite::ParasiteArgs), kPage);
    leader_frame_off_ = slots + parasite::kFrameSlot / 2;
    thread_frame_off_ = slots + parasite::kFrameSlot + parasite::kFrameSlot / 2;
    leader_stack_top_ = slots + 2 * parasite::kFrameSlot + parasite::kStackSize;
    thread_stack_top_ = leader_stack_top_ + parasite::kStackSize;
    size_ = thread_stack_top_;

    // Until the region exists, the leader's way home is a frame on its own stack.
    if (gadgets.safe()) {
        stack_frame_ = stack_frame_spot(pid, leader.saved().regs.rsp, frame_size);
        if (!stack_frame_.null()) leader.place_frame(stack_frame_, gadgets.sigreturn);
    }
    kill_safe_ = !stack_frame_.null();
    if (!kill_safe_)
        log::info("process {}: no room or instructions for a way home outside the parasite; a "
                  "SIGKILL of ckpt while it loads or unloads the parasite would harm the target", pid);

    try {
        leader.on_next_syscall_entry([] { fault::point("bootstrap"); });
        long addr = leader.checked("mmap", __NR_mmap, 0, size_, PROT_READ | PROT_WRITE | PROT_EXEC,
                                   MAP_SHARED | MAP_ANONYMOUS, static_cast<uint64_t>(-1), 0);
        base_ = RemoteAddr(static_cast<uint64_t>(addr));
        std::string path = fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, base_.addr(), base_.addr() + size_);
        UniqueFd local(::open(path.c_str(), O_RDWR | O_CLOEXEC));
        if (!local) fail_errno("cannot open the parasite region {}", path);
        local_ = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, local.get(), 0);
        if (local_ == MAP_FAILED) {
            local_ = nullptr;
            fail_errno("cannot map the parasite region locally");
        }
        std::memcpy(local_, blob.data(), blob.size());
        args_ = reinterpret_cast<parasite::ParasiteArgs*>(static_cast<char*>(local_) + args_off_);
        const uint64_t exit_leader = at(args_off_ + offsetof(parasite::ParasiteArgs, exit_leader)).addr();
        std::memcpy(static_cast<char*>(local_) + parasite::kLeaderExitPtrOffset, &exit_leader, 8);
        auto& ex = args_->exit_leader;
        ex.frame = at(leader_frame_off_).addr();
        // A SIGPIPE the parasite's EPIPE queues goes to the thread's own queue, where it merges
        // with one already there: only remove it if there was none.
        ex.sigpipe_was_pending = sigpipe_pending(leader.tid());
        if (kill_safe_) {
            ex.unmap_frame = stack_frame_.addr();
            ex.unmap_base = base_.addr();
            ex.unmap_len = size_;
            ex.g_sys = gadgets.syscall_ret.addr();
        }
        args_->exit_thread.frame = at(thread_frame_off_).addr();
        // From here on the leader's way home lives in the region, and passes through the
        // blob's cleanup.
        leader.place_frame(at(leader_frame_off_), at(parasite::kLeaderHomeOffset));
        kill_safe_ = kill_safe_ && leader.protected_mode();

        leader.on_next_syscall_entry([] { fault::point("remote-syscall"); });
        setup_pipes(page_bytes);
    } catch (...) {
        cleanup();
        throw;
    }
    log::debug("parasite at {:#x} ({} bytes) in process {}{}", base_.addr(), size_, pid,
               kill_safe_ ? "" : " (not kill-safe)");
}

void Parasite::setup_pipes(uint64_t page_bytes) {
    // The target makes each pipe (so we never need to push a descriptor into it); we open its
    // read end through /proc, which a root tracer may always do, and the target closes its
    // own: if ckpt dies, the parasite's vmsplice then fails instead of blocking forever.
    // A pipe larger than /proc/sys/fs/pipe-max-size needs CAP_SYS_RESOURCE, so we use several.
    auto* fds = reinterpret_cast<int*>(&args_->pages.nonzero_bitmap[0]);
    uint64_t remote_fds = at(args_off_ + offsetof(parasite::ParasiteArgs, pages.nonzero_bitmap)).addr();
    int want = std::min(std::stoi(read_file("/proc/sys/fs/pipe-max-size")), kPipeSize);
    uint64_t total = 0;
    auto& ex = args_->exit_leader;
    const uint64_t wanted = std::min<uint64_t>(page_bytes, kPipeSize);
    while (pipes_.size() < parasite::kMaxPipes && total < wanted) {
        // A pipe2 in flight when ckpt dies still completes: the emergency cleanup finds its
        // descriptors where the kernel writes them.
        fds[0] = fds[1] = -1;
        ex.pending_pipe = remote_fds;
        leader_.checked("pipe2", __NR_pipe2, remote_fds, O_CLOEXEC);
        PagePipe p;
        int rd = fds[0];
        p.remote_write = fds[1];
        ex.fds[ex.nr_fds] = fds[1];
        ex.fds[ex.nr_fds + 1] = rd;
        ex.pending_pipe = 0;  // before the count grows: never listed twice
        ex.nr_fds += 2;
        p.read.reset(::open(fmt::format("/proc/{}/fd/{}", leader_.pid(), rd).c_str(),
                            O_RDONLY | O_CLOEXEC));
        int saved_errno = errno;
        // Unlisted before the close: if ckpt dies around it, the other threads run on at
        // once and may reuse the number, which the cleanup then must not close.
        --ex.nr_fds;
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
            if (p.remote_write < 0) continue;
            if (args_) {  // a call in flight when ckpt dies still completes: unlist it first
                auto& ex = args_->exit_leader;
                for (uint32_t i = 0; i < ex.nr_fds; ++i)
                    if (ex.fds[i] == p.remote_write) ex.fds[i] = -1;
            }
            leader_.syscall(__NR_close, static_cast<uint64_t>(p.remote_write));
            p.remote_write = -1;
        }
        if (!base_.null() && region_in_use_) {
            log::error("process {}: a thread may still be in the parasite region; leaving it mapped", leader_.pid());
        } else if (!base_.null()) {
            // The frame in the region goes with it: the call's way home is the stack frame.
            if (!stack_frame_.null())
                leader_.on_next_syscall_entry([] { fault::kill_point("unmap"); });
            long r = stack_frame_.null()
                         ? leader_.syscall(__NR_munmap, base_.addr(), size_)
                         : leader_.syscall_via(stack_frame_, __NR_munmap, base_.addr(), size_);
            if (r != 0) log::error("could not unmap the parasite from process {}", leader_.pid());
            base_ = RemoteAddr();
        }
    } catch (const std::exception& e) {
        log::error("could not remove the parasite from process {}: {}", leader_.pid(), e.what());
    }
    pipes_.clear();
    if (local_) {
        ::munmap(local_, size_);
        local_ = nullptr;
        args_ = nullptr;
    }
}

long Parasite::run(parasite::Command cmd) {
    args_->abi_version = parasite::kAbiVersion;
    args_->cmd = cmd;
    args_->result = -1;
    if (cmd == parasite::kCmdDumpPages && !pipes_used_) {
        pipes_used_ = true;
        leader_.on_next_run([] { fault::point("parasite-running"); });
    }
    long timeout = kCommandTimeoutMs;
    if (cmd == parasite::kCmdProcessState && fault::fires("parasite-hang")) {
        args_->cmd = parasite::kCmdHang;  // test: the timeout must take the target back
        timeout = 1000;
    }
    leader_.run_code(at(parasite::kEntryOffset), at(leader_stack_top_ - 64), at(args_off_).addr(),
                     at(args_off_ + offsetof(parasite::ParasiteArgs, exit_leader)).addr(),
                     parasite::kDoneSyscall, parasite::kDoneMagic, timeout);
    return args_->result;
}

long Parasite::run_in_thread(pid_t tid, parasite::Command cmd) {
    args_->abi_version = parasite::kAbiVersion;
    args_->cmd = cmd;
    args_->result = -1;
    // While another thread runs in the region, a leader going home on its own must not
    // unmap it under that thread.
    // If the thread cannot be given its state back, it may still run in the region: then the
    // region is never unmapped, by the leader's way home or by cleanup().
    auto& ex = args_->exit_leader;
    struct Restore {
        Parasite& p;
        uint64_t value;
        bool restored = false;
        ~Restore() {
            if (restored && p.args_) p.args_->exit_leader.unmap_frame = value;
            if (!restored) p.region_in_use_ = true;
        }
    } keep{*this, ex.unmap_frame};
    ex.unmap_frame = 0;
    RemoteSyscalls thread(leader_.pid(), tid, gadgets_);
    thread.report_restored_to(&keep.restored);
    thread.place_frame(at(thread_frame_off_), at(parasite::kSigreturnOffset));
    thread.on_next_run([] { fault::point("thread-command"); });
    thread.run_code(at(parasite::kEntryOffset), at(thread_stack_top_ - 64), at(args_off_).addr(),
                    at(args_off_ + offsetof(parasite::ParasiteArgs, exit_thread)).addr(),
                    parasite::kDoneSyscall, parasite::kDoneMagic, kCommandTimeoutMs);
    return args_->result;
}

}  // namespace ckpt::tracer
