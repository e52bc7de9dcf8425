#include "files/unix_socket.h"

#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/sockios.h>
#include <linux/unix_diag.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>

#include "common/error.h"
#include "files/outside_fds.h"
#include "files/target_fd.h"

namespace ckpt::files {

namespace {

constexpr uint32_t kEstablished = 1, kClose = 7, kListen = 10;  // the kernel's sk_state values
constexpr int kSoPeekOff = 42;
constexpr uint32_t kSendShutdown = 2, kRcvShutdown = 1;

struct DiagInfo {
    uint32_t type = 0, state = 0;
    uint64_t peer = 0;
    std::string name;
    uint32_t rqueue = 0, wqueue = 0;
    uint32_t shutdown = 0;
};

// Every unix socket of this network namespace, by inode.
std::map<uint64_t, DiagInfo> unix_diag() {
    UniqueFd nl(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
    if (!nl) fail_errno("cannot open a sock_diag netlink socket");
    struct {
        nlmsghdr h;
        unix_diag_req r;
    } req{};
    req.h.nlmsg_len = sizeof req;
    req.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.h.nlmsg_seq = 1;
    req.r.sdiag_family = AF_UNIX;
    req.r.udiag_states = ~0u;
    req.r.udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN;
    if (::send(nl.get(), &req, sizeof req, 0) != static_cast<ssize_t>(sizeof req)) fail_errno("cannot ask sock_diag");
    std::map<uint64_t, DiagInfo> out;
    std::vector<char> buf(1 << 16);
    for (;;) {
        ssize_t n = ::recv(nl.get(), buf.data(), buf.size(), 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_errno("cannot read sock_diag's answer");
        }
        for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, static_cast<unsigned>(n)); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type == NLMSG_DONE) return out;
            if (h->nlmsg_type == NLMSG_ERROR) {
                auto* e = static_cast<nlmsgerr*>(NLMSG_DATA(h));
                errno = -e->error;
                fail_errno("sock_diag refused to list unix sockets");
            }
            auto* m = static_cast<unix_diag_msg*>(NLMSG_DATA(h));
            DiagInfo d;
            d.type = m->udiag_type;
            d.state = m->udiag_state;
            int len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof *m));
            for (auto* a = reinterpret_cast<nlattr*>(m + 1); len >= static_cast<int>(sizeof(nlattr)) &&
                                                            a->nla_len >= sizeof(nlattr) && a->nla_len <= len;
                 len -= NLA_ALIGN(a->nla_len), a = reinterpret_cast<nlattr*>(reinterpret_cast<char*>(a) + NLA_ALIGN(a->nla_len))) {
                const char* data = reinterpret_cast<const char*>(a) + NLA_HDRLEN;
                size_t dlen = a->nla_len - NLA_HDRLEN;
                switch (a->nla_type) {
                    case UNIX_DIAG_NAME: d.name.assign(data, dlen); break;
                    case UNIX_DIAG_PEER: {
                        uint32_t p;
                        std::memcpy(&p, data, sizeof p);
                        d.peer = p;
                        break;
                    }
                    case UNIX_DIAG_RQLEN: {
                        unix_diag_rqlen q;
                        std::memcpy(&q, data, sizeof q);
                        d.rqueue = q.udiag_rqueue;
                        d.wqueue = q.udiag_wqueue;
                        break;
                    }
                    case UNIX_DIAG_SHUTDOWN: d.shutdown = static_cast<uint8_t>(data[0]); break;
                    default: break;
                }
            }
            out[m->udiag_ino] = std::move(d);
        }
    }
}

int get_int(int fd, int level, int opt, const std::string& who, const char* name) {
    int v = 0;
    socklen_t len = sizeof v;
    if (::getsockopt(fd, level, opt, &v, &len) != 0) fail_errno("{}: cannot read {}", who, name);
    return v;
}

void set_int(int fd, int level, int opt, int v, const std::string& who, const char* name) {
    if (::setsockopt(fd, level, opt, &v, sizeof v) != 0) fail_errno("{}: cannot set {} to {}", who, name, v);
}

int64_t get_timeo(int fd, int opt, const std::string& who) {
    timeval tv{};
    socklen_t len = sizeof tv;
    if (::getsockopt(fd, SOL_SOCKET, opt, &tv, &len) != 0) fail_errno("{}: cannot read a timeout", who);
    return static_cast<int64_t>(tv.tv_sec) * 1000000 + tv.tv_usec;
}

