// The parasite inside a frozen target. Constructing it maps a memfd region into the target
// (the same memory is mapped here, so arguments and results need no copying) and loads the
// blob; the destructor unmaps it and closes every descriptor it opened in the target, so
// with --leave-running /proc/PID/maps is the same before and after.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "common/fd.h"
#include "common/remote_ptr.h"
#include "parasite/parasite_abi.h"
#include "tracer/remote_syscall.h"

namespace ckpt::tracer {

class Parasite {
  public:
    explicit Parasite(RemoteSyscalls& leader);
    ~Parasite();
    Parasite(const Parasite&) = delete;
    Parasite& operator=(const Parasite&) = delete;

    // Runs one command in the given thread (which must have live RemoteSyscalls).
    parasite::ParasiteArgs& args() { return *args_; }
    long run(RemoteSyscalls& thread, parasite::Command cmd);

    // Pipes whose write ends live in the target (for vmsplice) and read ends here.
    size_t nr_pipes() const { return pipes_.size(); }
    int pipe_read(size_t i) const { return pipes_[i].read.get(); }
    int pipe_remote_write(size_t i) const { return pipes_[i].remote_write; }
    uint64_t pipe_capacity() const { return pipe_capacity_; }  // bytes, each pipe

  private:
    void setup_pipes();
    void cleanup() noexcept;

    RemoteSyscalls& leader_;
    RemoteAddr base_;
    uint64_t size_ = 0;
    void* local_ = nullptr;
    parasite::ParasiteArgs* args_ = nullptr;
    uint64_t args_offset_ = 0;
    struct PagePipe {
        UniqueFd read;
        int remote_write = -1;
    };
    std::vector<PagePipe> pipes_;
    uint64_t pipe_capacity_ = 0;
};

}  // namespace ckpt::tracer
