/* tree_shared_fd.c - one open file description shared by a parent and its child.
 *
 * Before READY: the parent opens shared.dat (in the work directory) O_RDWR, writes HDR
 * bytes and forks: parent and child share that open file description, so its offset.
 * The child writes PRE bytes through it (the parent's offset moves to HDR + PRE). Each
 * also opens shared.dat again after the fork, on its own (offsets 10 in the parent, 20 in
 * the child): those descriptions are not shared.
 * After SIGTERM: the parent's shared offset is still HDR + PRE; the child checks its view
 * (same offset, O_RDWR, its own fd at 20), writes POST bytes through the shared fd and then
 * lseeks it to SEEK_TO, moves its own fd to 33, and exits 7. The parent must see the
 * shared offset at SEEK_TO (moved by the child), its own fd still at 10, and the file
 * holding HDR, PRE and POST bytes of three patterns; a last write goes where the child
 * left the offset.
 */
#define _GNU_SOURCE
#include "zt_tree.h"

#include <fcntl.h>
#include <sys/stat.h>

#define HDR 100
#define PRE 50
#define POST 77
#define SEEK_TO 200

static off_t cur(int fd)
{
	return lseek(fd, 0, SEEK_CUR);
}

static void child_main(int fd, int ready_w)
{
	uint8_t buf[POST + PRE + HDR];
	long bad;
	int own = open("shared.dat", O_RDONLY | O_CLOEXEC);

	if (own < 0 || lseek(own, 20, SEEK_SET) != 20)
		zt_child_fail(20, "open/lseek own fd: %s", strerror(errno));
	zt_pat_fill(buf, PRE, 2, 0);
	if (zt_write_all(fd, buf, PRE) != 0)
		zt_child_fail(21, "write PRE: %s", strerror(errno));
	if (zt_write_all(ready_w, "r", 1) != 0)
		zt_child_fail(22, "write(ready): %s", strerror(errno));
	close(ready_w);

	zt_wait_stop();

	if (cur(fd) != HDR + PRE)
		zt_child_fail(23, "shared offset is %lld in the child, expected %d", (long long)cur(fd), HDR + PRE);
	if (cur(own) != 20)
		zt_child_fail(24, "own offset is %lld in the child, expected 20", (long long)cur(own));
	if ((fcntl(fd, F_GETFL) & O_ACCMODE) != O_RDWR)
		zt_child_fail(25, "the shared fd is no longer O_RDWR (%#o)", fcntl(fd, F_GETFL));
	if (pread(fd, buf, HDR + PRE, 0) != HDR + PRE || zt_pat_check(buf, HDR, 1, 0) >= 0 ||
	    zt_pat_check(buf + HDR, PRE, 2, 0) >= 0)
		zt_child_fail(26, "shared.dat content seen by the child is wrong");
	zt_pat_fill(buf, POST, 3, 0);
	if (zt_write_all(fd, buf, POST) != 0)
		zt_child_fail(27, "write POST: %s", strerror(errno));
	if ((bad = cur(fd)) != HDR + PRE + POST)
		zt_child_fail(28, "after writing POST the offset is %ld", bad);
	if (lseek(fd, SEEK_TO, SEEK_SET) != SEEK_TO || lseek(own, 33, SEEK_SET) != 33)
		zt_child_fail(29, "lseek: %s", strerror(errno));
	_exit(7);
}

int main(void)
{
	uint8_t buf[HDR + PRE + POST + 16];
	int fd, own, ready[2];
	struct stat st;
	pid_t kid;
	long bad;

	fd = open("shared.dat", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		zt_fail("open shared.dat: %s", strerror(errno));
	zt_pat_fill(buf, HDR, 1, 0);
	if (zt_write_all(fd, buf, HDR) != 0)
		zt_fail("write header: %s", strerror(errno));
	if (pipe2(ready, O_CLOEXEC) != 0)
		zt_fail("pipe2: %s", strerror(errno));
	kid = zt_tree_fork();
	if (kid == 0) {
		close(ready[0]);
		child_main(fd, ready[1]);
	}
	close(ready[1]);
	own = open("shared.dat", O_RDONLY | O_CLOEXEC);
	if (own < 0 || lseek(own, 10, SEEK_SET) != 10)
		zt_tree_fail("open/lseek own fd: %s", strerror(errno));
	if (zt_read_full(ready[0], buf, sizeof(buf)) != 1)
		zt_tree_fail("the child did not report ready");
	close(ready[0]);
	if (cur(fd) != HDR + PRE || cur(own) != 10)
		zt_tree_fail("setup: offsets %lld and %lld, expected %d and 10", (long long)cur(fd), (long long)cur(own),
			     HDR + PRE);

	zt_ready();
	zt_wait_stop();

	zt_tree_expect_alive_child(kid, "the child");
	if (cur(fd) != HDR + PRE)
		zt_tree_fail("the shared offset is %lld, expected %d", (long long)cur(fd), HDR + PRE);
	if (cur(own) != 10)
		zt_tree_fail("the parent's own offset is %lld, expected 10", (long long)cur(own));
	if (kill(kid, SIGTERM) != 0)
		zt_tree_fail("kill(child): %s", strerror(errno));
	zt_tree_expect_exit(kid, 7, "the child");

	if (cur(fd) != SEEK_TO)
		zt_fail("the child moved the shared offset to %d, the parent sees %lld: the description is not shared",
			SEEK_TO, (long long)cur(fd));
	if (cur(own) != 10)
		zt_fail("the parent's own offset is %lld after the child moved its own fd, expected 10",
			(long long)cur(own));
	if (fstat(fd, &st) != 0 || st.st_size != HDR + PRE + POST)
		zt_fail("shared.dat has size %lld, expected %d", (long long)st.st_size, HDR + PRE + POST);
	if (pread(own, buf, sizeof(buf), 0) != HDR + PRE + POST)
		zt_fail("pread shared.dat: %s", strerror(errno));
	if ((bad = zt_pat_check(buf, HDR, 1, 0)) >= 0)
		zt_fail("header byte %ld is wrong", bad);
	if ((bad = zt_pat_check(buf + HDR, PRE, 2, 0)) >= 0)
		zt_fail("byte %ld of what the child wrote before the dump is wrong", bad);
	if ((bad = zt_pat_check(buf + HDR + PRE, POST, 3, 0)) >= 0)
		zt_fail("byte %ld of what the child wrote after SIGTERM is wrong", bad);
	if (write(fd, "Z", 1) != 1 || pread(own, buf, 1, SEEK_TO) != 1 || buf[0] != 'Z' || cur(fd) != SEEK_TO + 1)
		zt_fail("a write through the shared fd did not land at the child's offset %d", SEEK_TO);
	zt_pass();
}
