/* tree_cow.c - private memory still shared copy-on-write after fork.
 *
 * Before READY: the parent fills a 32 MiB private anonymous region with a pattern and forks
 * three children that keep it shared: child 0 only reads it, child 1 rewrites its first
 * MiB with a pattern of its own (those pages are its own copies), child 2 drops pages
 * 100..199 with MADV_DONTNEED (it reads zeros there). The parent never writes it again.
 * After SIGTERM: each child checks its own view of the region (exit 10 + index); the root
 * checks its own, and that the region is still physically shared: its smaps entry shows at
 * least 28 MiB Shared_Dirty (without sharing a restore gives every process its own copy,
 * and the root's pages become Private_Dirty). One read-only page at 31 MiB splits the region
 * into three adjacent VMAs.
 */
#define _GNU_SOURCE
#include "zt_tree.h"

#include <fcntl.h>
#include <sys/mman.h>

#define LEN (32u << 20)
#define PAGE 4096u
#define SEED 11
#define SEED_C1 12
#define NKIDS 3

static uint8_t *region;

static long check_view(int who)
{
	for (size_t off = 0; off < LEN; off += 4096) {
		size_t page = off / PAGE;
		uint8_t want;
		for (size_t k = 0; k < PAGE; k += 509) {
			if (who == 1 && off < (1u << 20))
				want = zt_pat(SEED_C1, off + k);
			else if (who == 2 && page >= 100 && page < 200)
				want = 0;
			else
				want = zt_pat(SEED, off + k);
			if (region[off + k] != want)
				return (long)(off + k);
		}
	}
	return -1;
}

/* Shared_Dirty of the VMA holding addr, in KiB, from /proc/self/smaps (-1 if not found). */
static long shared_dirty_kb(const void *addr)
{
	static char buf[1 << 20];
	long n = zt_read_file("/proc/self/smaps", buf, sizeof(buf) - 1);
	char *p, *line;
	int in = 0;

	if (n <= 0)
		return -1;
	buf[n] = 0;
	for (line = strtok_r(buf, "\n", &p); line; line = strtok_r(NULL, "\n", &p)) {
		unsigned long s, e;
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' '))
			in = (uintptr_t)addr >= s && (uintptr_t)addr < e;
		else if (in && strncmp(line, "Shared_Dirty:", 13) == 0)
			return strtol(line + 13, NULL, 10);
	}
	return -1;
}

int main(void)
{
	pid_t kids[NKIDS];
	int ready[2];
	uint8_t c;
	long bad, kb;

	region = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED)
		zt_fail("mmap: %s", strerror(errno));
	zt_pat_fill(region, LEN, SEED, 0);
	/* One read-only page near the end splits the region into three adjacent VMAs: the
	 * parent's stored pages run on across their boundaries. */
	if (mprotect(region + (31u << 20), PAGE, PROT_READ) != 0)
		zt_fail("mprotect: %s", strerror(errno));
	if (pipe2(ready, O_CLOEXEC) != 0)
		zt_fail("pipe2: %s", strerror(errno));
	for (int i = 0; i < NKIDS; i++) {
		kids[i] = zt_tree_fork();
		if (kids[i] == 0) {
			close(ready[0]);
			if (i == 1)
				zt_pat_fill(region, 1u << 20, SEED_C1, 0);
			if (i == 2 && madvise(region + 100 * PAGE, 100 * PAGE, MADV_DONTNEED) != 0)
				zt_child_fail(20, "madvise: %s", strerror(errno));
			if (zt_write_all(ready[1], "r", 1) != 0)
				zt_child_fail(21, "write(ready): %s", strerror(errno));
			close(ready[1]);
			zt_wait_stop();
			if ((bad = check_view(i)) >= 0)
				zt_child_fail(22, "child %d: byte %ld of the region is %#x", i, bad, region[bad]);
			_exit(10 + i);
		}
	}
	close(ready[1]);
	for (int i = 0; i < NKIDS; i++)
		if (zt_read_full(ready[0], &c, 1) != 1)
			zt_tree_fail("child %d did not report ready", i);
	close(ready[0]);

	zt_ready();
	zt_wait_stop();

	kb = shared_dirty_kb(region);
	if ((bad = check_view(-1)) >= 0)
		zt_tree_fail("byte %ld of the region is %#x, expected %#x", bad, region[bad], zt_pat(SEED, (uint64_t)bad));
	if (kb < 28 * 1024)
		zt_tree_fail("the region is no longer shared with the children: Shared_Dirty %ld KiB, expected >= %d",
			     kb, 28 * 1024);
	for (int i = 0; i < NKIDS; i++) {
		kill(kids[i], SIGTERM);
		zt_tree_expect_exit(kids[i], 10 + i, "a child");
	}
	zt_pass();
}
