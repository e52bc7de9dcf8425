// TCP and UDP sockets (IPv4 and IPv6) that are not connected, both halves: listening TCP
// sockets (address, port, backlog), TCP sockets never connected, UDP sockets bound or
// connected, each with the options that differ from a new socket's (SO_REUSEADDR,
// SO_REUSEPORT, IPV6_V6ONLY, TCP_NODELAY, TCP_DEFER_ACCEPT, keepalive, buffer sizes, ...),
// read through a pidfd_getfd copy of the descriptor.
//
// Refused with process and fd: established TCP connections and the other TCP states
// (TCP_REPAIR is issue 9's next part), connections waiting to be accepted, datagrams
// queued on a UDP socket, a socket also held outside the tree. Not saved: multicast group
// memberships (the kernel shows them per interface, not per socket).
//
// Restore: made again once for the tree (the shared pool holds them): options, bind,
// listen or connect; an address in use fails the restore with one message.
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
