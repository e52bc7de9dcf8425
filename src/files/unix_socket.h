// AF_UNIX sockets, both halves.
//
// Dump: the kernel's sock_diag (NETLINK_SOCK_DIAG) tells each socket's type, state, bound
// name, peer and shutdown state; ckpt takes a copy of the target's descriptor
// (pidfd_getfd: the same open file description) to read its options and the data queued
// to it, with MSG_PEEK and SO_PEEK_OFF, so nothing is consumed (the original SO_PEEK_OFF
// is put back). Saved: socketpairs and connected pairs with both ends in the tree (stream,
// datagram, seqpacket; queued data with message boundaries; shutdown state; a peer that
// closed), accepted connections (the accepted end has its listener's name), listening
// sockets without connections waiting to be accepted, unconnected sockets with or without
// a name. Refused with the process and fd: a peer outside the tree, a bound and connected
// datagram socket, connections not accepted yet, datagrams queued on an unconnected socket
// (their senders' names would be lost), file descriptors in flight (SCM_RIGHTS).
//
// Restore: every socket is made once for the tree (the shared pool holds it): listeners
// and unconnected ones first, bound again (a stale socket file left by the dumped process
// is removed; a live one fails the restore), their files given their mode and owner; then
// a pair with socketpair(), or an accepted connection by connecting to the listener's name
// (the restored listener, or one made for the moment) and accepting; its queued data sent
// again by the other end, then its shutdowns. A socket file that was gone at dump time is
// removed again once every connection is made.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/fd.h"
#include "image/format.h"
#include "image/image.h"

namespace ckpt::files {

// One record per unix socket description of `fds` (the tree's records, file_ids assigned).
// `cwd_of` gives a process's working directory (for sockets bound to relative paths);
// `tree` holds every pid of the tree (a socket also held outside it is refused).
std::vector<image::UnixSocket> dump_unix_sockets(const std::vector<image::Fd>& fds,
                                                 const std::map<int32_t, std::string>& cwd_of, const std::set<pid_t>& tree);

// Every unix socket of the image made again, by file_id.
std::map<uint32_t, UniqueFd> make_unix_sockets(const image::Image& img);

}  // namespace ckpt::files