// What is queued to the socket, read without taking it (MSG_PEEK from offset 0).
std::vector<std::string> peek_queue(int fd, uint32_t type, const std::string& who) {
    std::vector<std::string> q;
    const int saved = get_int(fd, SOL_SOCKET, kSoPeekOff, who, "SO_PEEK_OFF");
    set_int(fd, SOL_SOCKET, kSoPeekOff, 0, who, "SO_PEEK_OFF");
    struct PutBack {
        int fd, v;
        ~PutBack() { ::setsockopt(fd, SOL_SOCKET, kSoPeekOff, &v, sizeof v); }
    } put_back{fd, saved};
    std::vector<char> buf(1 << 20);
    std::string stream;
    for (;;) {
        alignas(cmsghdr) char control[4096];
        iovec iov{buf.data(), buf.size()};
        msghdr m{};
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        m.msg_control = control;
        m.msg_controllen = sizeof control;
        ssize_t n = ::recvmsg(fd, &m, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (errno == EINTR) continue;
            fail_errno("{}: cannot read what is queued to it", who);
        }
        bool rights = false;
        for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
            rights = true;
            size_t nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < nfds; ++i) {
                int got;
                std::memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
                ::close(got);
            }
        }
        if (rights || (m.msg_flags & MSG_CTRUNC))
            fail("{} has file descriptors in flight (SCM_RIGHTS): not supported yet", who);
        if (static_cast<size_t>(n) > buf.size()) fail("{} has a message of {} bytes queued: too big", who, n);
        if (type == SOCK_STREAM) {
            if (n == 0) break;  // end of stream
            stream.append(buf.data(), static_cast<size_t>(n));
        } else {
            // A zero-length message would not move the peek offset on.
            if (n == 0) fail("{} has an empty datagram queued: not supported yet", who);
            q.emplace_back(buf.data(), static_cast<size_t>(n));
        }
    }
    if (type == SOCK_STREAM && !stream.empty()) q.push_back(std::move(stream));
    return q;
}

std::string describe(const image::UnixSocket& r) {
    std::string name = r.name.empty() ? "unbound" : r.name[0] == '\0' ? "@" + r.name.substr(1) : r.name;
    return fmt::format("unix socket:[{}] ({})", r.ino, name);
}

sockaddr_un address_of(const image::UnixSocket& r, socklen_t& len) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (r.name.size() >= sizeof a.sun_path) fail("{}: name too long", describe(r));
    std::memcpy(a.sun_path, r.name.data(), r.name.size());
    len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + r.name.size() + (r.name[0] == '\0' ? 0 : 1));
    return a;
}

// Binds `fd` to the socket's name; a path a dead socket left behind is taken over. A path
// whose file had been removed at dump time goes into `unlink_later`: connections made
// again through it need it until the end.
void bind_again(int fd, const image::UnixSocket& r, std::vector<std::string>& unlink_later) {
    socklen_t len;
    sockaddr_un a = address_of(r, len);
    UniqueFd cwd;
    if (r.name[0] != '\0' && r.name[0] != '/') {  // relative: to the directory it was bound in
        cwd.reset(::open(".", O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (!cwd || ::chdir(r.bind_dir.c_str()) != 0) fail_errno("{}: cannot go to {} to bind it", describe(r), r.bind_dir);
    }
    struct Back {
        int fd;
        ~Back() {
            if (fd >= 0 && ::fchdir(fd) != 0) std::abort();  // ckpt's own cwd: nothing sane is left without it
        }
    } back{cwd ? cwd.get() : -1};
    if (r.name[0] != '\0') {
        struct stat st;
        if (::lstat(r.name.c_str(), &st) == 0) {
            if (!S_ISSOCK(st.st_mode)) fail("{}: cannot bind again, {} is no socket now", describe(r), r.name);
            UniqueFd probe(::socket(AF_UNIX, static_cast<int>(r.type) | SOCK_CLOEXEC, 0));
            if (probe && ::connect(probe.get(), reinterpret_cast<sockaddr*>(&a), len) == 0)
                fail("{}: another socket is bound to {} now", describe(r), r.name);
            if (errno != ECONNREFUSED) fail_errno("{}: {} is in use by another socket", describe(r), r.name);
            if (::unlink(r.name.c_str()) != 0) fail_errno("{}: cannot remove the stale socket file {}", describe(r), r.name);
        }
    }
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), len) != 0) fail_errno("{}: cannot bind it again", describe(r));
    if (r.name[0] == '\0') return;
    if (r.path_mode == 0) {  // its file had been removed: bound, then removed again at the end
        unlink_later.push_back(r.name[0] == '/' ? r.name : r.bind_dir + "/" + r.name);
        return;
    }
    if (::chown(r.name.c_str(), r.path_uid, r.path_gid) != 0 || ::chmod(r.name.c_str(), r.path_mode & 07777) != 0)
        fail_errno("{}: cannot give {} its owner and mode", describe(r), r.name);
}

