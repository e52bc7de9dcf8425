/* tree_tcp.c - loopback TCP connections with both ends in the tree, with bytes queued each way.
 *
 * Before READY: the parent listens on 127.0.0.1 (L, SO_REUSEADDR, a kernel-picked port);
 * the child connects (K1) and the parent accepts (P1); the parent sent 3000 bytes on P1
 * that the child has not read, the child sent 2000 bytes on K1 that the parent has not
 * read. A second connection is made inside the parent alone through a listener that is
 * closed right after the accept (C2 to A2; 500 bytes queued to A2), and C2 has TCP_NODELAY.
 * After SIGTERM: the child reads the 3000 bytes on K1, answers "ok" and exits 8; the parent
 * reads the 2000 bytes and "ok" on P1, the 500 bytes on A2, sends a byte C2 -> A2 and back,
 * and L still accepts a new connection. Both ends of each connection keep their addresses.
 */
#define _GNU_SOURCE
#include "zt_tree.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

static struct sockaddr_in l_addr;
static int lsock, k1, p1, c2, a2;

static int tcp_socket(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		zt_fail("socket: %s", strerror(errno));
	return fd;
}

static int make_listener(struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);
	int one = 1, fd = tcp_socket();
	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 || bind(fd, (struct sockaddr *)addr, len) != 0 ||
	    listen(fd, 4) != 0 || getsockname(fd, (struct sockaddr *)addr, &len) != 0)
		zt_fail("listener: %s", strerror(errno));
	return fd;
}

static long read_exact(int fd, uint8_t *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return (long)got;
		got += (size_t)r;
	}
	return (long)got;
}

static void child_main(int ready_w)
{
	static uint8_t buf[4096];
	close(lsock);
	k1 = tcp_socket();
	if (connect(k1, (struct sockaddr *)&l_addr, sizeof(l_addr)) != 0)
		zt_child_fail(20, "connect: %s", strerror(errno));
	zt_pat_fill(buf, 2000, 31, 0);
	if (zt_write_all(k1, buf, 2000) != 0 || zt_write_all(ready_w, "r", 1) != 0)
		zt_child_fail(21, "write: %s", strerror(errno));
	close(ready_w);
	zt_wait_stop();
	if (read_exact(k1, buf, 3000) != 3000 || zt_pat_check(buf, 3000, 32, 0) >= 0)
		zt_child_fail(22, "K1 did not read the parent's 3000 bytes");
	if (write(k1, "ok", 2) != 2)
		zt_child_fail(23, "write ok: %s", strerror(errno));
	_exit(8);
}

int main(void)
{
	static uint8_t buf[4096];
	struct sockaddr_in a2_addr, c2_before, a2_before, now;
	socklen_t len;
	int ready[2], l2, one = 1;
	char c;
	pid_t kid;

	lsock = make_listener(&l_addr);
	if (pipe2(ready, O_CLOEXEC) != 0)
		zt_fail("pipe2: %s", strerror(errno));
	kid = zt_tree_fork();
	if (kid == 0) {
		close(ready[0]);
		child_main(ready[1]);
	}
	close(ready[1]);
	p1 = accept4(lsock, NULL, NULL, SOCK_CLOEXEC);
	if (p1 < 0)
		zt_tree_fail("accept: %s", strerror(errno));
	zt_pat_fill(buf, 3000, 32, 0);
	if (zt_write_all(p1, buf, 3000) != 0)
		zt_tree_fail("write P1: %s", strerror(errno));
	if (zt_read_full(ready[0], &c, 1) != 1)
		zt_tree_fail("the child did not report ready");
	close(ready[0]);
	l2 = make_listener(&a2_addr);
	c2 = tcp_socket();
	if (setsockopt(c2, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
	    connect(c2, (struct sockaddr *)&a2_addr, sizeof(a2_addr)) != 0)
		zt_tree_fail("C2: %s", strerror(errno));
	a2 = accept4(l2, NULL, NULL, SOCK_CLOEXEC);
	if (a2 < 0)
		zt_tree_fail("accept A2: %s", strerror(errno));
	close(l2);
	zt_pat_fill(buf, 500, 33, 0);
	if (zt_write_all(c2, buf, 500) != 0)
		zt_tree_fail("write C2: %s", strerror(errno));
	len = sizeof(c2_before);
	getsockname(c2, (struct sockaddr *)&c2_before, &len);
	len = sizeof(a2_before);
	getsockname(a2, (struct sockaddr *)&a2_before, &len);
	zt_sleep_ms(50);  /* everything sent is acknowledged */

	zt_ready();
	zt_wait_stop();

	zt_tree_expect_alive_child(kid, "the child");
	if (kill(kid, SIGTERM) != 0)
		zt_tree_fail("kill(child): %s", strerror(errno));
	if (read_exact(p1, buf, 2002) != 2002 || zt_pat_check(buf, 2000, 31, 0) >= 0 || memcmp(buf + 2000, "ok", 2))
		zt_tree_fail("P1 did not read the child's 2000 bytes and its ok");
	zt_tree_expect_exit(kid, 8, "the child");
	if (read_exact(a2, buf, 500) != 500 || zt_pat_check(buf, 500, 33, 0) >= 0)
		zt_fail("A2 did not read C2's 500 bytes");
	if (write(c2, "x", 1) != 1 || read(a2, &c, 1) != 1 || c != 'x' || write(a2, "y", 1) != 1 || read(c2, &c, 1) != 1 ||
	    c != 'y')
		zt_fail("C2 and A2 do not talk any more");
	len = sizeof(now);
	if (getsockname(c2, (struct sockaddr *)&now, &len) != 0 || memcmp(&now, &c2_before, sizeof(now)))
		zt_fail("C2's address changed");
	len = sizeof(now);
	if (getsockname(a2, (struct sockaddr *)&now, &len) != 0 || memcmp(&now, &a2_before, sizeof(now)))
		zt_fail("A2's address changed");
	len = sizeof(one);
	if (getsockopt(c2, IPPROTO_TCP, TCP_NODELAY, &one, &len) != 0 || !one)
		zt_fail("C2 lost TCP_NODELAY");
	{
		int n = tcp_socket(), a;
		struct pollfd p = { .fd = lsock, .events = POLLIN };
		if (connect(n, (struct sockaddr *)&l_addr, sizeof(l_addr)) != 0 || poll(&p, 1, 5000) != 1 ||
		    (a = accept4(lsock, NULL, NULL, SOCK_CLOEXEC)) < 0)
			zt_fail("L does not accept a new connection: %s", strerror(errno));
		close(a);
		close(n);
	}
	zt_pass();
}
