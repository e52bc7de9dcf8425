/* tree_fifo.c - a FIFO (named pipe) in the work directory between a parent and its child,
 * with bytes in flight.
 *
 * Before READY: the parent makes ./zt.fifo, opens it O_RDONLY|O_NONBLOCK, the child opens
 * it O_WRONLY and writes LEN bytes that nobody reads yet (they are in the FIFO at dump
 * time), then reports ready.
 * After SIGTERM: the parent's end is still the FIFO at that path (same inode), still
 * O_NONBLOCK, FIONREAD = LEN; the parent tells the child to go on (SIGTERM), the child
 * writes LEN more bytes and exits 6; the parent reads exactly the 2 * LEN bytes in order,
 * then sees EOF (the child was the only writer).
 */
#define _GNU_SOURCE
#include "zt_tree.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#define LEN 5000
#define SEED 7
/* the kernel reports O_LARGEFILE for files opened by path; glibc defines it as 0 on 64-bit */
#define KERNEL_O_LARGEFILE 0100000

static void child_main(int ready_w)
{
	uint8_t buf[LEN];
	int wr = open("zt.fifo", O_WRONLY | O_CLOEXEC);

	if (wr < 0)
		zt_child_fail(20, "open(zt.fifo, O_WRONLY): %s", strerror(errno));
	zt_pat_fill(buf, LEN, SEED, 0);
	if (zt_write_all(wr, buf, LEN) != 0)
		zt_child_fail(21, "write: %s", strerror(errno));
	if (zt_write_all(ready_w, "r", 1) != 0)
		zt_child_fail(22, "write(ready): %s", strerror(errno));
	close(ready_w);
	zt_wait_stop();
	if ((fcntl(wr, F_GETFL) & ~KERNEL_O_LARGEFILE) != O_WRONLY)
		zt_child_fail(23, "write end F_GETFL %#o, expected O_WRONLY", fcntl(wr, F_GETFL));
	zt_pat_fill(buf, LEN, SEED, LEN);
	if (zt_write_all(wr, buf, LEN) != 0)
		zt_child_fail(24, "write after restore: %s", strerror(errno));
	_exit(6);
}

int main(void)
{
	int rd, ready[2], n;
	uint8_t buf[2 * LEN + 16];
	struct stat before, now, path;
	long bad;
	pid_t kid;

	unlink("zt.fifo");
	if (mkfifo("zt.fifo", 0600) != 0)
		zt_fail("mkfifo: %s", strerror(errno));
	rd = open("zt.fifo", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (rd < 0 || fstat(rd, &before) != 0)
		zt_fail("open(zt.fifo): %s", strerror(errno));
	if (pipe2(ready, O_CLOEXEC) != 0)
		zt_fail("pipe2: %s", strerror(errno));
	kid = zt_tree_fork();
	if (kid == 0) {
		close(rd);
		close(ready[0]);
		child_main(ready[1]);
	}
	close(ready[1]);
	if (zt_read_full(ready[0], buf, 1) != 1)
		zt_tree_fail("the child did not report ready");
	close(ready[0]);

	zt_ready();
	zt_wait_stop();

	zt_tree_expect_alive_child(kid, "the child");
	if (fstat(rd, &now) != 0 || stat("zt.fifo", &path) != 0 || !S_ISFIFO(now.st_mode) ||
	    now.st_ino != path.st_ino || now.st_ino != before.st_ino)
		zt_tree_fail("the read end is not the FIFO at ./zt.fifo any more");
	if ((fcntl(rd, F_GETFL) & ~KERNEL_O_LARGEFILE) != (O_RDONLY | O_NONBLOCK))
		zt_tree_fail("read end F_GETFL %#o, expected O_RDONLY|O_NONBLOCK", fcntl(rd, F_GETFL));
	if (ioctl(rd, FIONREAD, &n) != 0 || n != LEN)
		zt_tree_fail("the FIFO holds %d bytes, expected %d", n, LEN);
	kill(kid, SIGTERM);
	zt_tree_expect_exit(kid, 6, "the child");
	if (fcntl(rd, F_SETFL, O_RDONLY) != 0)
		zt_tree_fail("F_SETFL: %s", strerror(errno));
	if (zt_read_full(rd, buf, 2 * LEN) != 2 * LEN)
		zt_tree_fail("short read: %s", strerror(errno));
	if ((bad = zt_pat_check(buf, 2 * LEN, SEED, 0)) >= 0)
		zt_tree_fail("byte %ld is %#x, expected %#x", bad, buf[bad], zt_pat(SEED, (uint64_t)bad));
	if ((n = (int)read(rd, buf, sizeof(buf))) != 0)
		zt_tree_fail("read after the data returned %d, expected EOF", n);
	unlink("zt.fifo");
	zt_pass();
}