UniqueFd new_socket(const image::UnixSocket& r) {
    UniqueFd fd(::socket(AF_UNIX, static_cast<int>(r.type) | SOCK_CLOEXEC, 0));
    if (!fd) fail_errno("cannot make {}", describe(r));
    return fd;
}

// Options that come before data (buffer sizes bound what may be queued) and after it.
void set_buffers(int fd, const image::UnixSocket& r) {
    // getsockopt reports twice what was set; FORCE passes the limits (ckpt is root).
    set_int(fd, SOL_SOCKET, SO_SNDBUFFORCE, r.sndbuf / 2, describe(r), "SO_SNDBUF");
    set_int(fd, SOL_SOCKET, SO_RCVBUFFORCE, r.rcvbuf / 2, describe(r), "SO_RCVBUF");
}

void set_rest(int fd, const image::UnixSocket& r) {
    const std::string who = describe(r);
    if (r.passcred) set_int(fd, SOL_SOCKET, SO_PASSCRED, 1, who, "SO_PASSCRED");
    if (r.passsec) set_int(fd, SOL_SOCKET, SO_PASSSEC, 1, who, "SO_PASSSEC");
    for (auto [opt, us] : {std::pair{SO_RCVTIMEO, r.rcvtimeo_us}, std::pair{SO_SNDTIMEO, r.sndtimeo_us}}) {
        if (!us) continue;
        timeval tv{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
        if (::setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof tv) != 0) fail_errno("{}: cannot set a timeout", who);
    }
    if (r.peek_off >= 0) set_int(fd, SOL_SOCKET, kSoPeekOff, r.peek_off, who, "SO_PEEK_OFF");
}

// Sends what `to` had queued, through `from`, its peer: a datagram or seqpacket message in
// one send (as it came), a stream's bytes in as many as it takes.
void requeue(int from, const image::UnixSocket& to) {
    for (const auto& msg : to.queue) {
        for (size_t done = 0; done < msg.size();) {
            ssize_t n = ::send(from, msg.data() + done, msg.size() - done, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) fail_errno("{}: cannot queue its {} bytes again", describe(to), msg.size());
            done += static_cast<size_t>(n);
        }
    }
}

}  // namespace

