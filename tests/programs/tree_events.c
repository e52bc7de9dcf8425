/* tree_events.c - an epoll and an eventfd shared by a parent and its child.
 *
 * Before READY: the parent makes eventfd E (count 0) and epoll P watching E (data 0xEE), and
 * forks. The child makes eventfd K of its own (count 1) and registers it in the shared P
 * (data 0xCC): only the child holds K.
 * After SIGTERM: the parent sees P report K (0xCC) and not E; it tells the child to finish:
 * the child checks that its P reports K too, adds 5 to E and exits 9 (closing K, which
 * leaves P). The parent then sees P report E and no longer K, and reads 5 from E: both
 * processes hold the same epoll and the same eventfd.
 */
#define _GNU_SOURCE
#include "zt_tree.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

/* Bits of the data values P reports now: 1 for 0xEE, 2 for 0xCC, 4 for anything else. */
static unsigned reported(int ep)
{
	struct epoll_event evs[8];
	unsigned bits = 0;
	int n = epoll_wait(ep, evs, 8, 0);

	for (int i = 0; i < n; i++)
		bits |= evs[i].data.u64 == 0xEE ? 1 : evs[i].data.u64 == 0xCC ? 2 : 4;
	return n < 0 ? 8 : bits;
}

static void child_main(int e, int p, int ready_w)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0xCC };
	uint64_t five = 5;
	int k = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);

	if (k < 0 || epoll_ctl(p, EPOLL_CTL_ADD, k, &ev) != 0)
		zt_child_fail(20, "eventfd/epoll_ctl in the child: %s", strerror(errno));
	if (zt_write_all(ready_w, "r", 1) != 0)
		zt_child_fail(21, "write(ready): %s", strerror(errno));
	close(ready_w);
	zt_wait_stop();
	if (reported(p) != 2)
		zt_child_fail(22, "the child's epoll reports %#x, expected only its own eventfd (0x2)", reported(p));
	if (write(e, &five, sizeof(five)) != sizeof(five))
		zt_child_fail(23, "write E: %s", strerror(errno));
	_exit(9);
}

int main(void)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0xEE };
	int e = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int p = epoll_create1(EPOLL_CLOEXEC);
	int ready[2];
	uint64_t v = 0;
	char c;
	pid_t kid;

	if (e < 0 || p < 0 || pipe2(ready, O_CLOEXEC) != 0)
		zt_fail("setup: %s", strerror(errno));
	if (epoll_ctl(p, EPOLL_CTL_ADD, e, &ev) != 0)
		zt_fail("epoll_ctl E: %s", strerror(errno));
	kid = zt_tree_fork();
	if (kid == 0) {
		close(ready[0]);
		child_main(e, p, ready[1]);
	}
	close(ready[1]);
	if (zt_read_full(ready[0], &c, 1) != 1)
		zt_tree_fail("the child did not report ready");
	close(ready[0]);

	zt_ready();
	zt_wait_stop();

	zt_tree_expect_alive_child(kid, "the child");
	if (reported(p) != 2)
		zt_tree_fail("the epoll reports %#x before the child finishes, expected only the child's eventfd (0x2)",
			     reported(p));
	if (kill(kid, SIGTERM) != 0)
		zt_tree_fail("kill(child): %s", strerror(errno));
	zt_tree_expect_exit(kid, 9, "the child");
	if (reported(p) != 1)
		zt_fail("the epoll reports %#x after the child wrote E and exited, expected only E (0x1)", reported(p));
	if (read(e, &v, sizeof(v)) != sizeof(v))
		zt_fail("read E: %s", strerror(errno));
	if (v != 5)
		zt_fail("E holds %llu, expected the child's 5: not the same eventfd", (unsigned long long)v);
	zt_pass();
}
