/* tree_shm_child.c - shared anonymous memory that only a child wrote.
 *
 * Before READY: the parent maps 64 pages MAP_SHARED|MAP_ANONYMOUS and forks; only the child
 * writes them (pages 1..63, with a pattern; page 0 is never touched by anyone), so the
 * parent's page tables hold none of them at dump time.
 * After SIGTERM: the parent sees the child's pattern in pages 1..63 and zeros in page 0;
 * then it writes page 0 and the child (told with SIGTERM) must see that write (the memory
 * is still one object) and exits 8.
 */
#define _GNU_SOURCE
#include "zt_tree.h"

#include <fcntl.h>
#include <sys/mman.h>

#define PAGES 64
#define PAGE 4096u
#define SEED 21

static uint8_t *mem;

static long check_pattern(void)
{
	for (size_t off = PAGE; off < PAGES * PAGE; off += 97)
		if (mem[off] != zt_pat(SEED, off))
			return (long)off;
	return -1;
}

int main(void)
{
	int ready[2];
	uint8_t c;
	long bad;
	pid_t kid;

	mem = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED || pipe2(ready, O_CLOEXEC) != 0)
		zt_fail("setup: %s", strerror(errno));
	kid = zt_tree_fork();
	if (kid == 0) {
		close(ready[0]);
		zt_pat_fill(mem + PAGE, (PAGES - 1) * PAGE, SEED, PAGE);
		if (zt_write_all(ready[1], "r", 1) != 0)
			zt_child_fail(20, "write(ready): %s", strerror(errno));
		close(ready[1]);
		zt_wait_stop();
		if ((bad = check_pattern()) >= 0)
			zt_child_fail(21, "byte %ld is %#x", bad, mem[bad]);
		if (mem[0] != 0x5a)
			zt_child_fail(22, "the parent's write after restore is not seen: %#x", mem[0]);
		_exit(8);
	}
	close(ready[1]);
	if (zt_read_full(ready[0], &c, 1) != 1)
		zt_tree_fail("the child did not report ready");
	close(ready[0]);

	zt_ready();
	zt_wait_stop();

	zt_tree_expect_alive_child(kid, "the child");
	if ((bad = check_pattern()) >= 0)
		zt_tree_fail("byte %ld of the child's writes is %#x, expected %#x", bad, mem[bad], zt_pat(SEED, (uint64_t)bad));
	for (size_t i = 0; i < PAGE; i++)
		if (mem[i] != 0)
			zt_tree_fail("page 0 (never written) holds %#x at %zu", mem[i], i);
	mem[0] = 0x5a;
	kill(kid, SIGTERM);
	zt_tree_expect_exit(kid, 8, "the child");
	zt_pass();
}
