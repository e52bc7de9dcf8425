/* tree_pipe.c - two pipes between a parent and its child, with bytes in flight.
 *
 * Before READY: pipe p2c (parent writes, child reads) is grown to 256 KiB with
 * F_SETPIPE_SZ; pipe c2p (child writes, parent reads) keeps the default size and the
 * parent's read end is made O_NONBLOCK. Each side writes LEN distinct bytes into the pipe
 * the other reads, and nobody reads them: they are in the pipes at dump time.
 * After SIGTERM:
 *   parent: O_NONBLOCK still set on its read end and not on its write end, both pipe sizes,
 *     FIONREAD = LEN on both pipes; one non-blocking read returns exactly the child's LEN
 *     bytes, the next one fails with EAGAIN (the writer is alive, the pipe empty); then it
 *     closes its write end and SIGTERMs the child, which must exit 5; then its read end
 *     sees EOF (the child was the only writer);
 *   child: its ends are blocking, F_GETPIPE_SZ = 256 KiB, FIONREAD = LEN; it reads exactly
 *     the parent's LEN bytes, then EOF (the parent was the only writer); exit 5.
 */
#define _GNU_SOURCE
#include "zt_tree.h"

#include <fcntl.h>
#include <sys/ioctl.h>

#define LEN 3000
#define BIG (256 * 1024)
#define SEED_P2C 1
#define SEED_C2P 2

static int fionread(int fd)
{
	int n = -1;

	if (ioctl(fd, FIONREAD, &n) != 0)
		return -1;
	return n;
}

static void child_main(int rd, int wr, int ready_w)
{
	uint8_t buf[LEN + 16];
	long bad;
	int n;

	zt_pat_fill(buf, LEN, SEED_C2P, 0);
	if (zt_write_all(wr, buf, LEN) != 0)
		zt_child_fail(20, "write(c2p): %s", strerror(errno));
	if (zt_write_all(ready_w, "r", 1) != 0)
		zt_child_fail(21, "write(ready): %s", strerror(errno));
	close(ready_w);

	zt_wait_stop();

	if (fcntl(rd, F_GETFL) != O_RDONLY)
		zt_child_fail(22, "p2c read end F_GETFL %#o, expected O_RDONLY (blocking)", fcntl(rd, F_GETFL));
	if (fcntl(wr, F_GETFL) != O_WRONLY)
		zt_child_fail(23, "c2p write end F_GETFL %#o, expected O_WRONLY (blocking)", fcntl(wr, F_GETFL));
	if ((n = fcntl(rd, F_GETPIPE_SZ)) != BIG)
		zt_child_fail(24, "p2c F_GETPIPE_SZ is %d, expected %d", n, BIG);
	if ((n = fionread(rd)) != LEN)
		zt_child_fail(25, "p2c holds %d bytes, expected %d", n, LEN);
	memset(buf, 0, sizeof(buf));
	if (zt_read_full(rd, buf, LEN) != LEN)
		zt_child_fail(26, "short read of p2c: %s", strerror(errno));
	if ((bad = zt_pat_check(buf, LEN, SEED_P2C, 0)) >= 0)
		zt_child_fail(27, "p2c byte %ld is %#x, expected %#x", bad, buf[bad], zt_pat(SEED_P2C, (uint64_t)bad));
	/* the parent closed its write end before telling us to check: EOF, nothing more */
	if ((n = (int)read(rd, buf, sizeof(buf))) != 0)
		zt_child_fail(28, "p2c: read after the data returned %d (%s), expected EOF", n,
			      n < 0 ? strerror(errno) : "extra bytes");
	_exit(5);
}

