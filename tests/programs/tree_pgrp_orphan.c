/* tree_pgrp_orphan.c - a process group whose leader has exited, as a shell pipeline's group
 * is when its first process finishes before the others.
 *
 * Before READY: the root forks L (setpgid(0, 0): group L), then M and N, which join group
 * L (setpgid by the root and by themselves, as a shell does). L exits and the root reaps
 * it: group L now has no leader, only M and N.
 * After SIGTERM: the root checks from outside that M and N are still in group L (and not
 * in their own), then sends SIGUSR1 to the whole group (kill(-L)): each of M and N takes
 * it in its handler, checks its own group and exits (M 21, N 22). The root requires both.
 */
#define _GNU_SOURCE
#include "zt_tree.h"

#include <fcntl.h>

static volatile sig_atomic_t got_usr1;

static void on_usr1(int sig)
{
	(void)sig;
	got_usr1 = 1;
}

static void member(pid_t group, int ready_w, int ok)
{
	if (setpgid(0, group) != 0 && getpgrp() != group)
		zt_child_fail(30, "setpgid(0, %d): %s", (int)group, strerror(errno));
	if (zt_write_all(ready_w, "m", 1) != 0)
		zt_child_fail(31, "write(ready): %s", strerror(errno));
	close(ready_w);
	while (!got_usr1)
		zt_sleep_ms(5);
	if (getpgrp() != group)
		zt_child_fail(32, "in group %d, expected %d", (int)getpgrp(), (int)group);
	_exit(ok);
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	int ready[2];
	char c;
	pid_t l, m, n;

	if (pipe2(ready, O_CLOEXEC) != 0 || sigaction(SIGUSR1, &sa, NULL) != 0)
		zt_fail("setup: %s", strerror(errno));
	l = zt_tree_fork();
	if (l == 0) {
		setpgid(0, 0);
		if (zt_write_all(ready[1], "l", 1) != 0)
			_exit(40);
		zt_sleep_ms(200); /* until M and N have joined */
		_exit(0);
	}
	setpgid(l, l);
	if (zt_read_full(ready[0], &c, 1) != 1)
		zt_tree_fail("L did not report ready");
	m = zt_tree_fork();
	if (m == 0)
		member(l, ready[1], 21);
	setpgid(m, l);
	n = zt_tree_fork();
	if (n == 0)
		member(l, ready[1], 22);
	setpgid(n, l);
	close(ready[1]);
	if (zt_read_full(ready[0], &c, 1) != 1 || zt_read_full(ready[0], &c, 1) != 1)
		zt_tree_fail("M and N did not report ready");
	close(ready[0]);
	zt_tree_expect_exit(l, 0, "L");
	if (getpgid(m) != l || getpgid(n) != l)
		zt_tree_fail("before READY: M in group %d, N in %d, expected %d", (int)getpgid(m), (int)getpgid(n), (int)l);

	zt_ready();
	zt_wait_stop();

	zt_tree_expect_alive_child(m, "M");
	zt_tree_expect_alive_child(n, "N");
	if (getpgid(m) != l || getpgid(n) != l)
		zt_tree_fail("M is in group %d and N in %d, expected both in %d (whose leader exited)", (int)getpgid(m),
			     (int)getpgid(n), (int)l);
	if (kill(-l, SIGUSR1) != 0)
		zt_tree_fail("kill(-%d, SIGUSR1): %s", (int)l, strerror(errno));
	zt_tree_expect_exit(m, 21, "M");
	zt_tree_expect_exit(n, 22, "N");
	zt_pass();
}
