// File locks: POSIX record locks (fcntl F_SETLK), OFD locks (F_OFD_SETLK) and flock() locks,
// both halves.
//
// Dump: the "lock:" lines of /proc/PID/fdinfo show, for each descriptor, the POSIX locks its
// process owns on that file and the flock and OFD locks of its open file description. Each
// lock is recorded once (a POSIX lock shows on every fd of its owner on the file; a flock
// on every fd of its description).
//
// Restore: flock and OFD locks belong to the description and are taken by the first process
// holding it, once its fd table is in place. A POSIX lock belongs to the process and is
// dropped by the close of any of its descriptors on the file, so the restorer stub takes it
// last, after it has closed what ckpt opened (restorer_abi.h). Either way before anything of
// the tree runs; a lock that another process took meanwhile fails the restore.
// Refused at dump (tracer/audit.cpp): leases, delegations, mandatory locks, and locks held
// through no descriptor (through a mapping whose fd was closed).
#pragma once

#include <sys/types.h>

#include <set>
#include <utility>
#include <string>
#include <vector>

#include "image/format.h"
#include "image/image.h"

namespace ckpt::files {

// The inodes some lock of the system is on, as /proc/locks names them ("fe:00:1234"); only
// descriptors on those need their fdinfo read for locks.
std::set<std::string> locked_inodes();
std::string lock_inode_name(uint64_t dev, uint64_t ino);

// Every lock held through the descriptors in `fds` (the tree's records, file_ids assigned),
// and flock and OFD locks a process holds through a mapping only (its fd closed after mmap;
// `tree_vmas`: the VMAs of each process).
std::vector<image::FileLock> dump_file_locks(const std::vector<image::Fd>& fds,
                                             const std::vector<std::pair<pid_t, std::vector<image::Vma>*>>& tree_vmas);

// Takes the locks process `pid` holds through the mapping `v` on `fd`, the descriptor the
// mapping is made from (before the restorer maps it and closes the fd).
void take_mapping_locks(const image::Image& img, int pid, const image::Vma& v, int fd);

// Takes the flock and OFD locks of process `pid` again (its fd table in place).
void take_description_locks(const image::Image& img, int pid);

}  // namespace ckpt::files
