/* tree_unix_sockets.c - unix sockets between a parent and its child, and listening sockets.
 *
 * Before READY: three socketpairs shared by parent (end 0) and child (end 1):
 *   S, stream: the parent wrote 3000 bytes the child has not read; the child wrote 5000
 *      bytes the parent has not read and shut its sending down; S0 has SO_RCVBUF 65536;
 *   D, datagram: the child sent 3 messages (1, 100 and 1000 bytes); D0 has SO_PASSCRED;
 *   Q, seqpacket: the parent sent 2 messages (2 and 300 bytes); Q0 is non-blocking;
 * X, a stream socketpair of the parent alone whose end X1 wrote 100 bytes and was closed;
 * two listening stream sockets of the parent: "listen.sock" (a path relative to the work
 * directory) and an abstract name "zt-unix-PID"; and an accepted connection: the child
 * connected K3 to listen.sock and sent 7 bytes, the parent accepted it as P3 (which has the
 * listener's name) and sent 9 bytes back, both unread.
 * After SIGTERM: the child reads S1's 3000 bytes, Q1's two messages (boundaries kept),
 * K3's 9 bytes (and answers "k"), connects to both listeners and sends one byte on each, and exits 7. The parent reads S0's
 * 5000 bytes and then end of stream, D0's three messages with their sizes, X0's 100 bytes
 * and end of stream, P3's 7 bytes and the "k", sees P3 named listen.sock, accepts both
 * connections and reads their bytes; S0's buffer size, D0's
 * SO_PASSCRED and Q0's O_NONBLOCK are as set.
 */
#define _GNU_SOURCE
#include "zt_tree.h"

#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

static int s[2], d[2], q[2], x[2], lpath, l_abstract, k3 = -1, p3 = -1;
static char abstract_name[64];

static socklen_t addr_of(struct sockaddr_un *a, const char *name, int abstract)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (abstract) {
		memcpy(a->sun_path + 1, name, strlen(name));
		return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
	}
	strcpy(a->sun_path, name);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name) + 1);
}

static int listener(const char *name, int abstract)
{
	struct sockaddr_un a;
	socklen_t len = addr_of(&a, name, abstract);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, len) != 0 || listen(fd, 7) != 0)
		zt_fail("listener %s: %s", name, strerror(errno));
	return fd;
}

static int connect_to(const char *name, int abstract)
{
	struct sockaddr_un a;
	socklen_t len = addr_of(&a, name, abstract);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, len) != 0)
		return -1;
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
	static uint8_t buf[8192];
	const size_t sizes[3] = { 1, 100, 1000 };
	int c1, c2;

	close(s[0]);
	close(d[0]);
	close(q[0]);
	zt_pat_fill(buf, 5000, 21, 0);
	if (zt_write_all(s[1], buf, 5000) != 0 || shutdown(s[1], SHUT_WR) != 0)
		zt_child_fail(20, "write S1: %s", strerror(errno));
	for (int i = 0; i < 3; i++) {
		zt_pat_fill(buf, sizes[i], 22 + (uint32_t)i, 0);
		if (send(d[1], buf, sizes[i], 0) != (ssize_t)sizes[i])
			zt_child_fail(21, "send D1: %s", strerror(errno));
	}
	k3 = connect_to("listen.sock", 0);
	if (k3 < 0 || zt_write_all(k3, "seven!!", 7) != 0)
		zt_child_fail(27, "K3: %s", strerror(errno));
	if (zt_write_all(ready_w, "r", 1) != 0)
		zt_child_fail(22, "write(ready): %s", strerror(errno));
	close(ready_w);
	zt_wait_stop();
	if (read_exact(k3, buf, 9) != 9 || memcmp(buf, "nine!!!!!", 9) || write(k3, "k", 1) != 1)
		zt_child_fail(28, "K3 did not read the parent's 9 bytes");

	if (read_exact(s[1], buf, 3000) != 3000 || zt_pat_check(buf, 3000, 11, 0) >= 0)
		zt_child_fail(23, "S1 did not read the parent's 3000 bytes");
	if (recv(q[1], buf, sizeof(buf), 0) != 2 || zt_pat_check(buf, 2, 12, 0) >= 0 ||
	    recv(q[1], buf, sizeof(buf), 0) != 300 || zt_pat_check(buf, 300, 13, 0) >= 0)
		zt_child_fail(24, "Q1 did not read the parent's two messages of 2 and 300 bytes");
	c1 = connect_to("listen.sock", 0);
	c2 = connect_to(abstract_name, 1);
	if (c1 < 0 || c2 < 0)
		zt_child_fail(25, "connect to the listeners: %s", strerror(errno));
	if (write(c1, "1", 1) != 1 || write(c2, "2", 1) != 1)
		zt_child_fail(26, "write to the listeners: %s", strerror(errno));
	close(c1);
	close(c2);
	_exit(7);
}

static void expect_accept(int l, char want)
{
	struct pollfd p = { .fd = l, .events = POLLIN };
	char c = 0;
	int a;
	if (poll(&p, 1, 5000) != 1)
		zt_tree_fail("no connection on listener %c within 5 s", want);
	a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (a < 0 || read(a, &c, 1) != 1 || c != want)
		zt_tree_fail("listener %c: accept/read: %s (got '%c')", want, strerror(errno), c);
	close(a);
}

