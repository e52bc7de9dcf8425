/* inet_sockets.c - TCP and UDP sockets that are not connected keep their addresses and options.
 *
 * Before READY: L4, a TCP listener on 127.0.0.1 (a port the kernel picked) with SO_REUSEADDR
 * and TCP_DEFER_ACCEPT, backlog 5; L6, a TCP listener on [::1] with IPV6_V6ONLY,
 * non-blocking; U, a UDP socket bound to 127.0.0.1 with SO_RCVBUF 65536; C, a UDP socket
 * connected to U; T, a TCP socket never connected, with TCP_NODELAY and SO_KEEPALIVE.
 * Their addresses are read just before READY.
 * After SIGTERM: every socket has the same address (getsockname) and options; a new client
 * connects to L4 and to L6 (by their old ports), and the accepted connections carry a byte;
 * C sends a datagram that arrives at U from C's address.
 */
#define _GNU_SOURCE
#include "zt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int opt(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);
	if (getsockopt(fd, level, name, &v, &len) != 0)
		zt_fail("getsockopt(%d, %d): %s", level, name, strerror(errno));
	return v;
}

static void set(int fd, int level, int name, int v)
{
	if (setsockopt(fd, level, name, &v, sizeof(v)) != 0)
		zt_fail("setsockopt(%d, %d): %s", level, name, strerror(errno));
}

static socklen_t name_of(int fd, struct sockaddr_storage *ss)
{
	socklen_t len = sizeof(*ss);
	memset(ss, 0, sizeof(*ss));
	if (getsockname(fd, (struct sockaddr *)ss, &len) != 0)
		zt_fail("getsockname: %s", strerror(errno));
	return len;
}

static void connect_and_accept(int l, int family, const struct sockaddr_storage *addr, socklen_t len, char byte)
{
	struct pollfd p = { .fd = l, .events = POLLIN };
	int c = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), a;
	char got = 0;
	if (c < 0 || connect(c, (const struct sockaddr *)addr, len) != 0)
		zt_fail("connect to the listener (family %d): %s", family, strerror(errno));
	if (write(c, &byte, 1) != 1)
		zt_fail("write: %s", strerror(errno));
	if (poll(&p, 1, 5000) != 1)
		zt_fail("the listener (family %d) has no connection within 5 s", family);
	a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (a < 0 || read(a, &got, 1) != 1 || got != byte)
		zt_fail("accept/read on the listener (family %d): %s", family, strerror(errno));
	close(a);
	close(c);
}

int main(void)
{
	struct sockaddr_in lo4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in6 lo6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct sockaddr_storage a_l4, a_l6, a_u, a_c, a_t, now;
	socklen_t n_l4, n_l6, n_u, n_c;
	int l4 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int l6 = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int c = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int rcv;

	if (l4 < 0 || l6 < 0 || u < 0 || c < 0 || t < 0)
		zt_fail("socket: %s", strerror(errno));
	set(l4, SOL_SOCKET, SO_REUSEADDR, 1);
	set(l4, IPPROTO_TCP, TCP_DEFER_ACCEPT, 3);
	if (bind(l4, (struct sockaddr *)&lo4, sizeof(lo4)) != 0 || listen(l4, 5) != 0)
		zt_fail("L4: %s", strerror(errno));
	set(l6, IPPROTO_IPV6, IPV6_V6ONLY, 1);
	if (bind(l6, (struct sockaddr *)&lo6, sizeof(lo6)) != 0 || listen(l6, 9) != 0 || fcntl(l6, F_SETFL, O_NONBLOCK) != 0)
		zt_fail("L6: %s", strerror(errno));
	set(u, SOL_SOCKET, SO_RCVBUF, 65536);
	if (bind(u, (struct sockaddr *)&lo4, sizeof(lo4)) != 0)
		zt_fail("U: %s", strerror(errno));
	n_u = name_of(u, &a_u);
	if (connect(c, (struct sockaddr *)&a_u, n_u) != 0)
		zt_fail("C: %s", strerror(errno));
	set(t, IPPROTO_TCP, TCP_NODELAY, 1);
	set(t, SOL_SOCKET, SO_KEEPALIVE, 1);
	n_l4 = name_of(l4, &a_l4);
	n_l6 = name_of(l6, &a_l6);
	n_c = name_of(c, &a_c);
	name_of(t, &a_t);
	rcv = opt(u, SOL_SOCKET, SO_RCVBUF);

	zt_ready();
	zt_wait_stop();

	if (name_of(l4, &now) != n_l4 || memcmp(&now, &a_l4, n_l4))
		zt_fail("L4's address changed");
	if (name_of(l6, &now) != n_l6 || memcmp(&now, &a_l6, n_l6))
		zt_fail("L6's address changed");
	if (name_of(c, &now) != n_c || memcmp(&now, &a_c, n_c))
		zt_fail("C's address changed");
	if (!opt(l4, SOL_SOCKET, SO_REUSEADDR) || opt(l4, IPPROTO_TCP, TCP_DEFER_ACCEPT) <= 0)
		zt_fail("L4 lost SO_REUSEADDR or TCP_DEFER_ACCEPT");
	if (!opt(l4, SOL_SOCKET, SO_ACCEPTCONN) || !opt(l6, SOL_SOCKET, SO_ACCEPTCONN))
		zt_fail("a listener is not listening");
	if (!opt(l6, IPPROTO_IPV6, IPV6_V6ONLY) || !(fcntl(l6, F_GETFL) & O_NONBLOCK))
		zt_fail("L6 lost IPV6_V6ONLY or O_NONBLOCK");
	if (opt(u, SOL_SOCKET, SO_RCVBUF) != rcv)
		zt_fail("U's SO_RCVBUF is %d, expected %d", opt(u, SOL_SOCKET, SO_RCVBUF), rcv);
	if (!opt(t, IPPROTO_TCP, TCP_NODELAY) || !opt(t, SOL_SOCKET, SO_KEEPALIVE))
		zt_fail("T lost TCP_NODELAY or SO_KEEPALIVE");
	connect_and_accept(l6, AF_INET6, &a_l6, n_l6, '6');
	/* TCP_DEFER_ACCEPT: the connection shows once data arrived, which connect_and_accept sends */
	connect_and_accept(l4, AF_INET, &a_l4, n_l4, '4');
	{
		struct sockaddr_storage from;
		socklen_t flen = sizeof(from);
		struct pollfd p = { .fd = u, .events = POLLIN };
		char b = 0;
		if (send(c, "u", 1, 0) != 1)
			zt_fail("send C: %s", strerror(errno));
		if (poll(&p, 1, 5000) != 1 || recvfrom(u, &b, 1, 0, (struct sockaddr *)&from, &flen) != 1 || b != 'u')
			zt_fail("U did not receive C's datagram");
		if (flen != n_c || memcmp(&from, &a_c, n_c))
			zt_fail("U's datagram did not come from C's address");
	}
	zt_pass();
}