int main(void)
{
	int p2c[2], c2p[2], ready[2], n, def_size;
	uint8_t buf[4096];
	pid_t kid;
	long bad;
	ssize_t r;

	if (pipe2(p2c, 0) != 0 || pipe2(c2p, 0) != 0 || pipe2(ready, O_CLOEXEC) != 0)
		zt_fail("pipe2: %s", strerror(errno));
	if ((n = fcntl(p2c[1], F_SETPIPE_SZ, BIG)) != BIG)
		zt_fail("F_SETPIPE_SZ %d returned %d: %s", BIG, n, strerror(errno));
	def_size = fcntl(c2p[0], F_GETPIPE_SZ);
	if (def_size == BIG || def_size < 2 * LEN)
		zt_fail("c2p has size %d: cannot tell it from p2c or too small", def_size);

	kid = zt_tree_fork();
	if (kid == 0) {
		close(p2c[1]);
		close(c2p[0]);
		close(ready[0]);
		child_main(p2c[0], c2p[1], ready[1]);
	}
	close(p2c[0]);
	close(c2p[1]);
	close(ready[1]);
	zt_pat_fill(buf, LEN, SEED_P2C, 0);
	if (zt_write_all(p2c[1], buf, LEN) != 0)
		zt_tree_fail("write(p2c): %s", strerror(errno));
	if (fcntl(c2p[0], F_SETFL, O_NONBLOCK) != 0)
		zt_tree_fail("F_SETFL O_NONBLOCK: %s", strerror(errno));
	if (zt_read_full(ready[0], buf, sizeof(buf)) != 1)
		zt_tree_fail("the child did not report ready");
	close(ready[0]);
	if (fionread(c2p[0]) != LEN || fionread(p2c[1]) != LEN)
		zt_tree_fail("setup: the pipes hold %d and %d bytes, expected %d", fionread(c2p[0]), fionread(p2c[1]), LEN);

	zt_ready();
	zt_wait_stop();

	zt_tree_expect_alive_child(kid, "the child");
	if (fcntl(c2p[0], F_GETFL) != (O_RDONLY | O_NONBLOCK))
		zt_tree_fail("c2p read end F_GETFL %#o, expected O_RDONLY|O_NONBLOCK", fcntl(c2p[0], F_GETFL));
	if (fcntl(p2c[1], F_GETFL) != O_WRONLY)
		zt_tree_fail("p2c write end F_GETFL %#o, expected O_WRONLY (blocking)", fcntl(p2c[1], F_GETFL));
	if ((n = fcntl(p2c[1], F_GETPIPE_SZ)) != BIG)
		zt_tree_fail("p2c F_GETPIPE_SZ is %d, expected %d", n, BIG);
	if ((n = fcntl(c2p[0], F_GETPIPE_SZ)) != def_size)
		zt_tree_fail("c2p F_GETPIPE_SZ is %d, expected %d", n, def_size);
	if ((n = fionread(c2p[0])) != LEN)
		zt_tree_fail("c2p holds %d bytes, expected %d", n, LEN);
	if ((n = fionread(p2c[1])) != LEN)
		zt_tree_fail("p2c holds %d bytes, expected %d", n, LEN);
	memset(buf, 0, sizeof(buf));
	r = read(c2p[0], buf, sizeof(buf));
	if (r != LEN)
		zt_tree_fail("non-blocking read of c2p returned %zd (%s), expected %d", r, r < 0 ? strerror(errno) : "",
			     LEN);
	if ((bad = zt_pat_check(buf, LEN, SEED_C2P, 0)) >= 0)
		zt_tree_fail("c2p byte %ld is %#x, expected %#x", bad, buf[bad], zt_pat(SEED_C2P, (uint64_t)bad));
	r = read(c2p[0], buf, sizeof(buf));
	if (r != -1 || errno != EAGAIN)
		zt_tree_fail("second read of the empty c2p returned %zd (%s), expected EAGAIN", r,
			     r < 0 ? strerror(errno) : "data or EOF");

	close(p2c[1]);
	if (kill(kid, SIGTERM) != 0)
		zt_tree_fail("kill(child): %s", strerror(errno));
	zt_tree_expect_exit(kid, 5, "the child");
	r = read(c2p[0], buf, sizeof(buf));
	if (r != 0)
		zt_fail("c2p after the child exited: read returned %zd (%s), expected EOF", r,
			r < 0 ? strerror(errno) : "data");
	zt_pass();
}
