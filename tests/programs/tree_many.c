/* tree_many.c - a root with N (100) children.
 *
 * Before READY the root forks N children; each keeps its index (and a check value) in its
 * own memory, reports ready on a pipe and waits for SIGTERM. After SIGTERM the root
 * checks that every child is still running and still its child, SIGTERMs them all and
 * reaps each by pid: child i checks its index, pid and parent and exits 10 + i, so a
 * child restored with another one's memory or pid shows up as a wrong status.
 */
#define _GNU_SOURCE
#include "zt_tree.h"

#include <fcntl.h>

#define N 100

static volatile int my_index = -1, my_check = -1;

static void child_main(int idx, pid_t parent, int ready_w)
{
	pid_t me = getpid();

	my_index = idx;
	my_check = ~idx * 31;
	if (zt_write_all(ready_w, "r", 1) != 0)
		zt_child_fail(200, "write(ready): %s", strerror(errno));
	close(ready_w);
	zt_wait_stop();
	if (my_index != idx || my_check != ~idx * 31)
		zt_child_fail(201, "child %d holds index %d (check %d)", idx, my_index, my_check);
	if (getpid() != me || getppid() != parent)
		zt_child_fail(202, "child %d: pid %d ppid %d, expected %d and %d", idx, (int)getpid(), (int)getppid(),
			      (int)me, (int)parent);
	_exit(10 + my_index);
}

int main(void)
{
	static pid_t kid[N];
	char name[32], buf[N + 1];
	pid_t me = getpid();
	int ready[2];

	if (pipe2(ready, O_CLOEXEC) != 0)
		zt_fail("pipe2: %s", strerror(errno));
	for (int i = 0; i < N; i++) {
		kid[i] = zt_tree_fork();
		if (kid[i] == 0) {
			close(ready[0]);
			child_main(i, me, ready[1]);
		}
	}
	close(ready[1]);
	if (zt_read_full(ready[0], buf, sizeof(buf)) != N)
		zt_tree_fail("not all %d children reported ready", N);
	close(ready[0]);

	zt_ready();
	zt_wait_stop();

	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "child %d", i);
		zt_tree_expect_alive_child(kid[i], name);
	}
	for (int i = 0; i < N; i++)
		if (kill(kid[i], SIGTERM) != 0)
			zt_tree_fail("kill(child %d, pid %d): %s", i, (int)kid[i], strerror(errno));
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "child %d", i);
		zt_tree_expect_exit(kid[i], 10 + i, name);
	}
	if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD)
		zt_fail("the root has a child it did not fork");
	zt_pass();
}
