#include "files/inet_socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/error.h"
#include "files/outside_fds.h"
#include "files/target_fd.h"
#include "image/info_fields.h"

namespace ckpt::files {

namespace {

constexpr uint32_t kTcpListen = 10, kTcpClose = 7, kConnected = 1;

struct OptName {
    int level, name;
    const char* text;
};

// What is saved when it differs from a new socket's value. Buffer sizes are set with the
// FORCE variants (ckpt is root), halved: getsockopt reports twice what was set.
constexpr OptName kOptions[] = {
    {SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR"},   {SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT"},
    {SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE"},   {SOL_SOCKET, SO_BROADCAST, "SO_BROADCAST"},
    {SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF"},         {SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF"},
    {SOL_SOCKET, SO_LINGER, "SO_LINGER"},         {SOL_SOCKET, SO_RCVTIMEO, "SO_RCVTIMEO"},
    {SOL_SOCKET, SO_SNDTIMEO, "SO_SNDTIMEO"},     {SOL_SOCKET, SO_PRIORITY, "SO_PRIORITY"},
    {SOL_SOCKET, SO_MARK, "SO_MARK"},             {SOL_SOCKET, SO_OOBINLINE, "SO_OOBINLINE"},
    {SOL_SOCKET, SO_RCVLOWAT, "SO_RCVLOWAT"},     {IPPROTO_IP, IP_TOS, "IP_TOS"},
    {IPPROTO_IP, IP_TTL, "IP_TTL"},               {IPPROTO_IP, IP_FREEBIND, "IP_FREEBIND"},
    {IPPROTO_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY"},   {IPPROTO_IPV6, IPV6_TCLASS, "IPV6_TCLASS"},
    {IPPROTO_IPV6, IPV6_UNICAST_HOPS, "IPV6_UNICAST_HOPS"},
    {IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY"},    {IPPROTO_TCP, TCP_CORK, "TCP_CORK"},
    {IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE"},  {IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL"},
    {IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT"},    {IPPROTO_TCP, TCP_DEFER_ACCEPT, "TCP_DEFER_ACCEPT"},
    {IPPROTO_TCP, TCP_USER_TIMEOUT, "TCP_USER_TIMEOUT"}, {IPPROTO_TCP, TCP_FASTOPEN, "TCP_FASTOPEN"},
    {IPPROTO_TCP, TCP_CONGESTION, "TCP_CONGESTION"},
    {SOL_SOCKET, SO_BINDTODEVICE, "SO_BINDTODEVICE"}, {SOL_SOCKET, SO_TIMESTAMP, "SO_TIMESTAMP"},
    {SOL_SOCKET, SO_TIMESTAMPNS, "SO_TIMESTAMPNS"}, {IPPROTO_IP, IP_PKTINFO, "IP_PKTINFO"},
    {IPPROTO_IP, IP_RECVERR, "IP_RECVERR"},       {IPPROTO_IP, IP_TRANSPARENT, "IP_TRANSPARENT"},
    {IPPROTO_IP, IP_RECVTOS, "IP_RECVTOS"},       {IPPROTO_IPV6, IPV6_RECVPKTINFO, "IPV6_RECVPKTINFO"},
    {IPPROTO_IPV6, IPV6_RECVERR, "IPV6_RECVERR"},
};

bool applies(const OptName& o, int family, int protocol) {
    if (o.level == IPPROTO_IP) return family == AF_INET;
    if (o.level == IPPROTO_IPV6) return family == AF_INET6;
    if (o.level == IPPROTO_TCP) return protocol == IPPROTO_TCP;
    return true;
}

// The raw value of an option, or nullopt-like "" with ok=false if the kernel refuses it.
bool get_raw(int fd, int level, int name, std::string& out) {
    char buf[64] = {};
    socklen_t len = sizeof buf;
    if (::getsockopt(fd, level, name, buf, &len) != 0) return false;
    out.assign(buf, len);
    return true;
}

int get_int(int fd, int level, int name, const std::string& who, const char* what) {
    int v = 0;
    socklen_t len = sizeof v;
    if (::getsockopt(fd, level, name, &v, &len) != 0) fail_errno("{}: cannot read {}", who, what);
    return v;
}

// Bound at all: an address or a port other than the wildcard and 0.
bool is_bound(const std::string& sa) {
    if (sa.size() >= sizeof(sockaddr_in6) && reinterpret_cast<const sockaddr*>(sa.data())->sa_family == AF_INET6) {
        sockaddr_in6 a;
        std::memcpy(&a, sa.data(), sizeof a);
        return a.sin6_port != 0 || !IN6_IS_ADDR_UNSPECIFIED(&a.sin6_addr);
    }
    if (sa.size() < sizeof(sockaddr_in)) return false;
    sockaddr_in a;
    std::memcpy(&a, sa.data(), sizeof a);
    return a.sin_port != 0 || a.sin_addr.s_addr != INADDR_ANY;
}

// An address other than the wildcard (whatever the port).
bool is_bound_address(const std::string& sa) {
    if (sa.size() >= sizeof(sockaddr_in6) && reinterpret_cast<const sockaddr*>(sa.data())->sa_family == AF_INET6) {
        sockaddr_in6 a;
        std::memcpy(&a, sa.data(), sizeof a);
        return !IN6_IS_ADDR_UNSPECIFIED(&a.sin6_addr);
    }
    if (sa.size() < sizeof(sockaddr_in)) return false;
    sockaddr_in a;
    std::memcpy(&a, sa.data(), sizeof a);
    return a.sin_addr.s_addr != INADDR_ANY;
}

std::string describe(const image::InetSocket& r) {
    return fmt::format("{}{} socket {}", r.protocol == IPPROTO_TCP ? "TCP" : "UDP", r.family == AF_INET6 ? "v6" : "",
                       image::fields::sockaddr_text(r.local));
}

std::string sockname(int fd, bool peer) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int r = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) : ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    if (r != 0) return {};
    return std::string(reinterpret_cast<const char*>(&ss), len);
}

// On loopback what was sent is acknowledged at once, even while the tree is frozen; what is
// left unacknowledged (SIOCOUTQ) would be lost, so wait a moment for it, then refuse.
void wait_acknowledged(int fd, const std::string& who) {
    int outq = 0;
    for (int i = 0; i < 100; ++i) {
        if (::ioctl(fd, SIOCOUTQ, &outq) != 0) fail_errno("{}: cannot read its send queue", who);
        if (outq == 0) return;
        ::usleep(2000);
    }
    fail("{} has {} bytes sent and not acknowledged: not supported yet", who, outq);
}

// The bytes received and not read, without taking them (MSG_PEEK from offset 0; the
// socket's own SO_PEEK_OFF is put back).
std::vector<std::string> peek_stream(int fd, const std::string& who) {
    constexpr int kSoPeekOff = 42;
    int saved = -1;
    socklen_t len = sizeof saved;
    if (::getsockopt(fd, SOL_SOCKET, kSoPeekOff, &saved, &len) != 0) fail_errno("{}: cannot read SO_PEEK_OFF", who);
    int zero = 0;
    if (::setsockopt(fd, SOL_SOCKET, kSoPeekOff, &zero, sizeof zero) != 0) fail_errno("{}: cannot set SO_PEEK_OFF", who);
    struct PutBack {
        int fd, v;
        ~PutBack() { ::setsockopt(fd, SOL_SOCKET, kSoPeekOff, &v, sizeof v); }
    } put_back{fd, saved};
    std::string bytes;
    std::vector<char> buf(1 << 20);
    for (;;) {
        ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n < 0) fail_errno("{}: cannot read what is queued to it", who);
        if (n == 0) break;
        bytes.append(buf.data(), static_cast<size_t>(n));
    }
    if (bytes.empty()) return {};
    return {std::move(bytes)};
}

}  // namespace

std::vector<image::InetSocket> dump_inet_sockets(const std::vector<image::Fd>& fds, const std::set<pid_t>& tree) {
    std::vector<const image::Fd*> descriptions;
    std::set<uint32_t> seen;
    std::set<uint64_t> inos;
    for (const auto& f : fds)
        if (f.kind == image::FdKind::InetSocket && seen.insert(f.file_id).second) {
            descriptions.push_back(&f);
            inos.insert(f.ino);
        }
    if (descriptions.empty()) return {};
    for_each_fd_outside(tree, [&](pid_t pid, std::string_view fd, std::string_view link, const std::string&) {
        if (link.starts_with("socket:[") && inos.count(std::strtoull(std::string(link.substr(8)).c_str(), nullptr, 10)))
            fail("{} is also held by process {} fd {} outside the dumped tree: not supported yet", link, pid, fd);
    });
    std::vector<image::InetSocket> out;
    std::vector<std::string> whos;  // "process P fd N (...)" of each record, for messages
    for (const image::Fd* f : descriptions) {
        const std::string who = fmt::format("process {} fd {} ({})", f->pid, f->fd, f->path);
        UniqueFd s = copy_of_target_fd(f->pid, f->fd);
        image::InetSocket r;
        r.file_id = f->file_id;
        r.family = get_int(s.get(), SOL_SOCKET, SO_DOMAIN, who, "SO_DOMAIN");
        r.type = get_int(s.get(), SOL_SOCKET, SO_TYPE, who, "SO_TYPE");
        r.protocol = get_int(s.get(), SOL_SOCKET, SO_PROTOCOL, who, "SO_PROTOCOL");
        if ((r.family != AF_INET && r.family != AF_INET6) || !((r.type == SOCK_STREAM && r.protocol == IPPROTO_TCP) ||
                                                              (r.type == SOCK_DGRAM && r.protocol == IPPROTO_UDP)))
            fail("{}: a socket of family {}, type {}, protocol {}: not supported yet", who, r.family, r.type, r.protocol);
        r.local = sockname(s.get(), false);
        if (r.protocol == IPPROTO_TCP) {
            tcp_info ti{};
            socklen_t len = sizeof ti;
            if (::getsockopt(s.get(), IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) fail_errno("{}: cannot read TCP_INFO", who);
            r.state = ti.tcpi_state;
            if (r.state == kTcpListen) {
                // For a listener the kernel reports its accept queue here, and the backlog.
                if (ti.tcpi_unacked > 0)
                    fail("{} has {} connection{} not accepted yet: not supported yet", who, ti.tcpi_unacked,
                         ti.tcpi_unacked == 1 ? "" : "s");
                r.backlog = ti.tcpi_sacked;
            } else if (r.state == kConnected) {
                // Only between two sockets of the tree (checked below): made again by connecting.
                r.peer = sockname(s.get(), true);
                wait_acknowledged(s.get(), who);
                r.queue = peek_stream(s.get(), who);
            } else if (r.state != kTcpClose) {
                fail("{}: a TCP connection ({} to {}) in state {} (closing): not supported yet", who,
                     image::fields::sockaddr_text(r.local), image::fields::sockaddr_text(sockname(s.get(), true)), r.state);
            }
        } else {
            r.peer = sockname(s.get(), true);
            r.state = r.peer.empty() ? kTcpClose : kConnected;
            int queued = 0;
            if (::ioctl(s.get(), SIOCINQ, &queued) == 0 && queued > 0)
                fail("{} has datagrams queued: not supported yet", who);
        }
        // Options that differ from what a new socket of the kind has.
        UniqueFd fresh(::socket(r.family, r.type | SOCK_CLOEXEC, r.protocol));
        if (!fresh) fail_errno("cannot make a socket to compare the options of {} with", who);
        for (const auto& o : kOptions) {
            if (!applies(o, r.family, r.protocol)) continue;
            std::string mine, def;
            if (!get_raw(s.get(), o.level, o.name, mine)) continue;
            if (get_raw(fresh.get(), o.level, o.name, def) && def == mine) continue;
            r.options.push_back({o.level, o.name, mine});
        }
        out.push_back(std::move(r));
        whos.push_back(who);
    }
    for (size_t i = 0; i < out.size(); ++i) {
        const auto& r = out[i];
        if (r.protocol != IPPROTO_TCP || r.state != kConnected) continue;
        bool inside = std::any_of(out.begin(), out.end(), [&](const image::InetSocket& o) {
            return o.protocol == IPPROTO_TCP && o.state == kConnected && o.local == r.peer && o.peer == r.local;
        });
        if (!inside)
            fail("{}: a TCP connection from {} to {} outside the dumped tree: established connections to the "
                 "outside are not supported yet (they need TCP_REPAIR)",
                 whos[i], image::fields::sockaddr_text(r.local), image::fields::sockaddr_text(r.peer));
    }
    return out;
}

namespace {

void set_options(int fd, const image::InetSocket& r) {
    const std::string who = describe(r);
    for (const auto& o : r.options) {
        int level = o.level, name = o.name;
        std::string value = o.value;
        if (level == SOL_SOCKET && (name == SO_RCVBUF || name == SO_SNDBUF) && value.size() == sizeof(int)) {
            int v;
            std::memcpy(&v, value.data(), sizeof v);
            v /= 2;
            value.assign(reinterpret_cast<const char*>(&v), sizeof v);
            name = name == SO_RCVBUF ? SO_RCVBUFFORCE : SO_SNDBUFFORCE;
        }
        if (level == IPPROTO_TCP && name == TCP_CONGESTION) value = value.c_str();  // up to its NUL
        if (::setsockopt(fd, level, name, value.data(), static_cast<socklen_t>(value.size())) != 0) {
            const char* text = "?";
            for (const auto& k : kOptions)
                if (k.level == o.level && k.name == o.name) text = k.text;
            fail_errno("{}: cannot set {} again", who, text);
        }
    }
}

bool has_option(const image::InetSocket& r, int level, int name) {
    return std::any_of(r.options.begin(), r.options.end(), [&](const image::SockOpt& o) { return o.level == level && o.name == name; });
}

uint16_t port_of(const std::string& sa) {
    uint16_t port = 0;  // sin_port and sin6_port sit at the same offset
    if (sa.size() >= offsetof(sockaddr_in, sin_port) + sizeof port) std::memcpy(&port, sa.data() + offsetof(sockaddr_in, sin_port), sizeof port);
    return port;
}

// A listener of the image that a connection to `addr` was accepted from (same family and
// port; its address the same or the wildcard).
const image::InetSocket* listener_for(const image::Image& img, const std::string& addr) {
    for (const auto& l : img.inet_sockets) {
        if (l.protocol != IPPROTO_TCP || l.state != kTcpListen || l.local.size() != addr.size()) continue;
        if (l.local == addr || (port_of(l.local) == port_of(addr) && !is_bound_address(l.local))) return &l;
    }
    return nullptr;
}

// A TCP connection between two sockets of the image, made again on loopback: the client
// end bound to its port connects to the server end's address (through the image's
// listener if there is one, else a listener made for the moment), and the queued bytes are
// sent again each way.
void connect_pair(const image::Image& img, const image::InetSocket& a, const image::InetSocket& b,
                  std::map<uint32_t, UniqueFd>& out) {
    const image::InetSocket* listener = listener_for(img, b.local);
    const image::InetSocket* client = &a;
    const image::InetSocket* server = &b;
    if (!listener && (listener = listener_for(img, a.local))) std::swap(client, server);
    UniqueFd temp;
    int lfd = -1;
    if (listener) {
        auto it = out.find(listener->file_id);
        if (it == out.end()) fail("{}: its listener is not made yet", describe(*server));
        lfd = it->second.get();
    } else {
        temp.reset(::socket(server->family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP));
        int one = 1;
        if (!temp || ::setsockopt(temp.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
            ::bind(temp.get(), reinterpret_cast<const sockaddr*>(server->local.data()), static_cast<socklen_t>(server->local.size())) != 0 ||
            ::listen(temp.get(), 1) != 0)
            fail_errno("{}: cannot listen on {} to connect it again", describe(*server), image::fields::sockaddr_text(server->local));
        lfd = temp.get();
    }
    UniqueFd c(::socket(client->family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP));
    if (!c) fail_errno("cannot make {}", describe(*client));
    int one = 1;  // its port may still be in TIME_WAIT from the dumped connection
    if (::setsockopt(c.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        ::bind(c.get(), reinterpret_cast<const sockaddr*>(client->local.data()), static_cast<socklen_t>(client->local.size())) != 0)
        fail_errno("{}: cannot bind to {} again", describe(*client), image::fields::sockaddr_text(client->local));
    if (::connect(c.get(), reinterpret_cast<const sockaddr*>(server->local.data()), static_cast<socklen_t>(server->local.size())) != 0)
        fail_errno("{}: cannot connect to {} again", describe(*client), image::fields::sockaddr_text(server->local));
    UniqueFd s(::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC));
    if (!s) fail_errno("{}: cannot accept its connection again", describe(*server));
    if (sockname(s.get(), true) != client->local)
        fail("{}: the listener gave another connection than the one made again", describe(*server));
    if (!has_option(*client, SOL_SOCKET, SO_REUSEADDR)) {
        int zero = 0;
        ::setsockopt(c.get(), SOL_SOCKET, SO_REUSEADDR, &zero, sizeof zero);
    }
    set_options(c.get(), *client);
    set_options(s.get(), *server);
    for (auto [from, to] : {std::pair{s.get(), client}, std::pair{c.get(), server}})
        for (const auto& bytes : to->queue)
            for (size_t done = 0; done < bytes.size();) {
                ssize_t n = ::send(from, bytes.data() + done, bytes.size() - done, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR) continue;
                if (n < 0) fail_errno("{}: cannot queue its {} bytes again", describe(*to), bytes.size());
                done += static_cast<size_t>(n);
            }
    out[client->file_id] = std::move(c);
    out[server->file_id] = std::move(s);
}

}  // namespace

std::map<uint32_t, UniqueFd> make_inet_sockets(const image::Image& img) {
    std::map<uint32_t, UniqueFd> out;
    // Listeners and the other unconnected ones first: connections are made through them.
    for (const auto& r : img.inet_sockets) {
        if (r.protocol == IPPROTO_TCP && r.state == kConnected) continue;
        const std::string who = describe(r);
        UniqueFd s(::socket(r.family, r.type | SOCK_CLOEXEC, r.protocol));
        if (!s) fail_errno("cannot make {}", who);
        set_options(s.get(), r);
        if (is_bound(r.local) &&
            ::bind(s.get(), reinterpret_cast<const sockaddr*>(r.local.data()), static_cast<socklen_t>(r.local.size())) != 0)
            fail_errno("{}: cannot bind to {} again{}", who, image::fields::sockaddr_text(r.local),
                       errno == EADDRINUSE ? " (another socket has it now)" : "");
        if (r.state == kTcpListen && r.protocol == IPPROTO_TCP && ::listen(s.get(), static_cast<int>(r.backlog)) != 0)
            fail_errno("{}: cannot listen again", who);
        if (r.protocol == IPPROTO_UDP && !r.peer.empty() &&
            ::connect(s.get(), reinterpret_cast<const sockaddr*>(r.peer.data()), static_cast<socklen_t>(r.peer.size())) != 0)
            fail_errno("{}: cannot connect to {} again", who, image::fields::sockaddr_text(r.peer));
        out[r.file_id] = std::move(s);
    }
    for (const auto& r : img.inet_sockets) {
        if (r.protocol != IPPROTO_TCP || r.state != kConnected || out.count(r.file_id)) continue;
        auto peer = std::find_if(img.inet_sockets.begin(), img.inet_sockets.end(), [&](const image::InetSocket& o) {
            return o.protocol == IPPROTO_TCP && o.state == kConnected && o.local == r.peer && o.peer == r.local;
        });
        if (peer == img.inet_sockets.end()) fail("{}: the other end of its connection is not in the image", describe(r));
        connect_pair(img, r, *peer, out);
    }
    // Connections accepted from a listener are gone from its queue again.
    for (const auto& f : img.fds) {
        auto it = out.find(f.file_id);
        if (f.kind != image::FdKind::InetSocket || f.dup_of >= 0 || it == out.end()) continue;
        if (::fcntl(it->second.get(), F_SETFL, f.open_flags & O_NONBLOCK) != 0)
            fail_errno("cannot set the flags of process {} fd {}", f.pid, f.fd);
    }
    return out;
}

}  // namespace ckpt::files
