// The parasite inside a frozen target. Constructing it maps a shared region into the target
// with one remote mmap (ckpt maps the same memory through /proc/PID/map_files, so arguments
// and results need no copying) and loads the blob; the destructor unmaps it and closes every
// descriptor it opened in the target, so with --leave-running /proc/PID/maps is the same
// before and after.
//
// If ckpt is killed outright, no destructor runs: the target then cures itself. Every
// thread that ckpt has taken over sits on a path home that ends in rt_sigreturn on a frame
// of its original state (sigframe.h, remote_syscall.h); the leader, when it notices at the
// end of a command that ckpt is gone, also closes the page pipes and unmaps the region.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "common/fd.h"
#include "common/remote_ptr.h"
#include "parasite/parasite_abi.h"
#include "tracer/gadgets.h"
#include "tracer/remote_syscall.h"

namespace ckpt::tracer {

class Parasite {
  public:
    // `leader` must be the process's main thread, frozen and not yet used. The page pipes
    // hold `page_bytes` (what the dump will move), up to one batch: each pipe costs three
    // remote syscalls, which in a tree of small children cost more than their pages did.
    Parasite(RemoteSyscalls& leader, const Gadgets& gadgets, uint64_t page_bytes);
    ~Parasite();
    Parasite(const Parasite&) = delete;
    Parasite& operator=(const Parasite&) = delete;

    parasite::ParasiteArgs& args() { return *args_; }
    // Runs one command in the leader.
    long run(parasite::Command cmd);
    // Runs one command in another thread, which is itself again when this returns.
    long run_in_thread(pid_t tid, parasite::Command cmd);

    // Pipes whose write ends live in the target (for vmsplice) and read ends here.
    size_t nr_pipes() const { return pipes_.size(); }
    int pipe_read(size_t i) const { return pipes_[i].read.get(); }
    int pipe_remote_write(size_t i) const { return pipes_[i].remote_write; }
    uint64_t pipe_capacity() const { return pipe_capacity_; }  // bytes, each pipe

    // Whether a SIGKILL of ckpt at any moment leaves the target unharmed (see above); false
    // when the target lacks the instruction sequences or stack room this needs.
    bool kill_safe() const { return kill_safe_; }

  private:
    void setup_pipes(uint64_t page_bytes);
    void cleanup() noexcept;
    RemoteAddr at(uint64_t offset) const { return base_.byte_offset(offset); }

    RemoteSyscalls& leader_;
    Gadgets gadgets_;
    RemoteAddr stack_frame_;  // the leader's frame below its stack pointer, if there is room
    RemoteAddr base_;
    uint64_t size_ = 0;
    void* local_ = nullptr;
    parasite::ParasiteArgs* args_ = nullptr;
    uint64_t args_off_ = 0, leader_frame_off_ = 0, thread_frame_off_ = 0;
    uint64_t leader_stack_top_ = 0, thread_stack_top_ = 0;
    struct PagePipe {
        UniqueFd read;
        int remote_write = -1;
    };
    std::vector<PagePipe> pipes_;
    uint64_t pipe_capacity_ = 0;
    bool kill_safe_ = false;
    bool pipes_used_ = false;
    bool region_in_use_ = false;  // a thread could not be taken back out of it
};

}  // namespace ckpt::tracer
