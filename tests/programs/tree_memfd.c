/* tree_memfd.c - a memfd shared by a parent and its child, through descriptors and mappings.
 *
 * Before READY: the parent makes memfd M (1 MiB, a pattern in its first page), maps it
 * MAP_SHARED, and forks; the child inherits fd and mapping and opens M again through
 * /proc/self/fd (a description of its own, offset 100), then reports ready.
 * After SIGTERM: the parent tells the child to finish; the child checks the pattern through
 * its mapping and its own fd, writes 0xC5 at 512 KiB through the mapping and exits 6. The
 * parent then sees 0xC5 through its own mapping and its fd: one memory object for both.
 */
#define _GNU_SOURCE
#include "zt_tree.h"

#include <fcntl.h>
#include <sys/mman.h>

#define LEN (1u << 20)

static void child_main(int m, uint8_t *map, int ready_w)
{
	char path[64];
	uint8_t b;
	int own;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", m);
	own = open(path, O_RDONLY | O_CLOEXEC);
	if (own < 0 || lseek(own, 100, SEEK_SET) != 100)
		zt_child_fail(20, "open M again: %s", strerror(errno));
	if (zt_write_all(ready_w, "r", 1) != 0)
		zt_child_fail(21, "write(ready): %s", strerror(errno));
	close(ready_w);
	zt_wait_stop();
	if (zt_pat_check(map, 4096, 5, 0) >= 0)
		zt_child_fail(22, "the child's mapping lost the pattern");
	if (lseek(own, 0, SEEK_CUR) != 100 || read(own, &b, 1) != 1 || b != map[100])
		zt_child_fail(23, "the child's own fd is not at 100 on the same memory");
	map[LEN / 2] = 0xC5;
	_exit(6);
}

int main(void)
{
	int m = memfd_create("zt-tree-memfd", MFD_CLOEXEC);
	int ready[2];
	uint8_t *map, b = 0;
	char c;
	pid_t kid;

	if (m < 0 || ftruncate(m, LEN) != 0 || pipe2(ready, O_CLOEXEC) != 0)
		zt_fail("setup: %s", strerror(errno));
	map = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
	if (map == MAP_FAILED)
		zt_fail("mmap: %s", strerror(errno));
	zt_pat_fill(map, 4096, 5, 0);
	kid = zt_tree_fork();
	if (kid == 0) {
		close(ready[0]);
		child_main(m, map, ready[1]);
	}
	close(ready[1]);
	if (zt_read_full(ready[0], &c, 1) != 1)
		zt_tree_fail("the child did not report ready");
	close(ready[0]);

	zt_ready();
	zt_wait_stop();

	zt_tree_expect_alive_child(kid, "the child");
	if (kill(kid, SIGTERM) != 0)
		zt_tree_fail("kill(child): %s", strerror(errno));
	zt_tree_expect_exit(kid, 6, "the child");
	if (map[LEN / 2] != 0xC5)
		zt_fail("the child's write through its mapping does not show in the parent's: not one memfd");
	if (pread(m, &b, 1, LEN / 2) != 1 || b != 0xC5)
		zt_fail("the child's write does not show through the parent's fd");
	if (zt_pat_check(map, 4096, 5, 0) >= 0)
		zt_fail("the parent's mapping lost the pattern");
	zt_pass();
}
