/* tree_fork.c - a parent and two forked children, each with memory of its own.
 *
 * Before READY: the parent fills a 64 KiB array with its pattern and forks two children;
 * each overwrites its copy of the array with its own pattern (copy-on-write: the three
 * copies differ) and counts in a loop (counter and a shadow derived from it), starting
 * from its own base, and says "ready" on a pipe once it has counted PRE_READY steps.
 * After SIGTERM the parent checks its own array and that both children are still running
 * and still its children, then SIGTERMs them. Each child checks that its counter went on
 * from where it was (not reset, not another process's), that the shadow agrees, its array,
 * getpid() and that getppid() is still the parent, counts 50 more steps (it runs after the
 * restore), and exits with 3 (first child) or 4 (second). The parent requires exactly
 * those statuses and no other child.
 */
#define _GNU_SOURCE
#include "zt_tree.h"

#include <fcntl.h>

#define MEM_LEN (64 * 1024)
#define PRE_READY 100
#define MORE 50

static uint8_t mem[MEM_LEN];
static volatile long counter, shadow;

static void step(int idx)
{
	struct timespec ts = { 0, 1000 * 1000 };

	counter++;
	shadow = counter * 7 + idx;
	nanosleep(&ts, NULL); /* EINTR on SIGTERM: the caller re-checks zt_stop */
}

static void child_main(int idx, pid_t parent, int ready_w)
{
	long base = (long)idx * 1000000L;
	pid_t me = getpid();

	zt_pat_fill(mem, MEM_LEN, 100 + (uint32_t)idx, 0);
	counter = base;
	shadow = base * 7 + idx;
	while (counter < base + PRE_READY)
		step(idx);
	if (zt_write_all(ready_w, "r", 1) != 0)
		zt_child_fail(20, "write(ready): %s", strerror(errno));
	close(ready_w);

	while (!zt_stop)
		step(idx);

	long at_term = counter;
	long bad;
	if (getpid() != me)
		zt_child_fail(21, "getpid() is %d, was %d", (int)getpid(), (int)me);
	if (getppid() != parent)
		zt_child_fail(22, "getppid() is %d, expected the parent %d", (int)getppid(), (int)parent);
	if (at_term < base + PRE_READY || at_term > base + 999999)
		zt_child_fail(23, "counter is %ld, expected at least %ld (own base %ld): reset or another process's",
			      at_term, base + PRE_READY, base);
	if (shadow != at_term * 7 + idx)
		zt_child_fail(24, "shadow %ld does not match counter %ld", (long)shadow, at_term);
	if ((bad = zt_pat_check(mem, MEM_LEN, 100 + (uint32_t)idx, 0)) >= 0)
		zt_child_fail(25, "private array differs at byte %ld (not this child's copy)", bad);
	zt_stop = 0;
	for (int i = 0; i < MORE; i++)
		step(idx);
	if (counter != at_term + MORE || shadow != counter * 7 + idx)
		zt_child_fail(26, "counting after SIGTERM: %ld, expected %ld", (long)counter, at_term + MORE);
	_exit(2 + idx);
}

int main(void)
{
	pid_t kid[2], me = getpid();
	int ready[2];
	char buf[4];
	long bad;

	zt_pat_fill(mem, MEM_LEN, 100, 0);
	if (pipe2(ready, O_CLOEXEC) != 0)
		zt_fail("pipe2: %s", strerror(errno));
	for (int i = 0; i < 2; i++) {
		kid[i] = zt_tree_fork();
		if (kid[i] == 0) {
			close(ready[0]);
			child_main(i + 1, me, ready[1]);
		}
	}
	close(ready[1]);
	/* one byte from each child, then EOF: both closed their end, no pipe is left open */
	if (zt_read_full(ready[0], buf, sizeof(buf)) != 2)
		zt_tree_fail("the children did not both report ready");
	close(ready[0]);

	zt_ready();
	zt_wait_stop();

	if (getpid() != me)
		zt_tree_fail("getpid() is %d, was %d", (int)getpid(), (int)me);
	if ((bad = zt_pat_check(mem, MEM_LEN, 100, 0)) >= 0)
		zt_tree_fail("the parent's array differs at byte %ld (a child's copy?)", bad);
	zt_tree_expect_alive_child(kid[0], "child 1");
	zt_tree_expect_alive_child(kid[1], "child 2");
	for (int i = 0; i < 2; i++)
		if (kill(kid[i], SIGTERM) != 0)
			zt_tree_fail("kill(child %d): %s", i + 1, strerror(errno));
	zt_tree_expect_exit(kid[0], 3, "child 1");
	zt_tree_expect_exit(kid[1], 4, "child 2");
	if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD)
		zt_fail("the parent has a child it did not fork");
	zt_pass();
}
