// Pipes and FIFOs (named pipes): both halves of what ckpt does with them, in one place.
//
// Dump: every pipe of the tree is found through the Fd records of kind Pipe. Its capacity
// is read, and the bytes buffered in it are copied with tee(2), which leaves them in the
// pipe (a --leave-running target reads them as if nothing happened), into data.img once
// per pipe. A pipe that a process outside the tree also holds (`prog | tee log`, a
// supervisor's pipe) is recorded as external, without its bytes: they stay in the pipe,
// which the outside keeps alive. A FIFO is the same with a path: reopened by it at restore
// (an external one then finds the pipe the outside still holds).
//
// Restore: each pipe is made again (pipe2, F_SETPIPE_SZ), its bytes written back, and one
// descriptor opened per open file description of either end; the processes of the tree
// take theirs from the shared pool (restore/shared_pool.h). An external pipe is not made:
// the user gives one (--inherit-fd fd[N]:pipe:[INO], --inherit-stdio).
#pragma once

#include <sys/types.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/fd.h"
#include "image/format.h"
#include "image/image.h"
#include "image/writer.h"

namespace ckpt::files {

// Fills in pipe_size of every Pipe record and stores each pipe's buffered bytes with its
// first record. `tree` holds every pid of the dumped tree.
void dump_pipes(std::vector<image::Fd>& fds, const std::set<pid_t>& tree, image::ImageWriter& out);

// The name under which a pipe to outside the tree is given at restore (`pipe:[INO]`, as
// /proc shows it; CRIU's --inherit-fd uses the same).
std::string external_pipe_name(const image::Fd& f);

// One descriptor per open file description (file_id) of every pipe of the image, the pipes
// filled with their saved bytes. `data_fd` is data.img. An external pipe takes the
// descriptor `given` holds under its external_pipe_name; without one, restore fails.
std::map<uint32_t, UniqueFd> make_pipes(const image::Image& img, int data_fd, const std::map<std::string, int>& given);

}  // namespace ckpt::files
