/* tree_pipe_full.c - a child blocked in write() on a full pipe at dump time.
 *
 * Before READY: the child fills the pipe with non-blocking writes (FILL bytes, a pattern
 * by stream position), makes its end blocking again, tells the parent FILL on a second
 * pipe, and write()s MORE further bytes in one call, which blocks. The parent waits until
 * the child sleeps in write(2) (/proc/PID/syscall).
 * After SIGTERM the child must still be blocked in write() with the pipe full (FIONREAD =
 * FILL: no byte lost, none of the blocked write got in, same pipe size); the parent drains
 * the pipe and every byte must arrive in order, FILL + MORE of them, then EOF; the child's
 * write() must have returned MORE (exit status 6).
 */
#define _GNU_SOURCE
#include "zt_tree.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

#define MORE 10000
#define CHUNK 4096
#define SEED 7

static void child_main(int wr, int status_w)
{
	static uint8_t buf[MORE];
	long fill = 0;
	ssize_t n;

	if (fcntl(wr, F_SETFL, O_NONBLOCK) != 0)
		zt_child_fail(20, "F_SETFL O_NONBLOCK: %s", strerror(errno));
	for (;;) {
		zt_pat_fill(buf, CHUNK, SEED, (uint64_t)fill);
		n = write(wr, buf, CHUNK);
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0)
			zt_child_fail(21, "filling write: %s", strerror(errno));
		fill += n;
	}
	if (fcntl(wr, F_SETFL, 0) != 0)
		zt_child_fail(22, "F_SETFL 0: %s", strerror(errno));
	if (zt_write_all(status_w, &fill, sizeof(fill)) != 0)
		zt_child_fail(23, "write(status): %s", strerror(errno));
	close(status_w);
	zt_pat_fill(buf, MORE, SEED, (uint64_t)fill);
	n = write(wr, buf, MORE); /* blocks until the parent drains the pipe */
	if (n != MORE)
		zt_child_fail(24, "the blocked write returned %zd (%s), expected %d", n, n < 0 ? strerror(errno) : "short",
			      MORE);
	close(wr);
	_exit(6);
}

int main(void)
{
	static uint8_t buf[8192];
	int p[2], status[2], size, n;
	long fill = 0, total = 0, bad;
	pid_t kid;
	ssize_t r;

	if (pipe2(p, 0) != 0 || pipe2(status, O_CLOEXEC) != 0)
		zt_fail("pipe2: %s", strerror(errno));
	size = fcntl(p[0], F_GETPIPE_SZ);
	kid = zt_tree_fork();
	if (kid == 0) {
		close(p[0]);
		close(status[0]);
		child_main(p[1], status[1]);
	}
	close(p[1]);
	close(status[1]);
	if (zt_read_full(status[0], &fill, sizeof(fill)) != sizeof(fill))
		zt_tree_fail("the child did not report how much it wrote");
	close(status[0]);
	if (fill <= 0 || fill > size)
		zt_tree_fail("setup: the child filled %ld bytes into a pipe of %d", fill, size);
	if (!zt_wait_in_syscall(kid, SYS_write, 5000))
		zt_tree_fail("setup: the child is not blocked in write(2) (syscall %ld)", zt_syscall_of(kid));
	if (ioctl(p[0], FIONREAD, &n) != 0 || n != fill)
		zt_tree_fail("setup: the pipe holds %d bytes, expected %ld", n, fill);

	zt_ready();
	zt_wait_stop();

	zt_tree_expect_alive_child(kid, "the writer");
	if (!zt_wait_in_syscall(kid, SYS_write, 2000))
		zt_tree_fail("the child is no longer blocked in write(2) (syscall %ld)", zt_syscall_of(kid));
	if ((n = fcntl(p[0], F_GETPIPE_SZ)) != size)
		zt_tree_fail("F_GETPIPE_SZ is %d, was %d", n, size);
	if (ioctl(p[0], FIONREAD, &n) != 0 || n != fill)
		zt_tree_fail("the full pipe holds %d bytes, expected %ld", n, fill);
	for (;;) {
		struct pollfd pfd = { .fd = p[0], .events = POLLIN };
		if (poll(&pfd, 1, ZT_TREE_WAIT_MS) == 0)
			zt_tree_fail("nothing more came through the pipe for %d ms after %ld bytes", ZT_TREE_WAIT_MS, total);
		r = read(p[0], buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			zt_tree_fail("read: %s", strerror(errno));
		if (r == 0)
			break;
		if (total + r > fill + MORE)
			zt_tree_fail("more than %ld bytes came through the pipe", fill + MORE);
		if ((bad = zt_pat_check(buf, (size_t)r, SEED, (uint64_t)total)) >= 0)
			zt_tree_fail("byte %ld of the stream is %#x, expected %#x (lost, repeated or reordered)",
				     total + bad, buf[bad], zt_pat(SEED, (uint64_t)(total + bad)));
		total += r;
	}
	zt_tree_expect_exit(kid, 6, "the writer");
	if (total != fill + MORE)
		zt_fail("%ld bytes came through the pipe, expected %ld + %d", total, fill, MORE);
	zt_pass();
}
