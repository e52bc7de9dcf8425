// Pseudo-terminal pairs opened inside the tree (`script`, tmux, expect): both halves of what
// ckpt does with them, and the controlling terminals they are for sessions of the tree.
//
// Dump: a pair is saved when its master (/dev/ptmx) is held by the tree and by nothing
// outside it; descriptors of its slave /dev/pts/N become PtySlave. ckpt reads the pair's
// state through a copy of the master's description (pidfd_getfd: reopening /dev/ptmx would
// make a new pair): the slave side's termios and window size (the master's ioctls reach
// the slave's), packet mode, lock, session and foreground group. What the slave wrote and
// the master has not read is read and written straight back through the slave (no peek
// exists for terminals), so a --leave-running tree, or one whose dump fails later, finds it
// still there. Refused: a master or slave also held outside the tree, bytes typed into the
// terminal and not read yet (the line discipline cannot give them back as they were), a
// pending packet-mode status byte, a foreground group with no process in the tree.
//
// Restore: each pair is made again by opening /dev/ptmx until the kernel hands out index N
// (it gives the lowest free one; the others opened meanwhile are closed again), its state
// set, its unread output written back. Slaves are then reopened by path. A session leader
// whose controlling terminal it was takes it again (TIOCSCTTY) before creating its
// children, so that they inherit it, and sets the foreground group once they all exist.
#pragma once

#include <sys/types.h>

#include <map>
#include <set>
#include <vector>

#include "common/fd.h"
#include "image/format.h"
#include "image/image.h"

namespace ckpt::files {

// The index N of /dev/pts/N for a pty slave's device number, or -1 for any other device.
int pty_slave_index(uint64_t rdev);

// The indices of the pty pairs whose master some process of `pids` holds.
std::set<int> pty_masters_held(const std::vector<pid_t>& pids);

// Turns the slave descriptors of the tree's pairs into PtySlave and returns one record per
// pair. `procs` are the tree's processes (their sessions, groups and terminals).
std::vector<image::Pty> dump_ptys(std::vector<image::Fd>& fds, const std::vector<const image::Process*>& procs,
                                  const std::set<pid_t>& tree);

// One master descriptor per pair of the image (by its file_id), each pair in its saved state.
std::map<uint32_t, UniqueFd> make_ptys(const image::Image& img);

// The pair a PtySlave descriptor belongs to.
const image::Pty& pty_of_slave(const image::Image& img, const image::Fd& slave);

// A new open file description of a PtySlave, from its pair's master (TIOCGPTPEER, which
// takes the open flags as they were: a slave from openpty() has no O_LARGEFILE, one opened
// by path has).
int open_pty_slave(const image::Fd& slave, int master);

// In a restored process, after its session and group are back and before its children
// are made: a session leader takes its controlling terminal again; a process that had none
// while its parent has one drops the one it inherited.
void restore_controlling_terminal(const image::Image& img, const image::Process& proc, const image::Process* parent);

// In a session leader once all its descendants exist: the terminal's foreground group.
void restore_foreground_group(const image::Image& img, const image::Process& proc);

// The pair of the image a process's controlling terminal (tty_nr) is, or nullptr.
const image::Pty* tree_pty_of(const image::Image& img, uint32_t ctty);

}  // namespace ckpt::files
