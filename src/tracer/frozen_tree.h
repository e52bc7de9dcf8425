// Freezing a process tree: the dumped process and all its descendants, every thread of
// each, frozen as one (no process of the tree runs while any of it is dumped). Children
// are found after their parent is frozen (a frozen process forks no more), and the search
// repeats until a round finds nobody new. Exited children not yet waited for (zombies)
// are recorded, not seized. The destructor lets every process go as before.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "tracer/frozen_process.h"

namespace ckpt::tracer {

struct Zombie {
    pid_t pid, ppid, pgid, sid;
    int exit_signal;
    int exit_status;  // wait status
    std::string comm;
};

class FrozenTree {
  public:
    explicit FrozenTree(pid_t root);
    ~FrozenTree();
    FrozenTree(const FrozenTree&) = delete;
    FrozenTree& operator=(const FrozenTree&) = delete;

    pid_t root() const { return root_; }
    // Tree order: the root first, every process after its parent (depth first, children
    // by pid). Zombies are not in it.
    const std::vector<std::unique_ptr<FrozenProcess>>& processes() const { return procs_; }
    const std::vector<Zombie>& zombies() const { return zombies_; }
    bool contains(pid_t pid) const;
    // The pids of the tree (live and zombie) in tree order.
    std::vector<pid_t> pids() const;

    void release();
    void kill_on_release();

  private:
    void add(pid_t pid, pid_t parent);

    pid_t root_;
    std::vector<std::unique_ptr<FrozenProcess>> procs_;
    std::vector<Zombie> zombies_;
    std::vector<std::pair<pid_t, pid_t>> order_;  // (pid, ppid) of live and zombie, tree order
    bool kill_ = false;
    bool released_ = false;
};

}  // namespace ckpt::tracer
