/* tree_shm.c - MAP_SHARED anonymous memory shared by a parent and two children.
 *
 * Before the fork the parent maps a 4 MiB MAP_SHARED|MAP_ANONYMOUS region, a 1 MiB
 * MAP_SHARED mapping of /dev/zero (the fd closed again), and one private anonymous page.
 * Each shared area is cut in 8 parts: the parent writes part 0 before the fork, child 1
 * part 1 and child 2 part 2 before READY (pattern per part and area); parts 3-5 are
 * written after SIGTERM, parts 6 and 7 never (they must stay zero). Child 1 also writes
 * its copy of the private page (copy-on-write: the parent must not see it).
 * After SIGTERM: the parent checks parts 0-2 (content from before the dump, from all
 * three processes), that 3-7 are zero, its private page, that both areas are still
 * shared (rw-s); writes part 3 and SIGTERMs the children. Each child checks parts 0-3
 * (part 3 written by the parent after the restore), that its own post-dump part and 6-7
 * are zero, its private page, and writes its post-dump part (4 or 5), then exits 3 or 4.
 * The parent then sees parts 4 and 5.
 */
#define _GNU_SOURCE
#include "zt_tree.h"

#include <fcntl.h>
#include <sys/mman.h>

#define ANON_LEN (4UL << 20)
#define ZERO_LEN (1UL << 20)
#define PARTS 8
#define PAGE 4096

struct area {
	const char *name;
	uint8_t *base;
	size_t part; /* bytes per part */
	uint32_t seed;
};

static struct area areas[2];
static uint8_t *priv;

static void write_part(int i)
{
	for (int a = 0; a < 2; a++)
		zt_pat_fill(areas[a].base + (size_t)i * areas[a].part, areas[a].part, areas[a].seed + (uint32_t)i, 0);
}

/* NULL if part i of every area holds its pattern (or zeros), else what is wrong. */
static const char *check_part(int i, int zero, char *why, size_t len)
{
	for (int a = 0; a < 2; a++) {
		const volatile uint8_t *p = areas[a].base + (size_t)i * areas[a].part;
		for (size_t k = 0; k < areas[a].part; k++) {
			uint8_t want = zero ? 0 : zt_pat(areas[a].seed + (uint32_t)i, k);
			if (p[k] != want) {
				snprintf(why, len, "%s part %d byte %zu is %#x, expected %#x", areas[a].name, i, k, p[k],
					 want);
				return why;
			}
		}
	}
	return NULL;
}

static void child_main(int idx, int ready_w)
{
	char why[160];

	write_part(idx);
	if (idx == 1)
		zt_pat_fill(priv, PAGE, 91, 0);
	if (zt_write_all(ready_w, "r", 1) != 0)
		zt_child_fail(20, "write(ready): %s", strerror(errno));
	close(ready_w);

	zt_wait_stop();

	/* the other child's post-dump part may be written already: not looked at */
	for (int i = 0; i < PARTS; i++)
		if (i != 3 + (3 - idx) && check_part(i, i >= 4, why, sizeof(why)))
			zt_child_fail(20 + i, "%s", why);
	if (zt_pat_check(priv, PAGE, idx == 1 ? 91 : 90, 0) >= 0)
		zt_child_fail(30, "the private page does not hold %s", idx == 1 ? "the child's own copy" : "the parent's data");
	write_part(3 + idx);
	_exit(2 + idx);
}

int main(void)
{
	char why[160], perms[5];
	pid_t kid[2];
	int ready[2], zfd;
	char buf[4];

	areas[0].name = "MAP_SHARED|MAP_ANONYMOUS";
	areas[0].base = mmap(NULL, ANON_LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	areas[0].part = ANON_LEN / PARTS;
	areas[0].seed = 10;
	zfd = open("/dev/zero", O_RDWR | O_CLOEXEC);
	if (zfd < 0)
		zt_fail("open /dev/zero: %s", strerror(errno));
	areas[1].name = "MAP_SHARED /dev/zero";
	areas[1].base = mmap(NULL, ZERO_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, zfd, 0);
	areas[1].part = ZERO_LEN / PARTS;
	areas[1].seed = 50;
	close(zfd);
	priv = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (areas[0].base == MAP_FAILED || areas[1].base == MAP_FAILED || priv == MAP_FAILED)
		zt_fail("mmap: %s", strerror(errno));
	write_part(0);
	zt_pat_fill(priv, PAGE, 90, 0);

	if (pipe2(ready, O_CLOEXEC) != 0)
		zt_fail("pipe2: %s", strerror(errno));
	for (int i = 0; i < 2; i++) {
		kid[i] = zt_tree_fork();
		if (kid[i] == 0) {
			close(ready[0]);
			child_main(i + 1, ready[1]);
		}
	}
	close(ready[1]);
	if (zt_read_full(ready[0], buf, sizeof(buf)) != 2)
		zt_tree_fail("the children did not both report ready");
	close(ready[0]);
	for (int i = 0; i < PARTS; i++)
		if (check_part(i, i >= 3, why, sizeof(why)))
			zt_tree_fail("setup: %s", why);

	zt_ready();
	zt_wait_stop();

	zt_tree_expect_alive_child(kid[0], "child 1");
	zt_tree_expect_alive_child(kid[1], "child 2");
	for (int a = 0; a < 2; a++)
		if (zt_maps_lookup(areas[a].base, NULL, NULL, perms) != 0 || strcmp(perms, "rw-s") != 0)
			zt_tree_fail("the %s area is no longer a shared rw mapping (%s)", areas[a].name, perms);
	for (int i = 0; i < PARTS; i++)
		if (check_part(i, i >= 3, why, sizeof(why)))
			zt_tree_fail("%s", why);
	if (zt_pat_check(priv, PAGE, 90, 0) >= 0)
		zt_tree_fail("the parent's private page changed (child 1's copy-on-write copy leaked into it?)");
	write_part(3);
	for (int i = 0; i < 2; i++)
		if (kill(kid[i], SIGTERM) != 0)
			zt_tree_fail("kill(child %d): %s", i + 1, strerror(errno));
	zt_tree_expect_exit(kid[0], 3, "child 1");
	zt_tree_expect_exit(kid[1], 4, "child 2");
	for (int i = 0; i < PARTS; i++)
		if (check_part(i, i >= 6, why, sizeof(why)))
			zt_fail("after the children wrote: %s", why);
	zt_pass();
}