int main(void)
{
	static uint8_t buf[8192];
	int ready[2], one = 1, rcv = 65536, got, passcred;
	socklen_t len = sizeof(got);
	char c;
	pid_t kid;

	snprintf(abstract_name, sizeof(abstract_name), "zt-unix-%d", (int)getpid());
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s) != 0 ||
	    socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, d) != 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, q) != 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, x) != 0 || pipe2(ready, O_CLOEXEC) != 0)
		zt_fail("socketpair: %s", strerror(errno));
	if (setsockopt(s[0], SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv)) != 0 ||
	    setsockopt(d[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) != 0 ||
	    fcntl(q[0], F_SETFL, O_NONBLOCK) != 0)
		zt_fail("options: %s", strerror(errno));
	lpath = listener("listen.sock", 0);
	l_abstract = listener(abstract_name, 1);
	zt_pat_fill(buf, 3000, 11, 0);
	if (zt_write_all(s[0], buf, 3000) != 0)
		zt_fail("write S0: %s", strerror(errno));
	zt_pat_fill(buf, 2, 12, 0);
	zt_pat_fill(buf + 2, 300, 13, 0);
	if (send(q[0], buf, 2, 0) != 2 || send(q[0], buf + 2, 300, 0) != 300)
		zt_fail("send Q0: %s", strerror(errno));
	zt_pat_fill(buf, 100, 14, 0);
	if (zt_write_all(x[1], buf, 100) != 0)
		zt_fail("write X1: %s", strerror(errno));
	close(x[1]);
	if (getsockopt(s[0], SOL_SOCKET, SO_RCVBUF, &rcv, &len) != 0)
		zt_fail("getsockopt: %s", strerror(errno));
	kid = zt_tree_fork();
	if (kid == 0) {
		close(ready[0]);
		child_main(ready[1]);
	}
	close(ready[1]);
	close(s[1]);
	close(d[1]);
	close(q[1]);
	if (zt_read_full(ready[0], &c, 1) != 1)
		zt_tree_fail("the child did not report ready");
	close(ready[0]);
	p3 = accept4(lpath, NULL, NULL, SOCK_CLOEXEC);
	if (p3 < 0 || zt_write_all(p3, "nine!!!!!", 9) != 0)
		zt_tree_fail("P3: %s", strerror(errno));

	zt_ready();
	zt_wait_stop();

	zt_tree_expect_alive_child(kid, "the child");
	if (kill(kid, SIGTERM) != 0)
		zt_tree_fail("kill(child): %s", strerror(errno));
	if (read_exact(s[0], buf, 5000) != 5000 || zt_pat_check(buf, 5000, 21, 0) >= 0)
		zt_tree_fail("S0 did not read the child's 5000 bytes");
	if (read(s[0], buf, 1) != 0)
		zt_tree_fail("S0 does not see the end of the child's stream (it shut its sending down)");
	{
		const size_t sizes[3] = { 1, 100, 1000 };
		for (int i = 0; i < 3; i++) {
			ssize_t n = recv(d[0], buf, sizeof(buf), MSG_DONTWAIT);
			if (n != (ssize_t)sizes[i] || zt_pat_check(buf, sizes[i], 22 + (uint32_t)i, 0) >= 0)
				zt_tree_fail("D0 message %d has %zd bytes, expected %zu of its pattern", i, n, sizes[i]);
		}
	}
	if (read_exact(x[0], buf, 100) != 100 || zt_pat_check(buf, 100, 14, 0) >= 0 || read(x[0], buf, 1) != 0)
		zt_tree_fail("X0 did not read 100 bytes and then the end of its closed peer's stream");
	if (read_exact(p3, buf, 8) != 8 || memcmp(buf, "seven!!k", 8))
		zt_tree_fail("P3 did not read the child's 7 bytes and its k");
	{
		struct sockaddr_un a;
		socklen_t alen = sizeof(a);
		if (getsockname(p3, (struct sockaddr *)&a, &alen) != 0 || strcmp(a.sun_path, "listen.sock"))
			zt_tree_fail("P3 is not named listen.sock after restore");
	}
	expect_accept(lpath, '1');
	expect_accept(l_abstract, '2');
	zt_tree_expect_exit(kid, 7, "the child");
	len = sizeof(got);
	if (getsockopt(s[0], SOL_SOCKET, SO_RCVBUF, &got, &len) != 0 || got != rcv)
		zt_fail("S0's SO_RCVBUF is %d, expected %d", got, rcv);
	len = sizeof(passcred);
	if (getsockopt(d[0], SOL_SOCKET, SO_PASSCRED, &passcred, &len) != 0 || !passcred)
		zt_fail("D0 lost SO_PASSCRED");
	if (!(fcntl(q[0], F_GETFL) & O_NONBLOCK))
		zt_fail("Q0 lost O_NONBLOCK");
	unlink("listen.sock");
	zt_pass();
}