std::vector<image::UnixSocket> dump_unix_sockets(const std::vector<image::Fd>& fds,
                                                 const std::map<int32_t, std::string>& cwd_of, const std::set<pid_t>& tree) {
    std::vector<const image::Fd*> descriptions;
    std::set<uint32_t> seen;
    std::set<uint64_t> tree_inos;
    for (const auto& f : fds)
        if (f.kind == image::FdKind::UnixSocket && seen.insert(f.file_id).second) {
            descriptions.push_back(&f);
            tree_inos.insert(f.ino);
        }
    if (descriptions.empty()) return {};
    // A socket also held outside the tree would be two sockets after restore.
    for_each_fd_outside(tree, [&](pid_t pid, std::string_view fd, std::string_view link, const std::string&) {
        if (!link.starts_with("socket:[")) return;
        uint64_t ino = std::strtoull(std::string(link.substr(8)).c_str(), nullptr, 10);
        if (tree_inos.count(ino))
            fail("{} is also held by process {} fd {} outside the dumped tree: not supported yet", link, pid, fd);
    });
    auto diag = unix_diag();
    std::vector<image::UnixSocket> out;
    for (const image::Fd* f : descriptions) {
        const std::string who = fmt::format("process {} fd {} ({})", f->pid, f->fd, f->path);
        auto it = diag.find(f->ino);
        if (it == diag.end()) fail("{}: sock_diag does not know this unix socket", who);
        const DiagInfo& d = it->second;
        image::UnixSocket r;
        r.file_id = f->file_id;
        r.ino = f->ino;
        r.type = d.type;
        r.state = d.state;
        r.peer_ino = d.peer;
        r.shutdown = d.shutdown;
        r.name = d.name;
        if (!r.name.empty() && r.name[0] != '\0' && r.name.back() == '\0') r.name.pop_back();
        if (r.type != SOCK_STREAM && r.type != SOCK_DGRAM && r.type != SOCK_SEQPACKET)
            fail("{}: a unix socket of type {}: not supported", who, r.type);
        if (!r.name.empty() && r.name[0] != '\0') {
            if (r.name[0] != '/') {
                auto cwd = cwd_of.find(f->pid);
                if (cwd == cwd_of.end()) fail("{}: no working directory known for its relative name", who);
                r.bind_dir = cwd->second;
            }
            struct stat st;
            std::string full = r.name[0] == '/' ? r.name : r.bind_dir + "/" + r.name;
            if (::lstat(full.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
                r.path_mode = st.st_mode;
                r.path_uid = st.st_uid;
                r.path_gid = st.st_gid;
            }
        }
        switch (d.state) {
            case kListen:
                if (d.rqueue > 0)
                    fail("{} has {} connection{} not accepted yet: not supported yet", who, d.rqueue, d.rqueue == 1 ? "" : "s");
                r.backlog = d.wqueue;
                break;
            case kEstablished:
                if (d.peer != 0 && !tree_inos.count(d.peer))
                    fail("{} is connected to socket:[{}] outside the dumped tree: not supported yet", who, d.peer);
                // A stream or seqpacket socket with a name and a peer is an accepted connection
                // (its name is its listener's): made again by connecting to that name.
                if (!r.name.empty() && (d.type == SOCK_DGRAM || d.peer == 0))
                    fail("{} is bound to a name and connected ({}): not supported yet", who,
                         d.type == SOCK_DGRAM ? "a datagram socket" : "its peer closed");
                break;
            case kClose:
                if (d.type != SOCK_STREAM && d.rqueue > 0)
                    fail("{} has datagrams queued from senders with their own names: not supported yet", who);
                break;
            default: fail("{}: a unix socket in state {} (connecting?): not supported yet", who, d.state);
        }
        UniqueFd mine = copy_of_target_fd(f->pid, f->fd);
        r.rcvbuf = get_int(mine.get(), SOL_SOCKET, SO_RCVBUF, who, "SO_RCVBUF");
        r.sndbuf = get_int(mine.get(), SOL_SOCKET, SO_SNDBUF, who, "SO_SNDBUF");
        r.passcred = get_int(mine.get(), SOL_SOCKET, SO_PASSCRED, who, "SO_PASSCRED") != 0;
        r.passsec = get_int(mine.get(), SOL_SOCKET, SO_PASSSEC, who, "SO_PASSSEC") != 0;
        r.peek_off = get_int(mine.get(), SOL_SOCKET, kSoPeekOff, who, "SO_PEEK_OFF");
        r.rcvtimeo_us = get_timeo(mine.get(), SO_RCVTIMEO, who);
        r.sndtimeo_us = get_timeo(mine.get(), SO_SNDTIMEO, who);
        if (d.state == kEstablished) r.queue = peek_queue(mine.get(), r.type, who);
        out.push_back(std::move(r));
    }
    return out;
}

namespace {

// An accepted connection (`server` has its listener's name) made again: the client end
// connects to the name, through the image's listener of that name or one made for the
// moment, and the accepted end is the server end. Returns {client, server}.
std::pair<UniqueFd, UniqueFd> connect_by_name(const image::Image& img, const image::UnixSocket& client,
                                              const image::UnixSocket& server, std::map<uint32_t, UniqueFd>& made,
                                              std::vector<std::string>& unlink_later) {
    int lfd = -1;
    UniqueFd temp;
    for (const auto& l : img.unix_sockets)
        if (l.state == kListen && l.type == server.type && l.name == server.name && made.count(l.file_id))
            lfd = made[l.file_id].get();
    if (lfd < 0) {
        temp = new_socket(server);
        bind_again(temp.get(), server, unlink_later);
        if (::listen(temp.get(), 1) != 0) fail_errno("{}: cannot listen on its name to connect it again", describe(server));
        lfd = temp.get();
    }
    UniqueFd c = new_socket(client);
    if (!client.name.empty()) bind_again(c.get(), client, unlink_later);
    socklen_t len;
    sockaddr_un a = address_of(server, len);
    UniqueFd cwd;
    if (server.name[0] != '\0' && server.name[0] != '/') {
        cwd.reset(::open(".", O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (!cwd || ::chdir(server.bind_dir.c_str()) != 0) fail_errno("{}: cannot go to {}", describe(server), server.bind_dir);
    }
    int rc = ::connect(c.get(), reinterpret_cast<sockaddr*>(&a), len);
    int err = errno;
    if (cwd && ::fchdir(cwd.get()) != 0) std::abort();  // ckpt's own cwd: nothing sane is left without it
    errno = err;
    if (rc != 0) fail_errno("{}: cannot connect to {} again", describe(client), describe(server));
    UniqueFd s(::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC));
    if (!s) fail_errno("{}: cannot accept its connection again", describe(server));
    return {std::move(c), std::move(s)};
}

}  // namespace

std::map<uint32_t, UniqueFd> make_unix_sockets(const image::Image& img) {
    std::map<uint64_t, const image::UnixSocket*> by_ino;
    for (const auto& r : img.unix_sockets) by_ino[r.ino] = &r;
    std::map<uint32_t, UniqueFd> out;
    std::vector<std::string> unlink_later;
    // Listeners and unconnected sockets first: accepted connections are made through them.
    for (const auto& r : img.unix_sockets) {
        if (r.state == kEstablished) continue;
        UniqueFd fd = new_socket(r);
        set_buffers(fd.get(), r);
        if (!r.name.empty()) bind_again(fd.get(), r, unlink_later);
        if (r.state == kListen && ::listen(fd.get(), static_cast<int>(r.backlog)) != 0)
            fail_errno("{}: cannot listen again", describe(r));
        set_rest(fd.get(), r);
        out[r.file_id] = std::move(fd);
    }
    for (const auto& r : img.unix_sockets) {
        if (out.count(r.file_id)) continue;
        {
            const image::UnixSocket* peer = nullptr;
            if (r.peer_ino) {
                auto it = by_ino.find(r.peer_ino);
                if (it == by_ino.end()) fail("{}: its peer socket:[{}] is not in the image", describe(r), r.peer_ino);
                peer = it->second;
            }
            UniqueFd mine, other;
            if (peer && (!r.name.empty() || !peer->name.empty())) {
                // One end was accepted from a listener: it has the listener's name.
                bool r_accepted = !r.name.empty() && (peer->name.empty() || r.name == peer->name);
                auto [c, srv] = r_accepted ? connect_by_name(img, *peer, r, out, unlink_later)
                                           : connect_by_name(img, r, *peer, out, unlink_later);
                mine = r_accepted ? std::move(srv) : std::move(c);
                other = r_accepted ? std::move(c) : std::move(srv);
            } else {
                int sv[2];
                if (::socketpair(AF_UNIX, static_cast<int>(r.type) | SOCK_CLOEXEC, 0, sv) != 0)
                    fail_errno("cannot make {} and its peer", describe(r));
                mine.reset(sv[0]);
                other.reset(sv[1]);
            }
            set_buffers(mine.get(), r);
            if (peer) set_buffers(other.get(), *peer);
            requeue(other.get(), r);
            if (peer) requeue(mine.get(), *peer);
            if (!peer) {
                other.reset();  // the peer had closed: this end sees its end of stream
            } else {
                // X's SEND_SHUTDOWN is its peer's RCV_SHUTDOWN: shutting down sending covers both.
                if (r.shutdown & kSendShutdown) ::shutdown(mine.get(), SHUT_WR);
                if (peer->shutdown & kSendShutdown) ::shutdown(other.get(), SHUT_WR);
                if ((r.shutdown & kRcvShutdown) && !(peer->shutdown & kSendShutdown)) ::shutdown(mine.get(), SHUT_RD);
                if ((peer->shutdown & kRcvShutdown) && !(r.shutdown & kSendShutdown)) ::shutdown(other.get(), SHUT_RD);
                set_rest(other.get(), *peer);
                out[peer->file_id] = std::move(other);
            }
            set_rest(mine.get(), r);
            out[r.file_id] = std::move(mine);
        }
    }
    for (const auto& path : unlink_later)
        if (::unlink(path.c_str()) != 0 && errno != ENOENT) fail_errno("cannot remove {} again", path);
    // Status flags (O_NONBLOCK) belong to the description.
    for (const auto& f : img.fds) {
        auto it = out.find(f.file_id);
        if (f.kind != image::FdKind::UnixSocket || f.dup_of >= 0 || it == out.end()) continue;
        if (::fcntl(it->second.get(), F_SETFL, f.open_flags & O_NONBLOCK) != 0)
            fail_errno("cannot set the flags of process {} fd {}", f.pid, f.fd);
    }
    return out;
}

}  // namespace ckpt::files
