// TCP and UDP sockets (IPv4 and IPv6), both halves: listening TCP sockets (address, port,
// backlog), TCP sockets never connected, TCP connections with both ends in the tree (with
// the bytes queued each way), UDP sockets bound or connected, each with the options that
// differ from a new socket's (SO_REUSEADDR, SO_REUSEPORT, IPV6_V6ONLY, TCP_NODELAY,
// TCP_DEFER_ACCEPT, keepalive, buffer sizes, ...), read through a pidfd_getfd copy of the
// descriptor; queued bytes with MSG_PEEK (SO_PEEK_OFF put back).
//
// Refused with process and fd: TCP connections to outside the tree (they need TCP_REPAIR,
// issue 9's next part), connections closing (FIN_WAIT, CLOSE_WAIT...), bytes sent and not
// acknowledged, connections waiting to be accepted, datagrams queued on a UDP socket, a
// socket also held outside the tree. Not saved: multicast group memberships (the kernel
// shows them per interface, not per socket); TCP sequence numbers, window and timestamps
// of a connection inside the tree (it is made again, so they start afresh: nothing in the
// tree can tell).
//
// Restore: made again once for the tree (the shared pool holds them): options, bind,
// listen or connect; a connection inside the tree by connecting its client end (bound to
// its port) to the server end's address, through the restored listener or one made for
// the moment, and accepting it. An address in use fails the restore with one message.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <set>
#include <vector>

#include "common/fd.h"
#include "image/format.h"
#include "image/image.h"

namespace ckpt::files {

std::vector<image::InetSocket> dump_inet_sockets(const std::vector<image::Fd>& fds, const std::set<pid_t>& tree);

std::map<uint32_t, UniqueFd> make_inet_sockets(const image::Image& img);

}  // namespace ckpt::files
